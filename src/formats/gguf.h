// GGUF files (versions 2 and 3, little-endian): reader and writer.
//
// Layout: "GGUF", u32 version, u64 tensor count, u64 kv count, the kvs (string key, u32 value
// type, value), the tensor infos (string name, u32 n_dims, u64 dims[n_dims] with ne0 first, u32
// ggml type, u64 offset relative to the data section), padding to general.alignment (default 32),
// then the tensor data. Strings are a u64 byte length and the bytes (no terminator); arrays are a
// u32 element type, a u64 count and the elements, which may themselves be arrays.
//
// GgufFile validates everything before exposing it: a corrupt or hostile file throws GgufError and
// never makes the reader crash, loop or allocate more than a small multiple of the file size.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "formats/mapped-file.h"

namespace bitnet::formats {

// Every reader failure: the message names the file, the field and what was expected vs found.
class GgufError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

// "UINT32", ..., or "type 99" for an id outside the enum.
std::string gguf_type_name(GgufValueType type);

// Bytes of one encoded value of this type: the whole value for a number or BOOL, the smallest
// encoding of a STRING (its 8-byte length) or an ARRAY (its element type and count, 12 bytes).
uint64_t gguf_min_value_bytes(GgufValueType type);

// The C++ type of each GGUF element type (everything but ARRAY).
template <class T>
struct GgufTypeOf;  // undefined: T is not a GGUF element type
template <GgufValueType V>
struct GgufTypeTag {
  static constexpr GgufValueType value = V;
};
template <>
struct GgufTypeOf<uint8_t> : GgufTypeTag<GgufValueType::UINT8> {};
template <>
struct GgufTypeOf<int8_t> : GgufTypeTag<GgufValueType::INT8> {};
template <>
struct GgufTypeOf<uint16_t> : GgufTypeTag<GgufValueType::UINT16> {};
template <>
struct GgufTypeOf<int16_t> : GgufTypeTag<GgufValueType::INT16> {};
template <>
struct GgufTypeOf<uint32_t> : GgufTypeTag<GgufValueType::UINT32> {};
template <>
struct GgufTypeOf<int32_t> : GgufTypeTag<GgufValueType::INT32> {};
template <>
struct GgufTypeOf<float> : GgufTypeTag<GgufValueType::FLOAT32> {};
template <>
struct GgufTypeOf<bool> : GgufTypeTag<GgufValueType::BOOL> {};
template <>
struct GgufTypeOf<std::string> : GgufTypeTag<GgufValueType::STRING> {};
template <>
struct GgufTypeOf<uint64_t> : GgufTypeTag<GgufValueType::UINT64> {};
template <>
struct GgufTypeOf<int64_t> : GgufTypeTag<GgufValueType::INT64> {};
template <>
struct GgufTypeOf<double> : GgufTypeTag<GgufValueType::FLOAT64> {};

template <class T>
concept GgufElement = requires {
  GgufTypeOf<T>::value;
};
template <class T>
concept GgufScalar = GgufElement<T> && !std::is_same_v<T, std::string>;

// One metadata value: a scalar, a string, or an array (of one element type; arrays of arrays hold
// GgufValues that are each an array, possibly of different element types).
class GgufValue {
 public:
  template <GgufScalar T>
  explicit GgufValue(T v) : v_(v) {}
  explicit GgufValue(std::string s) : v_(std::move(s)) {}
  explicit GgufValue(const char* s) : v_(std::string(s)) {}
  template <GgufElement T>
  explicit GgufValue(std::vector<T> items) : v_(std::move(items)) {}
  // Array of arrays. Throws std::invalid_argument unless every item is an array.
  explicit GgufValue(std::vector<GgufValue> arrays);

  GgufValueType type() const;
  bool is_array() const { return type() == GgufValueType::ARRAY; }
  // The value of a scalar of any integer type (converters disagree on u32/i32/u64), or nullopt
  // for any other type and for a UINT64 above INT64_MAX.
  std::optional<int64_t> as_integer() const;
  // Element type and length of an array; throw GgufError on a non-array.
  GgufValueType array_type() const;
  size_t array_size() const;

