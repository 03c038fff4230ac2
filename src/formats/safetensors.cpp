#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "core/fp16.h"

namespace bitnet::formats {
namespace {

using nlohmann::json;

struct DtypeName {
  const char* name;
  SafetensorsDtype dtype;
  size_t size;
};

// Every dtype of the safetensors specification with a whole number of bytes per element.
constexpr DtypeName kDtypes[] = {
    {"BF16", SafetensorsDtype::BF16, 2},
    {"F16", SafetensorsDtype::F16, 2},
    {"F32", SafetensorsDtype::F32, 4},
    {"U8", SafetensorsDtype::U8, 1},
    {"I8", SafetensorsDtype::I8, 1},
    {"BOOL", SafetensorsDtype::Unsupported, 1},
    {"F8_E5M2", SafetensorsDtype::Unsupported, 1},
    {"F8_E4M3", SafetensorsDtype::Unsupported, 1},
    {"F8_E8M0", SafetensorsDtype::Unsupported, 1},
    {"I16", SafetensorsDtype::Unsupported, 2},
    {"U16", SafetensorsDtype::Unsupported, 2},
    {"I32", SafetensorsDtype::Unsupported, 4},
    {"U32", SafetensorsDtype::Unsupported, 4},
    {"F64", SafetensorsDtype::Unsupported, 8},
    {"I64", SafetensorsDtype::Unsupported, 8},
    {"U64", SafetensorsDtype::Unsupported, 8},
    {"C64", SafetensorsDtype::Unsupported, 8},
};

const DtypeName* find_dtype(const std::string& name) {
  for (const DtypeName& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

std::string known_dtypes() {
  std::string s;
  for (const DtypeName& d : kDtypes) {
    if (!s.empty()) s += ", ";
    s += d.name;
  }
  return s;
}

std::string json_kind(const json& j) {
  return j.is_number_unsigned() ? "unsigned integer" : j.type_name();
}

[[noreturn]] void fail_at(const std::string& file, const std::string& what) {
  throw SafetensorsError(file + ": " + what);
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

int64_t SafetensorsTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t safetensors_dtype_size(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::BF16:
    case SafetensorsDtype::F16:
      return 2;
    case SafetensorsDtype::F32:
      return 4;
    case SafetensorsDtype::U8:
    case SafetensorsDtype::I8:
      return 1;
    case SafetensorsDtype::Unsupported:
      break;
  }
  throw std::invalid_argument("safetensors_dtype_size: unsupported dtype");
}

void require_supported(const SafetensorsTensor& t) {
  if (t.dtype == SafetensorsDtype::Unsupported) {
    throw SafetensorsError(t.file + ": tensor '" + t.name + "': dtype " + t.dtype_name +
                           " is not supported (expected BF16, F16, F32, U8 or I8)");
  }
}

void safetensors_to_f32(const SafetensorsTensor& t, int64_t first, int64_t n, float* dst) {
  require_supported(t);
  if (first < 0 || n < 0 || first > t.n_elements() - n) {
    throw std::out_of_range(t.file + ": tensor '" + t.name + "': elements [" +
                            std::to_string(first) + ", " + std::to_string(first + n) +
                            ") outside its " + std::to_string(t.n_elements()) + " elements");
  }
  const size_t es = safetensors_dtype_size(t.dtype);
  const uint8_t* p = t.data + static_cast<size_t>(first) * es;
  const size_t count = static_cast<size_t>(n);
  switch (t.dtype) {
    case SafetensorsDtype::BF16:
    case SafetensorsDtype::F16:
      for (size_t i = 0; i < count; ++i) {
        const auto h = static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
        dst[i] = t.dtype == SafetensorsDtype::BF16 ? bf16_to_fp32(h) : fp16_to_fp32(h);
      }
      break;
    case SafetensorsDtype::F32:
      std::memcpy(dst, p, count * 4);  // little-endian host (as everywhere in formats/)
      break;
    case SafetensorsDtype::U8:
      for (size_t i = 0; i < count; ++i) dst[i] = p[i];
      break;
    case SafetensorsDtype::I8:
      for (size_t i = 0; i < count; ++i) dst[i] = static_cast<int8_t>(p[i]);
      break;
    case SafetensorsDtype::Unsupported:
      break;
  }
}

SafetensorsFile SafetensorsFile::open(const std::string& path, size_t mmap_threshold) {
  SafetensorsFile f;
  f.file_ = MappedFile(path, mmap_threshold);
  f.path_ = path;
  f.data_ = f.file_.data();
  f.size_ = f.file_.size();
  f.parse();
  return f;
}

SafetensorsFile SafetensorsFile::from_memory(std::span<const uint8_t> bytes, std::string name) {
  SafetensorsFile f;
  f.path_ = std::move(name);
  f.data_ = bytes.data();
  f.size_ = bytes.size();
  f.parse();
  return f;
}

void SafetensorsFile::parse() {
  if (size_ < 8) {
    fail_at(path_,
            "file of " + std::to_string(size_) + " bytes is shorter than the 8-byte header length");
  }
  const uint64_t header_len = read_u64_le(data_);
  if (header_len > size_ - 8) {
    fail_at(path_, "header length " + std::to_string(header_len) +
                       " runs past the end of the file (" + std::to_string(size_ - 8) +
                       " bytes follow the length)");
  }
  if (header_len > kSafetensorsMaxHeaderBytes) {
    fail_at(path_, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                       std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
  }
  data_offset_ = 8 + header_len;
  const char* hb = reinterpret_cast<const char*>(data_ + 8);
  json header;
  try {
    header = json::parse(hb, hb + header_len);
  } catch (const json::exception& e) {
    fail_at(path_, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object())
    fail_at(path_, "header: expected a JSON object, found " + json_kind(header));

  const uint64_t data_size = size_ - data_offset_;
  const uint8_t* section = data_ + data_offset_;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail_at(path_, "__metadata__: expected an object, found " + json_kind(v));
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          fail_at(path_, "__metadata__ key '" + m.key() + "': expected a string, found " +
                             json_kind(m.value()));
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) fail_at(path_, where + ": expected an object, found " + json_kind(v));
    auto field = [&](const char* key) -> const json& {
      const auto f = v.find(key);
      if (f == v.end()) fail_at(path_, where + ": field '" + key + "' is missing");
      return *f;
    };
    SafetensorsTensor t;
    t.name = name;
    t.file = path_;

    const json& dtype = field("dtype");
    if (!dtype.is_string())
      fail_at(path_, where + ": dtype: expected a string, found " + json_kind(dtype));
    t.dtype_name = dtype.get<std::string>();
    const DtypeName* dt = find_dtype(t.dtype_name);
    if (!dt)
      fail_at(path_,
              where + ": unknown dtype '" + t.dtype_name + "' (known: " + known_dtypes() + ")");
    t.dtype = dt->dtype;

    const json& shape = field("shape");
    if (!shape.is_array())
      fail_at(path_, where + ": shape: expected an array, found " + json_kind(shape));
    // Elements are bounded by the data section, so any product past it is an error; checking each
    // step against 2^62 keeps the multiplication from overflowing.
    constexpr uint64_t kMaxElements = uint64_t{1} << 62;
    uint64_t elements = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned()) {
        fail_at(path_, where + ": shape: expected non-negative integers, found " + json_kind(d) +
                           " " + d.dump());
      }
      const uint64_t dim = d.get<uint64_t>();
      if (dim > kMaxElements || (dim != 0 && elements > kMaxElements / dim)) {
        fail_at(path_, where + ": shape " + shape.dump() + " has more than 2^62 elements");
      }
      elements *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }

    const json& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      fail_at(path_,
              where + ": data_offsets: expected [begin, end] as two non-negative integers, found " +
                  offsets.dump());
    }
    t.begin = offsets[0].get<uint64_t>();
    t.end = offsets[1].get<uint64_t>();
    if (t.begin > t.end || t.end > data_size) {
      fail_at(path_, where + ": data_offsets [" + std::to_string(t.begin) + ", " +
                         std::to_string(t.end) + ") outside the data section of " +
                         std::to_string(data_size) + " bytes");
    }
    t.size = static_cast<size_t>(t.end - t.begin);
    if (elements > kMaxElements / dt->size || elements * dt->size != t.size) {
      fail_at(path_,
              where + ": shape " + shape.dump() + " of " + t.dtype_name + " needs " +
                  (elements > kMaxElements / dt->size ? std::string("more than 2^62")
                                                      : std::to_string(elements * dt->size)) +
                  " bytes, data_offsets hold " + std::to_string(t.size));
    }
    t.data = section + t.begin;
    tensors_.push_back(std::move(t));
  }

