// Writes the seed corpus of fuzz-gguf into a directory: small files made with GgufWriter (every
// value type, several tensor types, version 2 header variant) and, when the reference directory is
// given, the first bytes of each reference GGUF plus a shrunken copy of each model fixture (same
// keys and tensor names, tokenizer arrays cut to 16 entries, tensors cut to one block row).
// Usage: fuzz-gguf-seeds OUT_DIR [REFERENCE_DIR]
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "formats/ggml-types.h"
#include "formats/gguf.h"

namespace bf = bitnet::formats;
namespace fs = std::filesystem;

namespace {

void save(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error(path.string() + ": write failed");
}

std::vector<uint8_t> all_types_file(uint32_t alignment) {
  bf::GgufWriter w;
  w.set("general.architecture", "bitnet-b1.58");
  if (alignment != bf::kGgufDefaultAlignment) w.set("general.alignment", alignment);
  w.set("u8", uint8_t{1});
  w.set("i8", int8_t{-1});
  w.set("u16", uint16_t{2});
  w.set("i16", int16_t{-2});
  w.set("u32", uint32_t{3});
  w.set("i32", int32_t{-3});
  w.set("f32", 0.5f);
  w.set("bool", true);
  w.set("str", "text");
  w.set("u64", uint64_t{4});
  w.set("i64", int64_t{-4});
  w.set("f64", 0.25);
  w.set("a.str", bf::GgufValue(std::vector<std::string>{"a", "bc"}));
  w.set("a.f32", bf::GgufValue(std::vector<float>{1.0f, 2.0f}));
  w.set("a.i32", bf::GgufValue(std::vector<int32_t>{1, 3}));
  w.set("a.bool", bf::GgufValue(std::vector<bool>{true, false}));
  w.set("a.nested",
        bf::GgufValue(std::vector<bf::GgufValue>{bf::GgufValue(std::vector<uint8_t>{1}),
                                                 bf::GgufValue(std::vector<bf::GgufValue>{})}));
  const struct {
    const char* name;
    bf::GgmlType type;
    std::vector<int64_t> dims;
  } tensors[] = {
      {"f32", bf::GgmlType::F32, {4}},          {"f16", bf::GgmlType::F16, {2, 2}},
      {"q8_0", bf::GgmlType::Q8_0, {32, 1, 1}}, {"tq2_0", bf::GgmlType::TQ2_0, {256}},
      {"tq1_0", bf::GgmlType::TQ1_0, {256}},    {"i2_s", bf::GgmlType::I2_S, {128, 1}},
  };
  std::vector<std::vector<uint8_t>> data;
  for (const auto& t : tensors) {
    const auto type = static_cast<uint32_t>(t.type);
    data.emplace_back(bf::ggml_tensor_bytes(type, t.dims.data(), static_cast<int>(t.dims.size())),
                      uint8_t{0x5a});
    w.add_tensor(t.name, type, t.dims, data.back());
  }
  return w.to_bytes();
}

// The reference model's metadata and tensor names with small contents.
std::vector<uint8_t> shrunken(const bf::GgufFile& src) {
  bf::GgufWriter w;
  for (const bf::GgufKv& kv : src.kvs()) {
    const bf::GgufValue& v = kv.value;
    if (v.is_array_of<std::string>()) {
      const auto& items = v.as_array<std::string>();
      w.set(kv.key, bf::GgufValue(std::vector<std::string>(
                        items.begin(), items.begin() + std::min<ptrdiff_t>(16, ssize(items)))));
    } else if (v.is_array_of<int32_t>()) {
      const auto& items = v.as_array<int32_t>();
      w.set(kv.key, bf::GgufValue(std::vector<int32_t>(
                        items.begin(), items.begin() + std::min<ptrdiff_t>(16, ssize(items)))));
    } else if (v.is_array_of<float>()) {
      const auto& items = v.as_array<float>();
      w.set(kv.key, bf::GgufValue(std::vector<float>(
                        items.begin(), items.begin() + std::min<ptrdiff_t>(16, ssize(items)))));
    } else {
      w.set(kv.key, v);
    }
  }
  std::vector<std::vector<uint8_t>> data;
  data.reserve(src.tensors().size());
  for (const bf::GgufTensorInfo& t : src.tensors()) {
    const auto info = bf::ggml_type_info(t.type);
    const int64_t dims[] = {std::max<int64_t>(info->block_elems, 1)};
    data.emplace_back(bf::ggml_tensor_bytes(t.type, dims, 1), uint8_t{0});
    std::copy_n(t.data, std::min(data.back().size(), t.size), data.back().begin());
    w.add_tensor(t.name, t.type, dims, data.back());
  }
  return w.to_bytes();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR [REFERENCE_DIR]\n", argv[0]);
    return 2;
  }
  try {
    const fs::path out = argv[1];
    fs::create_directories(out);
    save(out / "seed-all-types.gguf", all_types_file(32));
    save(out / "seed-align-64.gguf", all_types_file(64));
    std::vector<uint8_t> v2 = all_types_file(1);
    v2[4] = 2;  // version 2: same layout
    save(out / "seed-v2-align-1.gguf", v2);
    int n = 3;
    if (argc == 3) {
      for (const char* sub : {"models", "tokenizer"}) {
        const fs::path dir = fs::path(argv[2]) / sub;
        if (!fs::is_directory(dir)) continue;
        for (const auto& e : fs::directory_iterator(dir)) {
          if (e.path().extension() != ".gguf") continue;
          const bf::GgufFile f = bf::GgufFile::open(e.path().string());
          const std::string stem = e.path().stem().string();
          if (!f.tensors().empty()) save(out / ("seed-" + stem + "-small.gguf"), shrunken(f));
          std::vector<uint8_t> head(f.file_size() < 4096 ? f.file_size() : 4096);
          std::ifstream in(e.path(), std::ios::binary);
          in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
          save(out / ("seed-" + stem + "-head.bin"), head);
          n += f.tensors().empty() ? 1 : 2;
        }
      }
    }
    std::printf("fuzz-gguf-seeds: %d seed files in %s\n", n, out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz-gguf-seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
