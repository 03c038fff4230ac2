// safetensors files (Hugging Face checkpoints): reader for single files and sharded checkpoints.
//
// Layout: u64 little-endian header length N, N bytes of JSON (an object; trailing spaces allowed),
// then the data section. The JSON maps each tensor name to {"dtype": "BF16", "shape": [d0, d1, ...]
// (row-major, outermost first, as PyTorch), "data_offsets": [begin, end)} relative to the data
// section; the optional "__metadata__" entry maps strings to strings. Element data are
// little-endian and need no alignment.
//
// SafetensorsFile validates the whole header before exposing it: offsets inside the data section,
// byte sizes equal to product(shape) * dtype size, no two tensors overlapping (in any order). A
// dtype the engine does not read (F64, I64, BOOL, F8_*, ...) is accepted when its size is known and
// reported only when that tensor's values are requested. Every error is a SafetensorsError whose
// message names the file, the tensor and what was expected vs found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "formats/mapped-file.h"

namespace bitnet::formats {

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The dtypes the engine reads; every other dtype name is Unsupported.
enum class SafetensorsDtype { BF16, F16, F32, U8, I8, Unsupported };

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = uint64_t{100} << 20;

struct SafetensorsTensor {
  std::string name;
  std::string dtype_name;  // as written in the header ("BF16", "F64", ...)
  SafetensorsDtype dtype = SafetensorsDtype::Unsupported;
  std::vector<int64_t> shape;  // outermost first; empty for a scalar
  uint64_t begin = 0;          // data_offsets, relative to the data section
  uint64_t end = 0;
  const uint8_t* data = nullptr;  // into the file's bytes; no alignment guaranteed
  size_t size = 0;                // end - begin
  std::string file;               // path of the file holding it (for messages)

  int64_t n_elements() const;  // product of shape (1 for a scalar)
  std::span<const uint8_t> bytes() const { return {data, size}; }
};

// Bytes per element of a supported dtype (Unsupported: throws std::invalid_argument).
size_t safetensors_dtype_size(SafetensorsDtype dtype);

// Throws SafetensorsError naming the file, the tensor and its dtype unless it is one the engine
// reads (BF16, F16, F32, U8, I8).
void require_supported(const SafetensorsTensor& t);

// Elements [first, first + n) of the tensor (row-major) converted to float. Throws SafetensorsError
// for an unsupported dtype and std::out_of_range for a range past the end.
void safetensors_to_f32(const SafetensorsTensor& t, int64_t first, int64_t n, float* dst);

// One parsed file. Owns its bytes (unless made by from_memory); tensor data pointers stay valid
// while the object lives, across moves. Move-only.
class SafetensorsFile {
 public:
  // Throws std::runtime_error when the file cannot be read, SafetensorsError when it is not valid.
  static SafetensorsFile open(const std::string& path,
                              size_t mmap_threshold = MappedFile::kDefaultMmapThreshold);
  // Parses bytes owned by the caller, which must outlive the result. `name` stands for the path in
  // error messages.
  static SafetensorsFile from_memory(std::span<const uint8_t> bytes, std::string name = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t data_offset() const { return data_offset_; }  // 8 + header length
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Sorted by name.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  // Throws SafetensorsError naming the file and tensor when absent.
  const SafetensorsTensor& tensor(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  void parse();

  MappedFile file_;  // empty for from_memory
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint64_t data_offset_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
};

// A checkpoint that may be split into shards: a directory holding model.safetensors.index.json
// ({"weight_map": {tensor: shard file}}) or a single model.safetensors. Every tensor name must be
// unique across the shards, and every weight_map entry must exist in the shard it names.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open_dir(const std::string& dir);
  // An index file; shard names are resolved relative to its directory and may not leave it.
  static SafetensorsCheckpoint open_index(const std::string& index_path);
  static SafetensorsCheckpoint from_files(std::vector<SafetensorsFile> shards);

  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  const SafetensorsTensor* find(std::string_view name) const;
  // Throws SafetensorsError naming the checkpoint and tensor when absent.
  const SafetensorsTensor& tensor(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  const std::string& source() const { return source_; }

 private:
  std::string source_;  // the directory or index file, for messages
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, const SafetensorsTensor*, std::less<>> index_;
};

}  // namespace bitnet::formats