  template <GgufElement T>
  bool is() const {
    return std::holds_alternative<T>(v_);
  }
  template <GgufElement T>
  bool is_array_of() const {
    return std::holds_alternative<std::vector<T>>(v_);
  }
  // The scalar or string; throws GgufError when the value has another type.
  template <GgufElement T>
  const T& as() const {
    if (const T* p = std::get_if<T>(&v_)) return *p;
    throw_type_mismatch(GgufTypeOf<T>::value, false);
  }
  // The elements of an array of T; throws GgufError when the value is anything else.
  template <GgufElement T>
  const std::vector<T>& as_array() const {
    if (const auto* p = std::get_if<std::vector<T>>(&v_)) return *p;
    throw_type_mismatch(GgufTypeOf<T>::value, true);
  }
  // The elements of an array of arrays.
  const std::vector<GgufValue>& as_arrays() const;

  // "FLOAT32", "array of STRING", "array of ARRAY", for messages.
  std::string type_description() const;

  // Equal types and values; floats compare by bit pattern (a NaN equals the same NaN).
  bool operator==(const GgufValue& o) const;

 private:
  [[noreturn]] void throw_type_mismatch(GgufValueType expected, bool array) const;

  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
               uint64_t, int64_t, double, std::vector<uint8_t>, std::vector<int8_t>,
               std::vector<uint16_t>, std::vector<int16_t>, std::vector<uint32_t>,
               std::vector<int32_t>, std::vector<float>, std::vector<bool>,
               std::vector<std::string>, std::vector<uint64_t>, std::vector<int64_t>,
               std::vector<double>, std::vector<GgufValue>>
      v_;
};

struct GgufKv {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  int n_dims = 0;                                      // 1..4
  std::array<int64_t, kGgufMaxDims> dims{1, 1, 1, 1};  // ne0 (contiguous) first; unused dims are 1
  uint32_t type = 0;                                   // ggml type id (formats/ggml-types.h)
  uint64_t offset = 0;  // from the start of the data section, a multiple of alignment
  // Into the file's bytes. Opened by path, that is aligned to min(alignment, 64) bytes (the file
  // start is 64-byte or page aligned); from_memory inherits the caller's alignment.
  const uint8_t* data = nullptr;
  size_t size = 0;  // ggml_tensor_bytes (I2_S includes its 32-byte trailer)

  int64_t n_elements() const { return dims[0] * dims[1] * dims[2] * dims[3]; }
  std::span<const uint8_t> bytes() const { return {data, size}; }
};

struct GgufOpenOptions {
  size_t mmap_threshold = MappedFile::kDefaultMmapThreshold;  // see MappedFile
};

// A parsed GGUF file. Owns the file's bytes (unless made by from_memory); tensor data pointers
// stay valid while the object lives, across moves. Move-only.
class GgufFile {
 public:
  // Throws std::runtime_error when the file cannot be read and GgufError when it is not valid.
  static GgufFile open(const std::string& path, const GgufOpenOptions& options = {});
  // Parses bytes owned by the caller, which must outlive the result (no copy is made). `name`
  // stands for the path in error messages.
  static GgufFile from_memory(std::span<const uint8_t> bytes, std::string name = "<memory>");

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  size_t file_size() const { return size_; }
  bool is_mapped() const { return file_.is_mapped(); }

