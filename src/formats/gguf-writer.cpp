// GGUF v3 writer: header, kvs and tensor infos first, then each tensor's data at the next multiple
// of the alignment, padded to the alignment at the end as well (as gguf-py and llama.cpp do).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "formats/ggml-types.h"
#include "formats/gguf.h"

namespace bitnet::formats {

namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a LE host");

void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  const size_t at = out.size();
  out.resize(at + n);
  if (n > 0) std::memcpy(out.data() + at, p, n);
}

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  put_bytes(out, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  put_bytes(out, s.data(), s.size());
}

template <class>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

// The value's encoding without its leading type field.
void put_value(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::UINT8:
      return put(out, v.as<uint8_t>());
    case GgufValueType::INT8:
      return put(out, v.as<int8_t>());
    case GgufValueType::UINT16:
      return put(out, v.as<uint16_t>());
    case GgufValueType::INT16:
      return put(out, v.as<int16_t>());
    case GgufValueType::UINT32:
      return put(out, v.as<uint32_t>());
    case GgufValueType::INT32:
      return put(out, v.as<int32_t>());
    case GgufValueType::FLOAT32:
      return put(out, v.as<float>());
    case GgufValueType::BOOL:
      return put<uint8_t>(out, v.as<bool>() ? 1 : 0);
    case GgufValueType::STRING:
      return put_string(out, v.as<std::string>());
    case GgufValueType::UINT64:
      return put(out, v.as<uint64_t>());
    case GgufValueType::INT64:
      return put(out, v.as<int64_t>());
    case GgufValueType::FLOAT64:
      return put(out, v.as<double>());
    case GgufValueType::ARRAY:
      break;
  }
  const GgufValueType et = v.array_type();
  put(out, static_cast<uint32_t>(et));
  put<uint64_t>(out, v.array_size());
  auto put_all = [&out](const auto& items) {
    for (const auto& x : items) {
      using X = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<X, std::string>) {
        put_string(out, x);
      } else if constexpr (std::is_same_v<X, GgufValue>) {
        put_value(out, x);
      } else {
        put<X>(out, x);
      }
    }
  };
  switch (et) {
    case GgufValueType::UINT8:
      return put_all(v.as_array<uint8_t>());
    case GgufValueType::INT8:
      return put_all(v.as_array<int8_t>());
    case GgufValueType::UINT16:
      return put_all(v.as_array<uint16_t>());
    case GgufValueType::INT16:
      return put_all(v.as_array<int16_t>());
    case GgufValueType::UINT32:
      return put_all(v.as_array<uint32_t>());
    case GgufValueType::INT32:
      return put_all(v.as_array<int32_t>());
    case GgufValueType::FLOAT32:
      return put_all(v.as_array<float>());
    case GgufValueType::BOOL:
      for (bool b : v.as_array<bool>()) put<uint8_t>(out, b ? 1 : 0);
      return;
    case GgufValueType::STRING:
      return put_all(v.as_array<std::string>());
    case GgufValueType::UINT64:
      return put_all(v.as_array<uint64_t>());
    case GgufValueType::INT64:
      return put_all(v.as_array<int64_t>());
    case GgufValueType::FLOAT64:
      return put_all(v.as_array<double>());
    case GgufValueType::ARRAY:
      return put_all(v.as_arrays());
  }
}

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

// Owns the temporary file until it is renamed: any exit before commit() removes it.
// The file is written beside its target and renamed over it, so a reader never sees half a file.
// A target that is a symbolic link is written through (the link's target is replaced, the link
// kept); one that exists but is not a regular file (a device, a FIFO, a directory) is refused:
// renaming over it would replace /dev/null by a file.
std::string resolve_target(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return path;  // absent: created
  std::string target = path;
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    const auto canonical = std::filesystem::weakly_canonical(path, ec);
    if (ec) throw std::runtime_error(path + ": cannot resolve the symbolic link: " + ec.message());
    target = canonical.string();
    if (::stat(target.c_str(), &st) != 0) return target;  // a dangling link: its target created
  }
  if (!S_ISREG(st.st_mode)) {
    throw std::runtime_error(path + ": exists and is not a regular file; refusing to replace it");
  }
  return target;
}

class TempFile {
 public:
  explicit TempFile(const std::string& target)
      : target_(resolve_target(target)), tmp_(target_ + ".tmp") {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) fail("open");
  }
  ~TempFile() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const uint8_t* p, size_t n) {
    if (n > 0 && std::fwrite(p, 1, n, f_) != n) fail("write");
  }
  void commit() {
    if (std::fflush(f_) != 0) fail("write");
    if (::fsync(::fileno(f_)) != 0) fail("fsync");
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) fail("close");
    if (std::rename(tmp_.c_str(), target_.c_str()) != 0) fail("rename to " + target_);
    committed_ = true;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(tmp_ + ": " + what + " failed: " + std::strerror(errno));
  }

  std::string target_;
  std::string tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

}  // namespace

