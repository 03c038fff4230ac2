// GGUF parsing and validation. Every count read from the file is checked against the bytes that
// remain before anything is allocated for it, so memory stays within a small multiple of the file
// size whatever the file claims.
#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <utility>

#include "formats/ggml-types.h"
#include "formats/gguf.h"

namespace bitnet::formats {

namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a LE host");

// Arrays of arrays deeper than this are rejected: real files never nest, and unbounded nesting
// would let a file drive the recursive parser into a stack overflow.
constexpr int kMaxArrayDepth = 8;

std::string quoted(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "'";
  for (char c : s.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  if (s.size() > kMax) out += "...";
  return out + "'";
}

bool known_value_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufValueType::FLOAT64);
}

class Parser {
 public:
  Parser(const std::string& path, const uint8_t* data, size_t size)
      : path_(path), data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& field, const std::string& expected,
                         const std::string& found) const {
    throw GgufError(path_ + ": " + field + ": expected " + expected + ", found " + found);
  }

  void need(size_t n, const std::string& field) const {
    if (remaining() < n) {
      fail(field, std::to_string(n) + " bytes at offset " + std::to_string(pos_),
           "only " + std::to_string(remaining()) + " before the end of the file");
    }
  }

  template <class T>
  T read(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // A u64 count of things of at least `min_bytes` each, bounded by the bytes left.
  uint64_t read_count(const std::string& field, uint64_t min_bytes) {
    const uint64_t n = read<uint64_t>(field);
    const uint64_t limit = remaining() / min_bytes;
    if (n > limit) {
      fail(field,
           "at most " + std::to_string(limit) + " (what the " + std::to_string(remaining()) +
               " remaining bytes can hold)",
           std::to_string(n));
    }
    return n;
  }

  std::string read_string(const std::string& field) {
    const uint64_t len = read<uint64_t>(field + " string length");
    if (len > remaining()) {
      fail(field + " string length",
           "at most " + std::to_string(remaining()) + " (the bytes left in the file)",
           std::to_string(len));
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

  // Field names of metadata values are built only on failure: `kv_field` names the key and
  // `index_path_` the array elements being read ("metadata key #3 'x' [5][2]").
  GgufValue read_value(GgufValueType type, const std::string& kv_field, int depth) {
    switch (type) {
      case GgufValueType::UINT8:
        return GgufValue(read<uint8_t>(element_field(kv_field)));
      case GgufValueType::INT8:
        return GgufValue(read<int8_t>(element_field(kv_field)));
      case GgufValueType::UINT16:
        return GgufValue(read<uint16_t>(element_field(kv_field)));
      case GgufValueType::INT16:
        return GgufValue(read<int16_t>(element_field(kv_field)));
      case GgufValueType::UINT32:
        return GgufValue(read<uint32_t>(element_field(kv_field)));
      case GgufValueType::INT32:
        return GgufValue(read<int32_t>(element_field(kv_field)));
      case GgufValueType::FLOAT32:
        return GgufValue(read<float>(element_field(kv_field)));
      case GgufValueType::BOOL:
        return GgufValue(read_bool(kv_field));
      case GgufValueType::STRING:
        return GgufValue(read_string_value(kv_field));
      case GgufValueType::UINT64:
        return GgufValue(read<uint64_t>(element_field(kv_field)));
      case GgufValueType::INT64:
        return GgufValue(read<int64_t>(element_field(kv_field)));
      case GgufValueType::FLOAT64:
        return GgufValue(read<double>(element_field(kv_field)));
      case GgufValueType::ARRAY:
        return read_array(kv_field, depth);
    }
    fail(element_field(kv_field) + " value type", "a GGUF value type 0..12",
         std::to_string(static_cast<uint32_t>(type)));
  }

 private:
  std::string element_field(const std::string& kv_field) const {
    std::string f = kv_field;
    for (uint64_t i : index_path_) f += " [" + std::to_string(i) + "]";
    return f;
  }

  bool read_bool(const std::string& kv_field) {
    const uint8_t b = read<uint8_t>(element_field(kv_field));
    if (b > 1) fail(element_field(kv_field) + " bool", "0 or 1", std::to_string(b));
    return b == 1;
  }

  std::string read_string_value(const std::string& kv_field) {
    if (remaining() >= 8) {
      uint64_t len;
      std::memcpy(&len, data_ + pos_, 8);
      if (len <= remaining() - 8) {  // fast path: no field name is built
        pos_ += 8;
        std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        return s;
      }
    }
    return read_string(element_field(kv_field));
  }

  template <class T>
  std::vector<T> read_elements(uint64_t n, const std::string& kv_field) {
    std::vector<T> out(static_cast<size_t>(n));
    if constexpr (std::is_same_v<T, bool>) {
      for (uint64_t i = 0; i < n; ++i) {
        index_path_.back() = i;
        out[static_cast<size_t>(i)] = read_bool(kv_field);
      }
    } else if constexpr (std::is_same_v<T, std::string>) {
      for (uint64_t i = 0; i < n; ++i) {
        index_path_.back() = i;
        out[static_cast<size_t>(i)] = read_string_value(kv_field);
      }
    } else {
      // The count was bounded by the remaining bytes with the element size: one bulk copy.
      const size_t bytes = static_cast<size_t>(n) * sizeof(T);
      if (bytes > 0) std::memcpy(out.data(), data_ + pos_, bytes);
      pos_ += bytes;
    }
    return out;
  }

  GgufValue read_array(const std::string& kv_field, int depth) {
    if (depth >= kMaxArrayDepth) {
      fail(element_field(kv_field) + " array nesting",
           "at most " + std::to_string(kMaxArrayDepth) + " levels", "a deeper array");
    }
    const uint32_t t = read<uint32_t>(element_field(kv_field) + " array element type");
    if (!known_value_type(t)) {
      fail(element_field(kv_field) + " array element type", "a GGUF value type 0..12",
           std::to_string(t));
    }
    const auto et = static_cast<GgufValueType>(t);
    const uint64_t n =
        read_count(element_field(kv_field) + " array count", gguf_min_value_bytes(et));
    index_path_.push_back(0);
    GgufValue v = read_array_body(et, n, kv_field, depth);
    index_path_.pop_back();
    return v;
  }

  GgufValue read_array_body(GgufValueType et, uint64_t n, const std::string& kv_field, int depth) {
    switch (et) {
      case GgufValueType::UINT8:
        return GgufValue(read_elements<uint8_t>(n, kv_field));
      case GgufValueType::INT8:
        return GgufValue(read_elements<int8_t>(n, kv_field));
      case GgufValueType::UINT16:
        return GgufValue(read_elements<uint16_t>(n, kv_field));
      case GgufValueType::INT16:
        return GgufValue(read_elements<int16_t>(n, kv_field));
      case GgufValueType::UINT32:
        return GgufValue(read_elements<uint32_t>(n, kv_field));
      case GgufValueType::INT32:
        return GgufValue(read_elements<int32_t>(n, kv_field));
      case GgufValueType::FLOAT32:
        return GgufValue(read_elements<float>(n, kv_field));
      case GgufValueType::BOOL:
        return GgufValue(read_elements<bool>(n, kv_field));
      case GgufValueType::STRING:
        return GgufValue(read_elements<std::string>(n, kv_field));
      case GgufValueType::UINT64:
        return GgufValue(read_elements<uint64_t>(n, kv_field));
      case GgufValueType::INT64:
        return GgufValue(read_elements<int64_t>(n, kv_field));
      case GgufValueType::FLOAT64:
        return GgufValue(read_elements<double>(n, kv_field));
      case GgufValueType::ARRAY:
        break;
    }
    std::vector<GgufValue> items;
    items.reserve(static_cast<size_t>(n));
    for (uint64_t i = 0; i < n; ++i) {
      index_path_.back() = i;
      items.push_back(read_array(kv_field, depth + 1));
    }
    return GgufValue(std::move(items));
  }

  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::vector<uint64_t> index_path_;
};

}  // namespace

uint64_t gguf_min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
    case GgufValueType::STRING:
      return 8;
    case GgufValueType::ARRAY:
      return 12;
  }
  return 1;
}