  // Metadata, in file order.
  const std::vector<GgufKv>& kvs() const { return kvs_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // Required: throws GgufError naming the file and key when absent.
  const GgufValue& value(std::string_view key) const;

  // Typed access. The required form throws GgufError when the key is absent; both forms throw
  // GgufError naming the key, the expected and the found type when the type differs (types must
  // match exactly: a UINT32 key is not read as INT32 or UINT64).
  template <GgufElement T>
  const T& get(std::string_view key) const {
    const GgufValue& v = value(key);
    if (!v.is<T>()) throw_key_type(key, GgufTypeOf<T>::value, false, v);
    return v.as<T>();
  }
  template <GgufElement T>
  std::optional<T> get_optional(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is<T>()) throw_key_type(key, GgufTypeOf<T>::value, false, *v);
    return v->as<T>();
  }
  template <GgufElement T>
  const std::vector<T>& get_array(std::string_view key) const {
    const GgufValue& v = value(key);
    if (!v.is_array_of<T>()) throw_key_type(key, GgufTypeOf<T>::value, true, v);
    return v.as_array<T>();
  }
  uint32_t get_u32(std::string_view key) const { return get<uint32_t>(key); }
  int32_t get_i32(std::string_view key) const { return get<int32_t>(key); }
  uint64_t get_u64(std::string_view key) const { return get<uint64_t>(key); }
  int64_t get_i64(std::string_view key) const { return get<int64_t>(key); }
  float get_f32(std::string_view key) const { return get<float>(key); }
  double get_f64(std::string_view key) const { return get<double>(key); }
  bool get_bool(std::string_view key) const { return get<bool>(key); }
  const std::string& get_string(std::string_view key) const { return get<std::string>(key); }
  std::optional<uint32_t> find_u32(std::string_view key) const {
    return get_optional<uint32_t>(key);
  }
  std::optional<int32_t> find_i32(std::string_view key) const { return get_optional<int32_t>(key); }
  std::optional<float> find_f32(std::string_view key) const { return get_optional<float>(key); }
  std::optional<bool> find_bool(std::string_view key) const { return get_optional<bool>(key); }
  std::optional<std::string> find_string(std::string_view key) const {
    return get_optional<std::string>(key);
  }

  // Tensors, in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // Throws GgufError naming the file and tensor when absent.
  const GgufTensorInfo& tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  void parse();
  [[noreturn]] void throw_key_type(std::string_view key, GgufValueType expected, bool array,
                                   const GgufValue& found) const;

  MappedFile file_;  // empty for from_memory
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> kvs_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF v3 file. Metadata and tensor infos are collected first; write() then streams the
// tensors one by one, so at most one tensor (the largest) is held in memory by the writer.
// The alignment is general.alignment when that key is set (UINT32, a power of two), else 32.
class GgufWriter {
 public:
  // Fills `out` (exactly the tensor's ggml_tensor_bytes) with the tensor's data. Called once, from
  // write(); an exception from it aborts the write and propagates.
  using TensorFill = std::function<void(std::span<uint8_t> out)>;

  // Adds a key, or replaces its value in place when the key already exists. Throws
  // std::invalid_argument for an empty key or a general.alignment that is not a UINT32 power of 2.
  void set(std::string key, GgufValue value);
  template <GgufElement T>
  void set(std::string key, T v) {
    set(std::move(key), GgufValue(std::move(v)));
  }
  void set(std::string key, const char* v) { set(std::move(key), GgufValue(v)); }
  const std::vector<GgufKv>& kvs() const { return kvs_; }

  // dims: ne0 first, 1..4 positive entries. Throws std::invalid_argument for an empty or duplicate
  // name, bad dims or an unknown type. The data form keeps only the span: it must stay valid until
  // write() and hold exactly ggml_tensor_bytes(type, dims) bytes.
  void add_tensor(std::string name, uint32_t type, std::span<const int64_t> dims, TensorFill fill);
  void add_tensor(std::string name, uint32_t type, std::span<const int64_t> dims,
                  std::span<const uint8_t> data);

  uint32_t alignment() const;

  // Writes path + ".tmp", flushes it to disk and renames it to path. On any failure the temporary
  // file is removed and the exception (std::runtime_error naming the path and errno text, or the
  // fill callback's) propagates; an existing file at path is then left as it was.
  void write(const std::string& path) const;
  // The whole file in memory (for tests and small files).
  std::vector<uint8_t> to_bytes() const;

 private:
  struct Tensor {
    std::string name;
    int n_dims;
    std::array<int64_t, kGgufMaxDims> dims;
    uint32_t type;
    size_t size;
    TensorFill fill;                // used when set
    std::span<const uint8_t> data;  // otherwise
  };
  using Sink = std::function<void(const uint8_t* p, size_t n)>;
  void add_tensor_info(std::string name, uint32_t type, std::span<const int64_t> dims,
                       TensorFill fill, std::span<const uint8_t> data);
  void stream(const Sink& sink) const;

  std::vector<GgufKv> kvs_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace bitnet::formats