void GgufWriter::set(std::string key, GgufValue value) {
  if (key.empty()) throw std::invalid_argument("GGUF metadata key must not be empty");
  if (key == "general.alignment") {
    if (!value.is<uint32_t>()) {
      throw std::invalid_argument("general.alignment: expected type UINT32, found " +
                                  value.type_description());
    }
    const uint32_t a = value.as<uint32_t>();
    if (a == 0 || (a & (a - 1)) != 0) {
      throw std::invalid_argument("general.alignment: expected a power of two, found " +
                                  std::to_string(a));
    }
  }
  for (GgufKv& kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  kvs_.push_back(GgufKv{std::move(key), std::move(value)});
}

uint32_t GgufWriter::alignment() const {
  for (const GgufKv& kv : kvs_) {
    if (kv.key == "general.alignment") return kv.value.as<uint32_t>();
  }
  return kGgufDefaultAlignment;
}

void GgufWriter::add_tensor(std::string name, uint32_t type, std::span<const int64_t> dims,
                            TensorFill fill) {
  if (!fill) throw std::invalid_argument("GGUF tensor '" + name + "': empty fill function");
  add_tensor_info(std::move(name), type, dims, std::move(fill), {});
}

void GgufWriter::add_tensor(std::string name, uint32_t type, std::span<const int64_t> dims,
                            std::span<const uint8_t> data) {
  add_tensor_info(std::move(name), type, dims, nullptr, data);
}

void GgufWriter::add_tensor_info(std::string name, uint32_t type, std::span<const int64_t> dims,
                                 TensorFill fill, std::span<const uint8_t> data) {
  const std::string what = "GGUF tensor '" + name + "'";
  if (name.empty()) throw std::invalid_argument("GGUF tensor name must not be empty");
  if (tensor_index_.count(name)) throw std::invalid_argument(what + ": duplicate name");
  if (dims.empty() || dims.size() > kGgufMaxDims) {
    throw std::invalid_argument(what + ": expected 1.." + std::to_string(kGgufMaxDims) +
                                " dims, found " + std::to_string(dims.size()));
  }
  Tensor t{
      std::move(name), static_cast<int>(dims.size()), {1, 1, 1, 1}, type, 0, std::move(fill), data};
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] < 1) {
      throw std::invalid_argument(what + ": expected positive dims, found dims[" +
                                  std::to_string(d) + "] = " + std::to_string(dims[d]));
    }
    t.dims[d] = dims[d];
  }
  try {
    t.size = ggml_tensor_bytes(type, t.dims.data(), t.n_dims);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(what + ": " + e.what());
  }
  if (!t.fill && data.size() != t.size) {
    throw std::invalid_argument(what + ": expected " + std::to_string(t.size) + " bytes of " +
                                ggml_type_name(type) + " data, found " +
                                std::to_string(data.size()));
  }
  tensor_index_.emplace(t.name, tensors_.size());
  tensors_.push_back(std::move(t));
}

void GgufWriter::stream(const Sink& sink) const {
  const uint64_t align = alignment();
  std::vector<uint8_t> head;
  put<uint32_t>(head, kGgufMagic);
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kvs_.size());
  for (const GgufKv& kv : kvs_) {
    put_string(head, kv.key);
    put(head, static_cast<uint32_t>(kv.value.type()));
    put_value(head, kv.value);
  }
  uint64_t offset = 0;
  size_t largest_fill = 0;
  for (const Tensor& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.n_dims));
    for (int d = 0; d < t.n_dims; ++d) put<int64_t>(head, t.dims[static_cast<size_t>(d)]);
    put<uint32_t>(head, t.type);
    put<uint64_t>(head, offset);
    offset = align_up(offset + t.size, align);
    if (t.fill) largest_fill = std::max(largest_fill, t.size);
  }
  sink(head.data(), head.size());
  // Padding comes from a small zero block: the alignment may be as large as 2^31.
  const std::vector<uint8_t> zeros(static_cast<size_t>(std::min<uint64_t>(align, 4096)), 0);
  auto pad_to = [&](uint64_t written) {
    for (uint64_t pad = align_up(written, align) - written; pad > 0;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(pad, zeros.size()));
      sink(zeros.data(), n);
      pad -= n;
    }
  };
  pad_to(head.size());
  head = {};

  std::vector<uint8_t> buf(largest_fill);  // reused by every tensor that has a fill function
  for (const Tensor& t : tensors_) {
    if (t.fill) {
      std::fill(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(t.size), uint8_t{0});
      t.fill(std::span<uint8_t>(buf.data(), t.size));
      sink(buf.data(), t.size);
    } else {
      sink(t.data.data(), t.size);
    }
    pad_to(t.size);
  }
}

void GgufWriter::write(const std::string& path) const {
  TempFile f(path);
  stream([&f](const uint8_t* p, size_t n) { f.write(p, n); });
  f.commit();
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out;
  stream([&out](const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); });
  return out;
}

}  // namespace bitnet::formats
