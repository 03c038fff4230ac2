#include "model/prepared-cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace bitnet::model {
namespace {

constexpr char kMagic[8] = {'B', 'N', 'P', 'R', 'E', 'P', 0, 1};
constexpr uint64_t kPage = 4096;
constexpr size_t kNameBytes = 96;
constexpr uint32_t kMaxEntries = 1 << 16;

struct Header {
  char magic[8];
  uint32_t format_version;
  uint32_t layout;
  uint32_t isa;
  uint32_t n_entries;
  uint64_t source_size;
  int64_t source_mtime_ns;
  uint64_t source_path_hash;
  uint64_t file_size;
  uint64_t table_checksum;
  uint64_t data_checksum;
  uint64_t header_checksum;  // of all bytes above
};

struct Entry {
  char name[kNameBytes];
  int64_t n;
  int64_t k;
  uint64_t data_offset;
  uint64_t data_bytes;
  uint64_t scale_offset;
  uint64_t scale_bytes;
};

uint64_t fnv1a(const void* p, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

// Fast position-dependent checksum over 8-byte words (four independent lanes): detects flipped,
// zeroed or shuffled data at a few GB/s, much faster than the bytes take to arrive from disk.
uint64_t data_hash(const uint8_t* p, size_t n, uint64_t seed) {
  uint64_t h[4] = {seed, seed ^ 0x9e3779b97f4a7c15ull, seed + 1, seed * 3 + 7};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      h[l] = (h[l] ^ w) * 0x9fb21c651e98df25ull;
      h[l] ^= h[l] >> 29;
    }
  }
  uint64_t r = fnv1a(p + i, n - i, h[0] ^ (h[1] << 1) ^ (h[2] << 2) ^ (h[3] << 3));
  return r ^ n;
}

uint64_t align_up(uint64_t v) {
  return (v + kPage - 1) / kPage * kPage;
}

uint64_t matrix_data_bytes(const kernels::TernaryMatrixView& v) {
  return v.group_bytes * static_cast<uint64_t>(v.groups());
}
uint64_t matrix_scale_bytes(const kernels::TernaryMatrixView& v) {
  return static_cast<uint64_t>(v.groups()) * kernels::kGroupRows * sizeof(float);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void write_at(int fd, const std::string& path, const void* p, size_t n, uint64_t offset) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, b, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": write failed: " + std::strerror(errno));
    }
    b += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

}  // namespace

SourceIdentity identify_source(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw std::runtime_error(path + ": cannot stat: " + std::strerror(errno));
  }
  SourceIdentity id;
  std::error_code ec;
  const auto abs = std::filesystem::absolute(path, ec);
  id.path = ec ? path : abs.lexically_normal().string();
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("BITNET_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/bitnet-cxx";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/bitnet-cxx";
  return "/tmp/bitnet-cxx-cache";
}

std::string prepared_cache_path(const std::string& dir, const SourceIdentity& source,
                                kernels::TernaryLayout layout, kernels::Isa isa) {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(fnv1a(source.path.data(), source.path.size())));
  const std::string base = std::filesystem::path(source.path).filename().string();
  return dir + "/" + base + "." + hash + "." + kernels::layout_name(layout) + "." +
         kernels::isa_name(isa) + ".bnprep";
}

