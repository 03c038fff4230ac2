// A minimal GGUF v3 parser for tests that need the reference fixtures' tensor data without
// depending on the formats layer's reader: header, key/values (skipped by type, except
// general.alignment), tensor infos, data offsets. Tensor byte sizes come from ggml_tensor_bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/ggml-types.h"

namespace bitnet::test {

struct FixtureTensor {
  std::vector<int64_t> dims;
  uint32_t type = 0;
  const uint8_t* data = nullptr;
  size_t bytes = 0;
};

class MiniGguf {
 public:
  explicit MiniGguf(const std::filesystem::path& path) : path_(path.string()) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path_);
    bytes_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    parse();
  }

  const FixtureTensor& tensor(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) throw std::runtime_error(path_ + ": no tensor " + name);
    return it->second;
  }

 private:
  template <class T>
  T read() {
    if (pos_ + sizeof(T) > bytes_.size()) throw std::runtime_error(path_ + ": truncated header");
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string read_string() {
    const auto len = read<uint64_t>();
    if (len > bytes_.size() - pos_) throw std::runtime_error(path_ + ": bad string length");
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return s;
  }
  void skip_value(uint32_t type) {
    // 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array, 10 u64, 11 i64,
    // 12 f64
    static constexpr size_t kSize[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      read_string();
    } else if (type == 9) {
      const auto elem = read<uint32_t>();
      const auto count = read<uint64_t>();
      for (uint64_t i = 0; i < count; ++i) skip_value(elem);
    } else if (type < 13) {
      pos_ += kSize[type];
    } else {
      throw std::runtime_error(path_ + ": bad kv type " + std::to_string(type));
    }
  }
  void parse() {
    if (read<uint32_t>() != 0x46554747u) throw std::runtime_error(path_ + ": not GGUF");
    if (read<uint32_t>() != 3) throw std::runtime_error(path_ + ": not GGUF version 3");
    const auto n_tensors = read<uint64_t>();
    const auto n_kv = read<uint64_t>();
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string key = read_string();
      const auto type = read<uint32_t>();
      if (key == "general.alignment" && type == 4) {
        alignment = read<uint32_t>();
      } else {
        skip_value(type);
      }
    }
    struct Info {
      std::string name;
      FixtureTensor t;
      uint64_t offset;
    };
    std::vector<Info> infos;
    for (uint64_t i = 0; i < n_tensors; ++i) {
      Info info;
      info.name = read_string();
      const auto n_dims = read<uint32_t>();
      for (uint32_t d = 0; d < n_dims; ++d) info.t.dims.push_back(read<int64_t>());
      info.t.type = read<uint32_t>();
      info.offset = read<uint64_t>();
      infos.push_back(std::move(info));
    }
    const size_t data_start = (pos_ + alignment - 1) / alignment * alignment;
    for (Info& info : infos) {
      info.t.bytes = formats::ggml_tensor_bytes(info.t.type, info.t.dims.data(),
                                                static_cast<int>(info.t.dims.size()));
      if (data_start + info.offset + info.t.bytes > bytes_.size()) {
        throw std::runtime_error(path_ + ": tensor " + info.name + " runs past the end");
      }
      info.t.data = bytes_.data() + data_start + info.offset;
      tensors_[info.name] = info.t;
    }
  }

  std::string path_;
  std::vector<uint8_t> bytes_;
  size_t pos_ = 0;
  std::map<std::string, FixtureTensor> tensors_;
};

}  // namespace bitnet::test