GgufFile GgufFile::open(const std::string& path, const GgufOpenOptions& options) {
  GgufFile f;
  f.file_ = MappedFile(path, options.mmap_threshold);
  f.path_ = path;
  f.data_ = f.file_.data();
  f.size_ = f.file_.size();
  f.parse();
  return f;
}

GgufFile GgufFile::from_memory(std::span<const uint8_t> bytes, std::string name) {
  GgufFile f;
  f.path_ = std::move(name);
  f.data_ = bytes.data();
  f.size_ = bytes.size();
  f.parse();
  return f;
}

void GgufFile::parse() {
  Parser p(path_, data_, size_);

  const uint32_t magic = p.read<uint32_t>("magic");
  if (magic != kGgufMagic) {
    std::string found;
    for (int i = 0; i < 4; ++i) found += static_cast<char>((magic >> (8 * i)) & 0xff);
    p.fail("magic", "'GGUF'", quoted(found));
  }
  version_ = p.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    const uint32_t swapped = (version_ >> 24) | ((version_ >> 8) & 0xff00) |
                             ((version_ << 8) & 0xff0000) | (version_ << 24);
    p.fail("version", "2 or 3",
           std::to_string(version_) + (swapped == 2 || swapped == 3
                                           ? " (a big-endian file, which is not supported)"
                                       : version_ == 1 ? " (GGUF v1, which is not supported)"
                                                       : ""));
  }
  // Smallest tensor info: a 1-byte name (8 + 1), n_dims (4), one dim (8), type (4), offset (8).
  // Smallest kv: an empty key (8), the type (4) and a 1-byte value.
  const uint64_t n_tensors = p.read_count("tensor count", 33);
  const uint64_t n_kv = p.read_count("kv count", 13);
  if (n_tensors * 33 + n_kv * 13 > p.remaining()) {
    p.fail("tensor count and kv count",
           "at most " + std::to_string(p.remaining()) + " bytes of kvs and tensor infos",
           std::to_string(n_tensors) + " tensors and " + std::to_string(n_kv) +
               " kvs, which need at least " + std::to_string(n_tensors * 33 + n_kv * 13));
  }

  kvs_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string idx = "metadata key #" + std::to_string(i);
    std::string key = p.read_string(idx + " name");
    if (key.empty()) p.fail(idx + " name", "a non-empty key", "an empty one");
    const std::string field = idx + " " + quoted(key);
    if (kv_index_.count(key)) {
      p.fail(field, "a unique key",
             "a duplicate of metadata key #" + std::to_string(kv_index_.find(key)->second));
    }
    const uint32_t t = p.read<uint32_t>(field + " value type");
    if (!known_value_type(t)) {
      p.fail(field + " value type", "a GGUF value type 0..12", std::to_string(t));
    }
    GgufValue v = p.read_value(static_cast<GgufValueType>(t), field, 0);
    kv_index_.emplace(key, kvs_.size());
    kvs_.push_back(GgufKv{std::move(key), std::move(v)});
  }

  if (const GgufValue* a = find("general.alignment")) {
    const std::string field = "metadata key #" +
                              std::to_string(kv_index_.find("general.alignment")->second) +
                              " 'general.alignment'";
    if (!a->is<uint32_t>()) p.fail(field, "type UINT32", a->type_description());
    const uint32_t al = a->as<uint32_t>();
    if (al == 0 || (al & (al - 1)) != 0) p.fail(field, "a power of two", std::to_string(al));
    alignment_ = al;
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string idx = "tensor #" + std::to_string(i);
    GgufTensorInfo t;
    t.name = p.read_string(idx + " name");
    if (t.name.empty()) p.fail(idx + " name", "a non-empty name", "an empty one");
    const std::string field = "tensor " + quoted(t.name);
    if (tensor_index_.count(t.name)) {
      p.fail(idx + " name", "a unique name",
             quoted(t.name) + " again (also tensor #" +
                 std::to_string(tensor_index_.find(t.name)->second) + ")");
    }
    const uint32_t n_dims = p.read<uint32_t>(field + " n_dims");
    if (n_dims < 1 || n_dims > kGgufMaxDims) {
      p.fail(field + " n_dims", "1.." + std::to_string(kGgufMaxDims), std::to_string(n_dims));
    }
    t.n_dims = static_cast<int>(n_dims);
    uint64_t elems = 1;
    for (int d = 0; d < t.n_dims; ++d) {
      const std::string dfield = field + " dims[" + std::to_string(d) + "]";
      const auto ne = p.read<int64_t>(dfield);
      if (ne < 1) p.fail(dfield, "a positive size", std::to_string(ne));
      const auto une = static_cast<uint64_t>(ne);
      if (elems > (uint64_t{1} << 62) / une) {
        p.fail(dfield, "an element count below 2^62", "a product of dims that overflows");
      }
      elems *= une;
      t.dims[static_cast<size_t>(d)] = ne;
    }
    t.type = p.read<uint32_t>(field + " type");
    if (!ggml_type_info(t.type)) {
      p.fail(field + " type", "a known ggml type id", ggml_type_name(t.type));
    }
    try {
      t.size = ggml_tensor_bytes(t.type, t.dims.data(), t.n_dims);
    } catch (const std::invalid_argument& e) {
      p.fail(field + " dims", "dims valid for " + ggml_type_name(t.type), e.what());
    }
    t.offset = p.read<uint64_t>(field + " offset");
    if (t.offset % alignment_ != 0) {
      p.fail(field + " offset", "a multiple of the alignment " + std::to_string(alignment_),
             std::to_string(t.offset));
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment. A file without tensors may end
  // before it.
  const uint64_t info_end = p.pos();
  data_offset_ = (info_end + alignment_ - 1) / alignment_ * alignment_;
  if (tensors_.empty()) return;
  if (data_offset_ > size_) {
    p.fail("data section", "it to start at offset " + std::to_string(data_offset_),
           "the end of the file at " + std::to_string(size_));
  }
  const uint64_t data_size = size_ - data_offset_;
  for (GgufTensorInfo& t : tensors_) {
    if (t.offset > data_size || t.size > data_size - t.offset) {
      p.fail("tensor " + quoted(t.name) + " offset",
             "its " + std::to_string(t.size) + " bytes of " + ggml_type_name(t.type) +
                 " data within the " + std::to_string(data_size) + "-byte data section",
             "offset " + std::to_string(t.offset) + " (ends at " +
                 std::to_string(t.offset + t.size) + ")");
    }
    t.data = data_ + data_offset_ + t.offset;
  }
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const GgufTensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& prev = *by_offset[i - 1];
    const GgufTensorInfo& cur = *by_offset[i];
    if (cur.offset < prev.offset + prev.size) {
      p.fail("tensor " + quoted(cur.name) + " offset",
             "no overlap with tensor " + quoted(prev.name) + " (offset " +
                 std::to_string(prev.offset) + ", " + std::to_string(prev.size) +
                 " bytes): at least " + std::to_string(prev.offset + prev.size),
             std::to_string(cur.offset));
    }
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufValue& GgufFile::value(std::string_view key) const {
  if (const GgufValue* v = find(key)) return *v;
  throw GgufError(path_ + ": metadata key " + quoted(key) + ": expected it to be present, found " +
                  "no such key");
}

void GgufFile::throw_key_type(std::string_view key, GgufValueType expected, bool array,
                              const GgufValue& found) const {
  throw GgufError(path_ + ": metadata key " + quoted(key) + ": expected type " +
                  (array ? "array of " : "") + gguf_type_name(expected) + ", found " +
                  found.type_description());
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(std::string_view name) const {
  if (const GgufTensorInfo* t = find_tensor(name)) return *t;
  throw GgufError(path_ + ": tensor " + quoted(name) + ": expected it to be present, found " +
                  "no such tensor among " + std::to_string(tensors_.size()));
}

// GgufValue ------------------------------------------------------------------------------------

namespace {

template <class>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {
  using Elem = T;
};

template <class T>
bool same_bits(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, float>) {
    return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
  } else if constexpr (std::is_same_v<T, double>) {
    return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
  } else if constexpr (std::is_same_v<T, std::vector<float>> ||
                       std::is_same_v<T, std::vector<double>>) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [](const auto& x, const auto& y) { return same_bits(x, y); });
  } else {
    return a == b;
  }
}

}  // namespace

