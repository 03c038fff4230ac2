// A minimal safetensors writer for tests, independent of the formats layer's reader: tensors are
// laid out in the order added, the header is the JSON text built here, padded with spaces to a
// multiple of 8 bytes as the reference implementation does.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace bitnet::test {

class SafetensorsBuilder {
 public:
  // shape outermost first; bytes = the raw little-endian element data.
  SafetensorsBuilder& add(const std::string& name, const std::string& dtype,
                          const std::vector<int64_t>& shape, const std::vector<uint8_t>& bytes) {
    entries_.push_back({name, dtype, shape, data_.size(), data_.size() + bytes.size()});
    data_.insert(data_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  SafetensorsBuilder& metadata(const std::string& key, const std::string& value) {
    metadata_[key] = value;
    return *this;
  }

  std::string header() const {
    std::string h = "{";
    bool first = true;
    if (!metadata_.empty()) {
      h += "\"__metadata__\":{";
      for (const auto& [k, v] : metadata_) {
        if (!first) h += ',';
        h += quote(k) + ":" + quote(v);
        first = false;
      }
      h += "}";
    }
    for (const Entry& e : entries_) {
      if (h.size() > 1) h += ",";
      h += quote(e.name) + ":{\"dtype\":" + quote(e.dtype) + ",\"shape\":[";
      for (size_t i = 0; i < e.shape.size(); ++i) {
        if (i) h += ',';
        h += std::to_string(e.shape[i]);
      }
      h += "],\"data_offsets\":[" + std::to_string(e.begin) + "," + std::to_string(e.end) + "]}";
    }
    return h + "}";
  }

  std::vector<uint8_t> bytes() const { return assemble(header(), data_); }

  // Any header text and data section, for corrupt files.
  static std::vector<uint8_t> assemble(std::string header, const std::vector<uint8_t>& data) {
    while (header.size() % 8 != 0) header += ' ';
    std::vector<uint8_t> out;
    out.reserve(8 + header.size() + data.size());
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }

  void write(const std::filesystem::path& path) const { write_bytes(path, bytes()); }

  static void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    if (!f) throw std::runtime_error("cannot write " + path.string());
  }

 private:
  struct Entry {
    std::string name, dtype;
    std::vector<int64_t> shape;
    size_t begin, end;
  };
  static std::string quote(const std::string& s) { return "\"" + s + "\""; }

  std::vector<Entry> entries_;
  std::vector<uint8_t> data_;
  std::map<std::string, std::string> metadata_;
};

// Little-endian bytes of a vector of trivially copyable values.
template <class T>
std::vector<uint8_t> le_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

}  // namespace bitnet::test