  // Overlap check in offset order (the header may list tensors in any order). Empty tensors
  // occupy no bytes and cannot overlap anything.
  std::vector<const SafetensorsTensor*> by_offset;
  for (const SafetensorsTensor& t : tensors_) {
    if (t.size > 0) by_offset.push_back(&t);
  }
  std::sort(
      by_offset.begin(), by_offset.end(),
      [](const SafetensorsTensor* a, const SafetensorsTensor* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const SafetensorsTensor& a = *by_offset[i - 1];
    const SafetensorsTensor& b = *by_offset[i];
    if (b.begin < a.end) {
      fail_at(path_, "tensor '" + b.name + "' at data_offsets [" + std::to_string(b.begin) + ", " +
                         std::to_string(b.end) + ") overlaps tensor '" + a.name + "' at [" +
                         std::to_string(a.begin) + ", " + std::to_string(a.end) + ")");
    }
  }
  // nlohmann::json objects iterate in key order, so tensors_ is already sorted by name.
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  const auto it =
      std::lower_bound(tensors_.begin(), tensors_.end(), name,
                       [](const SafetensorsTensor& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const SafetensorsTensor& SafetensorsFile::tensor(std::string_view name) const {
  if (const SafetensorsTensor* t = find(name)) return *t;
  throw SafetensorsError(path_ + ": tensor '" + std::string(name) + "' not found");
}

SafetensorsCheckpoint SafetensorsCheckpoint::from_files(std::vector<SafetensorsFile> shards) {
  SafetensorsCheckpoint c;
  c.shards_ = std::move(shards);
  for (const SafetensorsFile& f : c.shards_) {
    if (c.source_.empty()) c.source_ = f.path();
    for (const SafetensorsTensor& t : f.tensors()) {
      const auto [it, added] = c.index_.emplace(t.name, &t);
      if (!added) {
        throw SafetensorsError("tensor '" + t.name + "' is in both " + it->second->file + " and " +
                               t.file);
      }
    }
  }
  return c;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) return open_index(index.string());
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (!fs::exists(single)) {
    throw SafetensorsError(dir + ": neither model.safetensors.index.json nor model.safetensors");
  }
  std::vector<SafetensorsFile> shards;
  shards.push_back(SafetensorsFile::open(single.string()));
  SafetensorsCheckpoint c = from_files(std::move(shards));
  c.source_ = single.string();
  return c;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_index(const std::string& index_path) {
  namespace fs = std::filesystem;
  std::ifstream in(index_path, std::ios::binary);
  if (!in) fail_at(index_path, "cannot be read");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail_at(index_path, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    fail_at(index_path, "expected an object with a 'weight_map' object");
  }
  const fs::path base = fs::path(index_path).parent_path();
  std::map<std::string, size_t> shard_of_file;  // shard file name -> position in shards
  std::vector<std::string> shard_names;
  std::vector<std::pair<std::string, size_t>> wanted;  // tensor -> shard
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      fail_at(index_path, "weight_map['" + it.key() + "']: expected a file name, found " +
                              json_kind(it.value()));
    }
    const std::string file = it.value().get<std::string>();
    const fs::path rel(file);
    bool escapes = rel.empty() || rel.is_absolute();
    for (const fs::path& part : rel) escapes = escapes || part == "..";
    if (escapes)
      fail_at(index_path,
              "weight_map['" + it.key() + "']: shard '" + file + "' leaves the directory");
    const auto [pos, added] = shard_of_file.emplace(file, shard_names.size());
    if (added) shard_names.push_back(file);
    wanted.emplace_back(it.key(), pos->second);
  }
  if (shard_names.empty()) fail_at(index_path, "weight_map is empty");
  std::vector<SafetensorsFile> shards;
  for (const std::string& name : shard_names) {
    shards.push_back(SafetensorsFile::open((base / name).string()));
  }
  SafetensorsCheckpoint c = from_files(std::move(shards));
  c.source_ = index_path;
  for (const auto& [tensor, shard] : wanted) {
    if (!c.shards_[shard].find(tensor)) {
      fail_at(index_path, "weight_map places tensor '" + tensor + "' in " + shard_names[shard] +
                              ", which does not hold it");
    }
  }
  return c;
}

const SafetensorsTensor* SafetensorsCheckpoint::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const SafetensorsTensor& SafetensorsCheckpoint::tensor(std::string_view name) const {
  if (const SafetensorsTensor* t = find(name)) return *t;
  throw SafetensorsError(source_ + ": tensor '" + std::string(name) + "' not found");
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;
}

}  // namespace bitnet::formats