std::string gguf_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::UINT8:
      return "UINT8";
    case GgufValueType::INT8:
      return "INT8";
    case GgufValueType::UINT16:
      return "UINT16";
    case GgufValueType::INT16:
      return "INT16";
    case GgufValueType::UINT32:
      return "UINT32";
    case GgufValueType::INT32:
      return "INT32";
    case GgufValueType::FLOAT32:
      return "FLOAT32";
    case GgufValueType::BOOL:
      return "BOOL";
    case GgufValueType::STRING:
      return "STRING";
    case GgufValueType::ARRAY:
      return "ARRAY";
    case GgufValueType::UINT64:
      return "UINT64";
    case GgufValueType::INT64:
      return "INT64";
    case GgufValueType::FLOAT64:
      return "FLOAT64";
  }
  return "type " + std::to_string(static_cast<uint32_t>(type));
}

GgufValue::GgufValue(std::vector<GgufValue> arrays) {
  for (size_t i = 0; i < arrays.size(); ++i) {
    if (!arrays[i].is_array()) {
      throw std::invalid_argument("array of arrays: item " + std::to_string(i) + " is a " +
                                  arrays[i].type_description() + ", not an array");
    }
  }
  v_ = std::move(arrays);
}

GgufValueType GgufValue::type() const {
  return std::visit(
      [](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (IsVector<V>::value) {
          return GgufValueType::ARRAY;
        } else {
          return GgufTypeOf<V>::value;
        }
      },
      v_);
}