void write_prepared_cache(const std::string& path, const SourceIdentity& source,
                          kernels::TernaryLayout layout, kernels::Isa isa,
                          const std::vector<PreparedMatrix>& matrices) {
  if (matrices.size() > kMaxEntries) throw std::runtime_error(path + ": too many matrices");
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw std::runtime_error(tmp + ": cannot create: " + std::strerror(errno));
  try {
    std::vector<Entry> table(matrices.size());
    uint64_t offset = align_up(kPage + table.size() * sizeof(Entry));
    uint64_t data_check = 0x51ed270b27e1f9a5ull;
    for (size_t i = 0; i < matrices.size(); ++i) {
      const kernels::TernaryMatrixView& v = *matrices[i].view;
      if (v.layout != layout) throw std::runtime_error(path + ": matrix layouts differ");
      Entry& e = table[i];
      std::memset(&e, 0, sizeof e);
      if (matrices[i].name.size() >= kNameBytes) throw std::runtime_error(path + ": name too long");
      std::memcpy(e.name, matrices[i].name.data(), matrices[i].name.size());
      e.n = v.n;
      e.k = v.k;
      e.data_offset = offset;
      e.data_bytes = matrix_data_bytes(v);
      offset = align_up(offset + e.data_bytes);
      e.scale_offset = offset;
      e.scale_bytes = matrix_scale_bytes(v);
      offset = align_up(offset + e.scale_bytes);
      write_at(fd.get(), tmp, v.data, e.data_bytes, e.data_offset);
      write_at(fd.get(), tmp, v.row_scale, e.scale_bytes, e.scale_offset);
      data_check = data_hash(v.data, e.data_bytes, data_check);
      data_check =
          data_hash(reinterpret_cast<const uint8_t*>(v.row_scale), e.scale_bytes, data_check);
    }
    Header h;
    std::memset(&h, 0, sizeof h);
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    h.format_version = kPreparedFormatVersion;
    h.layout = static_cast<uint32_t>(layout);
    h.isa = static_cast<uint32_t>(isa);
    h.n_entries = static_cast<uint32_t>(table.size());
    h.source_size = source.size;
    h.source_mtime_ns = source.mtime_ns;
    h.source_path_hash = fnv1a(source.path.data(), source.path.size());
    h.file_size = offset;
    h.table_checksum = fnv1a(table.data(), table.size() * sizeof(Entry));
    h.data_checksum = data_check;
    h.header_checksum = fnv1a(&h, offsetof(Header, header_checksum));
    if (!table.empty()) write_at(fd.get(), tmp, table.data(), table.size() * sizeof(Entry), kPage);
    write_at(fd.get(), tmp, &h, sizeof h, 0);
    if (::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0 || ::fsync(fd.get()) != 0) {
      throw std::runtime_error(tmp + ": cannot finish: " + std::strerror(errno));
    }
    if (::close(fd.release()) != 0) throw std::runtime_error(tmp + ": close failed");
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      throw std::runtime_error(path + ": cannot rename into place: " + std::strerror(errno));
    }
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

std::optional<PreparedCache> open_prepared_cache(const std::string& path,
                                                 const SourceIdentity& source,
                                                 kernels::TernaryLayout layout, kernels::Isa isa,
                                                 std::string* why) {
  auto reject = [&](const std::string& reason) -> std::optional<PreparedCache> {
    if (why) *why = reason;
    return std::nullopt;
  };
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return reject("no cache file yet");
  std::shared_ptr<formats::MappedFile> map;
  try {
    map = std::make_shared<formats::MappedFile>(path, 0);  // always mapped: used in place
  } catch (const std::exception& e) {
    return reject(std::string("unreadable: ") + e.what());
  }
  const uint8_t* base = map->data();
  const uint64_t size = map->size();
  if (size < kPage) return reject("truncated (no header)");
  Header h;
  std::memcpy(&h, base, sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return reject("not a prepared-model cache");
  if (h.header_checksum != fnv1a(&h, offsetof(Header, header_checksum))) {
    return reject("header checksum mismatch (corrupt)");
  }
  if (h.format_version != kPreparedFormatVersion) return reject("older cache format");
  if (h.layout != static_cast<uint32_t>(layout) || h.isa != static_cast<uint32_t>(isa)) {
    return reject("made for another layout or ISA");
  }
  if (h.source_size != source.size || h.source_mtime_ns != source.mtime_ns ||
      h.source_path_hash != fnv1a(source.path.data(), source.path.size())) {
    return reject("stale: the model file changed");
  }
  if (h.file_size != size) return reject("truncated or extended (size mismatch)");
  if (h.n_entries > kMaxEntries || kPage + uint64_t{h.n_entries} * sizeof(Entry) > size) {
    return reject("entry table out of bounds (corrupt)");
  }
  std::vector<Entry> table(h.n_entries);
  if (!table.empty()) std::memcpy(table.data(), base + kPage, table.size() * sizeof(Entry));
  if (h.table_checksum != fnv1a(table.data(), table.size() * sizeof(Entry))) {
    return reject("entry table checksum mismatch (corrupt)");
  }
  PreparedCache out;
  uint64_t data_check = 0x51ed270b27e1f9a5ull;
  for (const Entry& e : table) {
    if (e.name[kNameBytes - 1] != 0 || e.n < 1 || e.k < kernels::kKMultiple ||
        e.k % kernels::kKMultiple != 0) {
      return reject("bad entry (corrupt)");
    }
    kernels::TernaryMatrixView v;
    v.layout = layout;
    v.n = e.n;
    v.k = e.k;
    v.group_bytes = kernels::packed_group_bytes(layout, e.k);
    if (e.data_bytes != matrix_data_bytes(v) || e.scale_bytes != matrix_scale_bytes(v) ||
        e.data_offset % kPage != 0 || e.scale_offset % kPage != 0 || e.data_offset > size ||
        e.data_bytes > size - e.data_offset || e.scale_offset > size ||
        e.scale_bytes > size - e.scale_offset) {
      return reject("entry '" + std::string(e.name) + "' out of bounds (corrupt)");
    }
    v.data = base + e.data_offset;
    v.row_scale = reinterpret_cast<const float*>(base + e.scale_offset);
    data_check = data_hash(v.data, e.data_bytes, data_check);
    data_check = data_hash(base + e.scale_offset, e.scale_bytes, data_check);
    out.matrices.emplace_back(e.name, v);
  }
  if (data_check != h.data_checksum) return reject("data checksum mismatch (corrupt)");
  out.mapping = std::move(map);
  return out;
}

}  // namespace bitnet::model
