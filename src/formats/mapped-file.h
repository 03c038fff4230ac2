// Read-only view of a whole file. Large files are mmap'ed (MAP_PRIVATE, PROT_READ) and used in
// place, so model weights are never copied; small ones are read into a 64-byte aligned buffer,
// which is cheaper than a mapping for a few kilobytes of tokenizer or test data. Move-only (RAII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/aligned-buffer.h"

namespace bitnet::formats {

class MappedFile {
 public:
  static constexpr size_t kDefaultMmapThreshold = size_t{64} << 20;

  MappedFile() = default;
  // Files of at least mmap_threshold bytes are mapped, smaller ones read. Only regular files are
  // accepted. Throws std::runtime_error naming the path and the errno text.
  explicit MappedFile(std::string path, size_t mmap_threshold = kDefaultMmapThreshold);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // The file's bytes; 64-byte aligned when read, page aligned when mapped. Valid for the lifetime
  // of this object (moving it keeps the pointer).
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool is_mapped() const { return map_ != nullptr; }

 private:
  void release() noexcept;

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;  // mmap base (length size_), or null when the file was read
  AlignedBuffer<uint8_t> buffer_;
};

}  // namespace bitnet::formats