GgufValueType GgufValue::array_type() const {
  return std::visit(
      [this](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::vector<GgufValue>>) {
          return GgufValueType::ARRAY;
        } else if constexpr (IsVector<V>::value) {
          return GgufTypeOf<typename IsVector<V>::Elem>::value;
        } else {
          throw GgufError("expected an array, found " + type_description());
          return GgufValueType::ARRAY;
        }
      },
      v_);
}

size_t GgufValue::array_size() const {
  return std::visit(
      [this](const auto& v) -> size_t {
        using V = std::decay_t<decltype(v)>;
        if constexpr (IsVector<V>::value) {
          return v.size();
        } else {
          throw GgufError("expected an array, found " + type_description());
        }
      },
      v_);
}

const std::vector<GgufValue>& GgufValue::as_arrays() const {
  if (const auto* p = std::get_if<std::vector<GgufValue>>(&v_)) return *p;
  throw_type_mismatch(GgufValueType::ARRAY, true);
}

std::string GgufValue::type_description() const {
  return is_array() ? "array of " + gguf_type_name(array_type()) : gguf_type_name(type());
}

void GgufValue::throw_type_mismatch(GgufValueType expected, bool array) const {
  throw GgufError("expected a value of type " + std::string(array ? "array of " : "") +
                  gguf_type_name(expected) + ", found " + type_description());
}

bool GgufValue::operator==(const GgufValue& o) const {
  if (v_.index() != o.v_.index()) return false;
  return std::visit(
      [&o](const auto& a) {
        using V = std::decay_t<decltype(a)>;
        return same_bits(a, std::get<V>(o.v_));
      },
      v_);
}

std::optional<int64_t> GgufValue::as_integer() const {
  if (is<uint8_t>()) return as<uint8_t>();
  if (is<int8_t>()) return as<int8_t>();
  if (is<uint16_t>()) return as<uint16_t>();
  if (is<int16_t>()) return as<int16_t>();
  if (is<uint32_t>()) return as<uint32_t>();
  if (is<int32_t>()) return as<int32_t>();
  if (is<int64_t>()) return as<int64_t>();
  if (is<uint64_t>() && as<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(as<uint64_t>());
  }
  return std::nullopt;
}

}  // namespace bitnet::formats
