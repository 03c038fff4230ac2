// GGUF reader and writer: hand-encoded files (the byte layout is written out here, independently
// of the writer), writer round trips, the reference fixtures, and corrupt files that must be
// rejected with a GgufError naming the field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "formats/mapped-file.h"

namespace bitnet::formats {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kF32 = static_cast<uint32_t>(GgmlType::F32);
constexpr uint32_t kF16 = static_cast<uint32_t>(GgmlType::F16);
constexpr uint32_t kQ8_0 = static_cast<uint32_t>(GgmlType::Q8_0);
constexpr uint32_t kTQ1_0 = static_cast<uint32_t>(GgmlType::TQ1_0);
constexpr uint32_t kTQ2_0 = static_cast<uint32_t>(GgmlType::TQ2_0);
constexpr uint32_t kI2_S = static_cast<uint32_t>(GgmlType::I2_S);
constexpr uint32_t kBF16 = static_cast<uint32_t>(GgmlType::BF16);

// Little-endian byte builder for hand-made files.
struct Bytes {
  std::vector<uint8_t> b;

  template <class T>
  Bytes& put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& i64(int64_t v) { return put(v); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return u32(kGgufMagic).u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  Bytes& kv_str(std::string_view key, std::string_view v) { return str(key).u32(8).str(v); }
  Bytes& tensor(std::string_view name, std::vector<int64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (int64_t d : dims) i64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t align) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
  Bytes& fill(size_t n, uint8_t first) {
    for (size_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(first + i));
    return *this;
  }
};

// A small valid file whose last tensor ends exactly at the end of the file (no trailing padding),
// so that every proper prefix of it is invalid.
std::vector<uint8_t> small_file() {
  Bytes f;
  f.header(2, 4);
  f.kv_str("general.architecture", "tiny");
  f.kv_u32("tiny.block_count", 3);
  f.str("tiny.scores").u32(9).u32(6).u64(3).put(0.5f).put(-1.0f).put(2.0f);  // array of FLOAT32
  f.str("tiny.flag").u32(7).u8(1);
  f.tensor("a.weight", {4, 2}, kF32, 0);  // 32 bytes
  f.tensor("b.weight", {8}, kF16, 32);    // 16 bytes
  f.pad(32);
  f.fill(32, 1);
  f.fill(16, 100);
  return f.b;
}

// A valid file without tensors (no data section).
std::vector<uint8_t> vocab_only_file() {
  Bytes f;
  f.header(0, 2, 2);  // version 2 has the same layout as 3
  f.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(3).str("a").str("").str("ccc");
  f.kv_u32("tokenizer.ggml.bos_token_id", 1);
  return f.b;
}

GgufFile parse(const std::vector<uint8_t>& bytes) {
  return GgufFile::from_memory(bytes, "corrupt.gguf");
}

// Parses `bytes` and expects a GgufError whose message contains every one of `parts`, and the name.
void expect_error(const std::vector<uint8_t>& bytes, std::vector<std::string> parts) {
  // An exact-size heap copy, so that a sanitizer build catches any read past the end.
  const std::vector<uint8_t> exact(bytes.begin(), bytes.end());
  try {
    GgufFile::from_memory(exact, "corrupt.gguf");
    ADD_FAILURE() << "parsed without error; expected one naming '" << parts.front() << "'";
  } catch (const GgufError& e) {
    const std::string msg = e.what();
    parts.push_back("corrupt.gguf");
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
  }
}

void expect_same_kvs(const std::vector<GgufKv>& a, const std::vector<GgufKv>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].key, b[i].key);
    EXPECT_TRUE(a[i].value == b[i].value) << a[i].key << ": " << a[i].value.type_description()
                                          << " vs " << b[i].value.type_description();
  }
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("bitnet-test-gguf-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good());
}

// ----------------------------------------------------------------------------------------------
// Hand-encoded files

TEST(GgufRead, HandEncodedFile) {
  const std::vector<uint8_t> bytes = small_file();
  const GgufFile f = parse(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.file_size(), bytes.size());
  EXPECT_FALSE(f.is_mapped());
  ASSERT_EQ(f.kvs().size(), 4u);
  EXPECT_EQ(f.kvs()[0].key, "general.architecture");
  EXPECT_EQ(f.get_string("general.architecture"), "tiny");
  EXPECT_EQ(f.get_u32("tiny.block_count"), 3u);
  EXPECT_EQ(f.get_array<float>("tiny.scores"), (std::vector<float>{0.5f, -1.0f, 2.0f}));
  EXPECT_TRUE(f.get_bool("tiny.flag"));
  EXPECT_EQ(f.find_u32("tiny.block_count"), 3u);
  EXPECT_EQ(f.find_u32("tiny.absent"), std::nullopt);
  EXPECT_EQ(f.find_string("general.architecture"), "tiny");

  ASSERT_EQ(f.tensors().size(), 2u);
  const GgufTensorInfo& a = f.tensor("a.weight");
  EXPECT_EQ(a.n_dims, 2);
  EXPECT_EQ(a.dims, (std::array<int64_t, 4>{4, 2, 1, 1}));
  EXPECT_EQ(a.type, kF32);
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(a.size, 32u);
  EXPECT_EQ(a.n_elements(), 8);
  // Header 24 bytes, kvs 44 + 32 + 47 + 22, infos 48 + 40: 257 bytes; the data section starts at
  // the next multiple of 32.
  EXPECT_EQ(f.data_offset(), 288u);
  EXPECT_EQ(a.data, bytes.data() + 288);
  EXPECT_EQ(a.data[0], 1);
  EXPECT_EQ(a.data[31], 32);
  const GgufTensorInfo& b = f.tensor("b.weight");
  EXPECT_EQ(b.data, bytes.data() + 288 + 32);
  EXPECT_EQ(b.size, 16u);
  EXPECT_EQ(b.bytes()[15], 115);
  EXPECT_EQ(f.find_tensor("c.weight"), nullptr);
}

TEST(GgufRead, VocabOnlyVersion2) {
  const GgufFile f = parse(vocab_only_file());
  EXPECT_EQ(f.version(), 2u);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.get_array<std::string>("tokenizer.ggml.tokens"),
            (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_u32("tokenizer.ggml.bos_token_id"), 1u);
}

TEST(GgufRead, GettersNameKeyAndTypes) {
  const std::vector<uint8_t> bytes = small_file();
  const GgufFile f = parse(bytes);
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const GgufError& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string wrong = message([&] { f.get_f32("tiny.block_count"); });
  EXPECT_NE(wrong.find("'tiny.block_count'"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("expected type FLOAT32, found UINT32"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("corrupt.gguf"), std::string::npos) << wrong;

  const std::string absent = message([&] { f.get_u32("tiny.nope"); });
  EXPECT_NE(absent.find("'tiny.nope'"), std::string::npos) << absent;

  const std::string opt = message([&] { f.find_u32("general.architecture"); });
  EXPECT_NE(opt.find("expected type UINT32, found STRING"), std::string::npos) << opt;

  const std::string arr = message([&] { f.get_array<int32_t>("tiny.scores"); });
  EXPECT_NE(arr.find("expected type array of INT32, found array of FLOAT32"), std::string::npos)
      << arr;
  const std::string not_arr = message([&] { f.get_array<uint32_t>("tiny.block_count"); });
  EXPECT_NE(not_arr.find("found UINT32"), std::string::npos) << not_arr;

  const std::string tensor = message([&] { f.tensor("blk.9.attn_q.weight"); });
  EXPECT_NE(tensor.find("'blk.9.attn_q.weight'"), std::string::npos) << tensor;

  EXPECT_THROW(f.value("tiny.block_count").array_size(), GgufError);
  EXPECT_EQ(f.value("tiny.scores").array_size(), 3u);
  EXPECT_EQ(f.value("tiny.scores").array_type(), GgufValueType::FLOAT32);
}

// ----------------------------------------------------------------------------------------------
// Writer

TEST(GgufWrite, MatchesHandEncodedBytes) {
  // The writer pads after the last tensor; otherwise its bytes are exactly the hand encoding.
  std::vector<uint8_t> expected = small_file();
  Bytes tail{expected};
  tail.pad(32);
  expected = tail.b;

  std::vector<uint8_t> a_data(32), b_data(16);
  for (size_t i = 0; i < 32; ++i) a_data[i] = static_cast<uint8_t>(1 + i);
  for (size_t i = 0; i < 16; ++i) b_data[i] = static_cast<uint8_t>(100 + i);
  GgufWriter w;
  w.set("general.architecture", "tiny");
  w.set("tiny.block_count", uint32_t{3});
  w.set("tiny.scores", GgufValue(std::vector<float>{0.5f, -1.0f, 2.0f}));
  w.set("tiny.flag", true);
  const int64_t a_dims[] = {4, 2};
  const int64_t b_dims[] = {8};
  w.add_tensor("a.weight", kF32, a_dims, a_data);
  w.add_tensor("b.weight", kF16, b_dims, [&](std::span<uint8_t> out) {
    ASSERT_EQ(out.size(), 16u);
    std::memcpy(out.data(), b_data.data(), 16);
  });
  EXPECT_EQ(w.to_bytes(), expected);
}

// Every GGUF value type, arrays of each, nested and empty arrays, odd strings.
GgufWriter writer_with_all_kv_types() {
  GgufWriter w;
  w.set("general.architecture", "test");
  w.set("t.u8", uint8_t{250});
  w.set("t.i8", int8_t{-120});
  w.set("t.u16", uint16_t{65000});
  w.set("t.i16", int16_t{-32000});
  w.set("t.u32", uint32_t{4000000000u});
  w.set("t.i32", int32_t{-2000000000});
  w.set("t.f32", 1.5e-5f);
  w.set("t.f32nan", std::numeric_limits<float>::quiet_NaN());
  w.set("t.bool0", false);
  w.set("t.bool1", true);
  w.set("t.str", std::string("h\xc3\xa9llo"));
  w.set("t.str_empty", std::string());
  w.set("t.str_nul", std::string("a\0b", 3));
  w.set("t.u64", uint64_t{1} << 63);
  w.set("t.i64", std::numeric_limits<int64_t>::min());
  w.set("t.f64", -2.5e300);
  w.set("a.u8", GgufValue(std::vector<uint8_t>{0, 1, 255}));
  w.set("a.i8", GgufValue(std::vector<int8_t>{-128, 0, 127}));
  w.set("a.u16", GgufValue(std::vector<uint16_t>{1, 65535}));
  w.set("a.i16", GgufValue(std::vector<int16_t>{-32768, 32767}));
  w.set("a.u32", GgufValue(std::vector<uint32_t>{7, 8, 9}));
  w.set("a.i32", GgufValue(std::vector<int32_t>{-1, 1}));
  w.set("a.f32", GgufValue(std::vector<float>{0.25f, -0.0f}));
  w.set("a.bool", GgufValue(std::vector<bool>{true, false, true}));
  w.set("a.str", GgufValue(std::vector<std::string>{"x", "", "zz"}));
  w.set("a.u64", GgufValue(std::vector<uint64_t>{~uint64_t{0}}));
  w.set("a.i64", GgufValue(std::vector<int64_t>{-5}));
  w.set("a.f64", GgufValue(std::vector<double>{1e-300, 3.0}));
  w.set("a.empty", GgufValue(std::vector<uint32_t>{}));
  w.set("a.nested", GgufValue(std::vector<GgufValue>{
                        GgufValue(std::vector<int32_t>{1, 2}),
                        GgufValue(std::vector<std::string>{"p"}),
                        GgufValue(std::vector<GgufValue>{GgufValue(std::vector<uint8_t>{3})}),
                        GgufValue(std::vector<GgufValue>{}),
                    }));
  return w;
}

struct TestTensor {
  std::string name;
  uint32_t type;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

std::vector<TestTensor> test_tensors() {
  std::vector<TestTensor> ts = {
      {"f32.1d", kF32, {5}, {}},  // 20 bytes: forces padding
      {"f16.2d", kF16, {3, 2}, {}},
      {"bf16.3d", kBF16, {2, 2, 2}, {}},
      {"q8_0.4d", kQ8_0, {32, 1, 2, 1}, {}},
      {"tq2_0", kTQ2_0, {256, 3}, {}},
      {"tq1_0", kTQ1_0, {512, 1}, {}},
      {"i2_s", kI2_S, {128, 3}, {}},  // 96 packed bytes + the 32-byte trailer
  };
  uint8_t seed = 1;
  for (TestTensor& t : ts) {
    t.data.resize(ggml_tensor_bytes(t.type, t.dims.data(), static_cast<int>(t.dims.size())));
    for (uint8_t& b : t.data) b = seed = static_cast<uint8_t>(seed * 33 + 7);
  }
  return ts;
}

TEST(GgufTypes, TensorBytesFromTheFormatDefinitions) {
  const std::vector<TestTensor> ts = test_tensors();
  const size_t expected[] = {20, 12, 16, 2 * 34, 3 * 66, 2 * 54, 96 + 32};
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(ts[i].data.size(), expected[i]) << ts[i].name;
  // F32 with 2^62 elements is 2^64 bytes: must be reported, not wrapped to 0.
  const int64_t huge[] = {int64_t{1} << 31, int64_t{1} << 31};
  EXPECT_THROW(ggml_tensor_bytes(kF32, huge, 2), std::invalid_argument);
}

class GgufRoundTrip : public TempDir {};

TEST_F(GgufRoundTrip, AllKvTypesAndTensorTypes) {
  for (uint32_t alignment : {32u, 64u, 1u}) {
    SCOPED_TRACE("alignment " + std::to_string(alignment));
    GgufWriter w = writer_with_all_kv_types();
    if (alignment != 32) w.set("general.alignment", alignment);
    const std::vector<TestTensor> ts = test_tensors();
    int fills = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      const TestTensor& t = ts[i];
      if (i % 2 == 0) {
        w.add_tensor(t.name, t.type, t.dims, t.data);
      } else {
        w.add_tensor(t.name, t.type, t.dims, [&t, &fills](std::span<uint8_t> out) {
          ++fills;
          ASSERT_EQ(out.size(), t.data.size());
          std::memcpy(out.data(), t.data.data(), out.size());
        });
      }
    }
    const std::string p = path("rt.gguf");
    w.write(p);
    EXPECT_EQ(fills, 3);
    EXPECT_FALSE(fs::exists(p + ".tmp"));
    EXPECT_EQ(fs::file_size(p) % alignment, 0u);

    for (size_t threshold : {size_t{0}, MappedFile::kDefaultMmapThreshold}) {
      const GgufFile f = GgufFile::open(p, GgufOpenOptions{threshold});
      EXPECT_EQ(f.is_mapped(), threshold == 0);
      EXPECT_EQ(f.version(), 3u);
      EXPECT_EQ(f.alignment(), alignment);
      EXPECT_EQ(f.data_offset() % alignment, 0u);
      expect_same_kvs(f.kvs(), w.kvs());
      ASSERT_EQ(f.tensors().size(), ts.size());
      for (size_t i = 0; i < ts.size(); ++i) {
        const GgufTensorInfo& t = f.tensors()[i];
        EXPECT_EQ(t.name, ts[i].name);
        EXPECT_EQ(t.type, ts[i].type);
        ASSERT_EQ(t.n_dims, static_cast<int>(ts[i].dims.size()));
        for (int d = 0; d < t.n_dims; ++d) EXPECT_EQ(t.dims[d], ts[i].dims[d]);
        EXPECT_EQ(t.offset % alignment, 0u);
        ASSERT_EQ(t.size, ts[i].data.size());
        EXPECT_EQ(std::memcmp(t.data, ts[i].data.data(), t.size), 0) << t.name;
      }
    }
  }
  // Spot checks of typed access after the round trip.
  const GgufFile f = GgufFile::open(path("rt.gguf"));
  EXPECT_EQ(f.get<uint8_t>("t.u8"), 250);
  EXPECT_EQ(f.get<int64_t>("t.i64"), std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(std::isnan(f.get_f32("t.f32nan")));
  EXPECT_EQ(f.get_string("t.str_nul"), std::string("a\0b", 3));
  EXPECT_EQ(f.get_array<bool>("a.bool"), (std::vector<bool>{true, false, true}));
  const auto& nested = f.value("a.nested").as_arrays();
  ASSERT_EQ(nested.size(), 4u);
  EXPECT_EQ(nested[1].as_array<std::string>(), std::vector<std::string>{"p"});
  EXPECT_EQ(nested[2].as_arrays()[0].as_array<uint8_t>(), std::vector<uint8_t>{3});
  EXPECT_EQ(nested[3].array_size(), 0u);
  EXPECT_EQ(nested[3].array_type(), GgufValueType::ARRAY);
}

TEST_F(GgufRoundTrip, FailedWriteLeavesNothingBehind) {
  const std::string p = path("out.gguf");
  write_bytes(p, {1, 2, 3});
  GgufWriter w;
  w.set("general.architecture", "x");
  const int64_t dims[] = {4};
  w.add_tensor("t", kF32, dims,
               [](std::span<uint8_t>) { throw std::runtime_error("source gone"); });
  EXPECT_THROW(w.write(p), std::runtime_error);
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_EQ(fs::file_size(p), 3u);  // the old file is untouched

  GgufWriter ok;
  ok.set("general.architecture", "x");
  EXPECT_THROW(ok.write(path("no-such-dir/out.gguf")), std::runtime_error);
}

TEST(GgufWrite, RejectsInvalidInput) {
  GgufWriter w;
  const int64_t dims[] = {4};
  const std::vector<uint8_t> data(16);
  w.add_tensor("t", kF32, dims, data);
  EXPECT_THROW(w.add_tensor("t", kF32, dims, data), std::invalid_argument);   // duplicate
  EXPECT_THROW(w.add_tensor("", kF32, dims, data), std::invalid_argument);    // empty name
  EXPECT_THROW(w.add_tensor("u", 99, dims, data), std::invalid_argument);     // unknown type
  EXPECT_THROW(w.add_tensor("u", kF16, dims, data), std::invalid_argument);   // wrong data size
  EXPECT_THROW(w.add_tensor("u", kQ8_0, dims, data), std::invalid_argument);  // ne0 % 32 != 0
  const int64_t zero[] = {4, 0};
  EXPECT_THROW(w.add_tensor("u", kF32, zero, data), std::invalid_argument);
  const int64_t five[] = {1, 1, 1, 1, 4};
  EXPECT_THROW(w.add_tensor("u", kF32, five, data), std::invalid_argument);
  EXPECT_THROW(w.set("general.alignment", uint32_t{48}), std::invalid_argument);
  EXPECT_THROW(w.set("general.alignment", uint64_t{32}), std::invalid_argument);
  EXPECT_THROW(w.set("", uint32_t{1}), std::invalid_argument);
  EXPECT_THROW((void)GgufValue(std::vector<GgufValue>{GgufValue(1.0f)}), std::invalid_argument);
  w.set("k", uint32_t{1});
  w.set("k", uint32_t{2});  // replaces in place
  ASSERT_EQ(w.kvs().size(), 1u);
  EXPECT_EQ(w.kvs()[0].value.as<uint32_t>(), 2u);
}

// ----------------------------------------------------------------------------------------------
// Reference fixtures (../shared/reference)

fs::path reference_dir() {
  if (const char* env = std::getenv("BITNET_REFERENCE_DIR")) return env;
  return BITNET_REFERENCE_DIR_DEFAULT;
}

#define REQUIRE_REFERENCE(sub)                                                             \
  do {                                                                                     \
    if (!fs::is_directory(reference_dir() / (sub)))                                        \
      GTEST_SKIP() << "reference data not found at " << (reference_dir() / (sub)).string() \
                   << " (set BITNET_REFERENCE_DIR to the shared reference directory)";     \
  } while (0)

TEST(GgufReference, EveryFileParses) {
  REQUIRE_REFERENCE("models");
  int n = 0;
  for (const char* sub : {"models", "tokenizer"}) {
    for (const auto& e : fs::directory_iterator(reference_dir() / sub)) {
      if (e.path().extension() != ".gguf") continue;
      SCOPED_TRACE(e.path().string());
      const GgufFile f = GgufFile::open(e.path().string());
      EXPECT_EQ(f.version(), 3u);
      EXPECT_EQ(f.alignment(), 32u);
      EXPECT_FALSE(f.kvs().empty());
      for (const GgufTensorInfo& t : f.tensors()) {
        EXPECT_EQ(t.offset % 32, 0u) << t.name;
        EXPECT_LE(f.data_offset() + t.offset + t.size, f.file_size()) << t.name;
      }
      ++n;
    }
  }
  EXPECT_EQ(n, 10);
}

struct ModelFacts {
  const char* file;
  const char* arch;
  uint32_t file_type;
  uint32_t linear_type;
  uint32_t embd_type;
  uint32_t block_count;
  size_t n_tensors;
};

TEST(GgufReference, ModelFixtureFacts) {
  REQUIRE_REFERENCE("models");
  // From reference/README.md section 3. Tensors: 11 per layer (+ 7 `.scale` in tiny-bitnet),
  // plus token_embd and output_norm.
  const ModelFacts facts[] = {
      {"tiny-b158.f32.gguf", "bitnet-b1.58", 0, kF32, kF32, 4, 46},
      {"tiny-b158.f16.gguf", "bitnet-b1.58", 1, kF16, kF16, 4, 46},
      {"tiny-b158.i2_s.gguf", "bitnet-b1.58", 40, kI2_S, kF16, 4, 46},
      {"tiny-b158.tq2_0.gguf", "bitnet-b1.58", 37, kTQ2_0, kF16, 4, 46},
      {"tiny-b158.tq1_0.gguf", "bitnet-b1.58", 36, kTQ1_0, kF16, 4, 46},
      {"tiny-bitnet.f32.gguf", "bitnet", 0, kF32, kF32, 2, 38},
      {"tiny-bitnet.tq2_0.gguf", "bitnet", 37, kTQ2_0, kF16, 2, 38},
  };
  for (const ModelFacts& m : facts) {
    SCOPED_TRACE(m.file);
    const GgufFile f = GgufFile::open((reference_dir() / "models" / m.file).string());
    const std::string arch = m.arch;
    EXPECT_EQ(f.get_string("general.architecture"), arch);
    EXPECT_EQ(f.get_u32("general.file_type"), m.file_type);
    EXPECT_EQ(f.get_u32(arch + ".embedding_length"), 256u);
    EXPECT_EQ(f.get_u32(arch + ".block_count"), m.block_count);
    EXPECT_EQ(f.get_u32(arch + ".vocab_size"), 4112u);
    EXPECT_EQ(f.get_u32(arch + ".context_length"), 512u);
    EXPECT_EQ(f.get_array<std::string>("tokenizer.ggml.tokens").size(), 4112u);
    EXPECT_EQ(f.get_u32("tokenizer.ggml.bos_token_id"), 4096u);
    EXPECT_EQ(f.tensors().size(), m.n_tensors);

    const GgufTensorInfo& q = f.tensor("blk.0.attn_q.weight");
    EXPECT_EQ(q.type, m.linear_type);
    EXPECT_EQ(q.n_dims, 2);
    EXPECT_EQ(q.dims[0], 256);
    EXPECT_EQ(q.dims[1], 256);
    // 65536 weights: F32 4 B, F16 2 B, I2_S 2 bits + 32-byte trailer, TQ2_0 66 B and TQ1_0 54 B
    // per 256.
    const size_t q_bytes = m.linear_type == kF32     ? 262144
                           : m.linear_type == kF16   ? 131072
                           : m.linear_type == kI2_S  ? 16384 + 32
                           : m.linear_type == kTQ2_0 ? 256 * 66
                                                     : 256 * 54;
    EXPECT_EQ(q.size, q_bytes);

    const GgufTensorInfo& e = f.tensor("token_embd.weight");
    EXPECT_EQ(e.type, m.embd_type);
    EXPECT_EQ(e.n_dims, 2);
    EXPECT_EQ(e.dims[0], 256);
    EXPECT_EQ(e.dims[1], 4112);
    EXPECT_EQ(f.tensor("output_norm.weight").type, kF32);
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied LM head
  }
}

// All files of one model hold the same values: identically typed tensors must have identical
// bytes across files, which checks that every data view points at the right place.
TEST(GgufReference, SameTensorBytesAcrossFiles) {
  REQUIRE_REFERENCE("models");
  const fs::path dir = reference_dir() / "models";
  const GgufFile f16 = GgufFile::open((dir / "tiny-b158.f16.gguf").string());
  for (const char* other :
       {"tiny-b158.i2_s.gguf", "tiny-b158.tq2_0.gguf", "tiny-b158.tq1_0.gguf"}) {
    SCOPED_TRACE(other);
    const GgufFile g = GgufFile::open((dir / other).string(), GgufOpenOptions{0});  // mapped
    EXPECT_TRUE(g.is_mapped());
    int compared = 0;
    for (const GgufTensorInfo& t : f16.tensors()) {
      const GgufTensorInfo& u = g.tensor(t.name);
      if (u.type != t.type) continue;
      ASSERT_EQ(u.size, t.size) << t.name;
      EXPECT_EQ(std::memcmp(u.data, t.data, t.size), 0) << t.name;
      ++compared;
    }
    EXPECT_EQ(compared, 2 + 4 * 4);  // token_embd, output_norm and 4 norms per layer
  }
  // Norms are F32 in every file.
  const GgufFile f32 = GgufFile::open((dir / "tiny-b158.f32.gguf").string());
  const GgufTensorInfo& n32 = f32.tensor("blk.3.ffn_sub_norm.weight");
  const GgufTensorInfo& n16 = f16.tensor("blk.3.ffn_sub_norm.weight");
  ASSERT_EQ(n32.size, 768u * 4);
  EXPECT_EQ(std::memcmp(n32.data, n16.data, n32.size), 0);
}

TEST(GgufReference, TokenizerFiles) {
  REQUIRE_REFERENCE("tokenizer");
  const fs::path dir = reference_dir() / "tokenizer";
  const GgufFile bpe = GgufFile::open((dir / "llama3-bpe.gguf").string());
  EXPECT_EQ(bpe.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(bpe.get_string("tokenizer.ggml.pre"), "llama-bpe");
  EXPECT_EQ(bpe.get_array<std::string>("tokenizer.ggml.tokens").size(), 128256u);
  EXPECT_EQ(bpe.get_array<std::string>("tokenizer.ggml.merges").size(), 280147u);
  EXPECT_EQ(bpe.get_u32("tokenizer.ggml.bos_token_id"), 128000u);
  EXPECT_EQ(bpe.get_u32("tokenizer.ggml.eos_token_id"), 128001u);
  EXPECT_TRUE(bpe.tensors().empty());
  EXPECT_EQ(bpe.find_bool("tokenizer.ggml.add_bos_token"), std::nullopt);

  const GgufFile spm = GgufFile::open((dir / "llama2-spm.gguf").string());
  EXPECT_EQ(spm.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(spm.get_array<std::string>("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(spm.get_array<float>("tokenizer.ggml.scores").size(), 32000u);
  EXPECT_EQ(spm.get_array<int32_t>("tokenizer.ggml.token_type").size(), 32000u);
  EXPECT_EQ(spm.get_u32("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(spm.find_bool("tokenizer.ggml.add_bos_token"), true);

  const GgufFile small = GgufFile::open((dir / "llama3-bpe-4112.gguf").string());
  EXPECT_EQ(small.get_array<std::string>("tokenizer.ggml.tokens").size(), 4112u);
  EXPECT_EQ(small.get_u32("tokenizer.ggml.eot_token_id"), 4105u);
  EXPECT_EQ(small.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(small.get_bool("tokenizer.ggml.add_eos_token"), false);
}

// The reference files re-written by GgufWriter read back identically.
TEST_F(GgufRoundTrip, ReferenceFileRewrite) {
  REQUIRE_REFERENCE("models");
  const GgufFile src =
      GgufFile::open((reference_dir() / "models" / "tiny-b158.i2_s.gguf").string());
  GgufWriter w;
  for (const GgufKv& kv : src.kvs()) w.set(kv.key, kv.value);
  for (const GgufTensorInfo& t : src.tensors()) {
    w.add_tensor(t.name, t.type, std::span<const int64_t>(t.dims.data(), t.n_dims), t.bytes());
  }
  w.write(path("copy.gguf"));
  const GgufFile copy = GgufFile::open(path("copy.gguf"));
  expect_same_kvs(copy.kvs(), src.kvs());
  ASSERT_EQ(copy.tensors().size(), src.tensors().size());
  for (size_t i = 0; i < src.tensors().size(); ++i) {
    EXPECT_EQ(copy.tensors()[i].offset, src.tensors()[i].offset);
    EXPECT_EQ(std::memcmp(copy.tensors()[i].data, src.tensors()[i].data, src.tensors()[i].size), 0);
  }
  EXPECT_EQ(fs::file_size(path("copy.gguf")), 3090944u);
}

// ----------------------------------------------------------------------------------------------
// Corrupt files

TEST(GgufCorrupt, EveryTruncationThrows) {
  for (const std::vector<uint8_t>& full : {small_file(), vocab_only_file()}) {
    ASSERT_NO_THROW(parse(full));
    for (size_t n = 0; n < full.size(); ++n) {
      const std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<ptrdiff_t>(n));
      EXPECT_THROW(GgufFile::from_memory(prefix, "prefix.gguf"), GgufError) << n << " bytes";
    }
  }
  expect_error({}, {"magic", "end of the file"});
  const std::vector<uint8_t> full = small_file();
  expect_error(std::vector<uint8_t>(full.begin(), full.begin() + 30), {"tensor count"});
  const std::vector<uint8_t> vocab = vocab_only_file();
  expect_error(std::vector<uint8_t>(vocab.begin(), vocab.begin() + 50),
               {"metadata key #0 name string length"});
}

TEST(GgufCorrupt, TruncatedFileOnDisk) {
  const fs::path p = fs::temp_directory_path() /
                     ("bitnet-test-gguf-trunc-" + std::to_string(::getpid()) + ".gguf");
  std::vector<uint8_t> bytes = small_file();
  bytes.resize(bytes.size() - 1);
  write_bytes(p.string(), bytes);
  try {
    GgufFile::open(p.string());
    ADD_FAILURE() << "no error";
  } catch (const GgufError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("tensor 'b.weight' offset"), std::string::npos) << msg;
  }
  fs::remove(p);
  EXPECT_THROW(GgufFile::open(p.string()), std::runtime_error);  // gone
}

TEST(GgufCorrupt, HeaderFields) {
  std::vector<uint8_t> f = small_file();
  f[0] = 'X';
  expect_error(f, {"magic", "expected 'GGUF', found 'XGUF'"});
  for (uint32_t v : {1u, 4u, 0x03000000u}) {
    f = small_file();
    std::memcpy(&f[4], &v, 4);
    expect_error(f, {"version", "expected 2 or 3", "found " + std::to_string(v)});
  }
  f = small_file();
  const uint64_t absurd = uint64_t{1} << 60;
  std::memcpy(&f[8], &absurd, 8);
  expect_error(f, {"tensor count", "found 1152921504606846976"});
  f = small_file();
  std::memcpy(&f[16], &absurd, 8);
  expect_error(f, {"kv count", "found 1152921504606846976"});
  f = small_file();
  const uint64_t max = ~uint64_t{0};
  std::memcpy(&f[16], &max, 8);
  expect_error(f, {"kv count"});
}

TEST(GgufCorrupt, MetadataFields) {
  Bytes f;
  f.header(0, 1).u64(uint64_t{1} << 62).u8('k').fill(16, 0);
  expect_error(f.b, {"metadata key #0 name string length", "found 4611686018427387904"});

  f = {};
  f.header(0, 1).str("general.name").u32(8).u64(1000).str("abc");
  expect_error(f.b, {"metadata key #0 'general.name' string length", "found 1000"});

  f = {};
  f.header(0, 2).kv_u32("a", 1).str("b").u32(13).u32(0);
  expect_error(f.b, {"metadata key #1 'b' value type", "found 13"});

  f = {};
  f.header(0, 1).str("arr").u32(9).u32(42).u64(1).u32(0);
  expect_error(f.b, {"metadata key #0 'arr' array element type", "found 42"});

  f = {};
  f.header(0, 1).str("arr").u32(9).u32(4).u64(uint64_t{1} << 60).u32(0);
  expect_error(f.b, {"metadata key #0 'arr' array count", "found 1152921504606846976"});

  f = {};
  f.header(0, 1).str("arr").u32(9).u32(8).u64(2).str("ok").u64(99).u8('x');
  expect_error(f.b, {"metadata key #0 'arr' [1] string length", "found 99"});

  f = {};  // arrays of arrays nested deeper than the reader accepts
  f.header(0, 1).str("deep").u32(9);
  for (int i = 0; i < 20; ++i) f.u32(9).u64(1);
  f.u32(0).u64(0);
  expect_error(f.b, {"metadata key #0 'deep' [0] [0] [0] [0] [0] [0] [0] [0] array nesting"});

  f = {};
  f.header(0, 1).str("flag").u32(7).u8(2);
  expect_error(f.b, {"metadata key #0 'flag' bool", "expected 0 or 1, found 2"});

  f = {};
  f.header(0, 2).kv_u32("dup", 1).kv_u32("dup", 2);
  expect_error(f.b, {"metadata key #1 'dup'", "a duplicate of metadata key #0"});

  f = {};
  f.header(0, 1).str("").u32(4).u32(1);
  expect_error(f.b, {"metadata key #0 name", "non-empty"});

  f = {};
  f.header(0, 1).str("general.alignment").u32(4).u32(24);
  expect_error(f.b, {"'general.alignment'", "power of two", "found 24"});

  f = {};
  f.header(0, 1).str("general.alignment").u32(10).u64(32);
  expect_error(f.b, {"'general.alignment'", "expected type UINT32, found UINT64"});
}

// small_file() with its tensor infos replaced.
std::vector<uint8_t> with_tensors(const std::function<void(Bytes&)>& infos, size_t n_tensors,
                                  size_t data_bytes = 64) {
  Bytes f;
  f.header(n_tensors, 1).kv_str("general.architecture", "tiny");
  infos(f);
  f.pad(32).fill(data_bytes, 0);
  return f.b;
}

TEST(GgufCorrupt, TensorFields) {
  auto one = [](std::string name, std::vector<int64_t> dims, uint32_t type, uint64_t offset) {
    return with_tensors([=](Bytes& f) { f.tensor(name, dims, type, offset); }, 1);
  };
  ASSERT_NO_THROW(parse(one("ok", {16}, kF32, 0)));

  expect_error(one("blk.3.attn_q.weight", {16}, 99, 0),
               {"tensor 'blk.3.attn_q.weight' type", "found type 99"});
  expect_error(one("x", {16}, 37, 0), {"tensor 'x' type", "found type 37"});  // fork-only I8_S
  expect_error(one("blk.3.attn_q.weight", {16}, kF32, 16),
               {"tensor 'blk.3.attn_q.weight' offset", "multiple of the alignment 32", "found 16"});
  expect_error(one("x", {16}, kF32, 32), {"tensor 'x' offset", "within the 64-byte data section"});
  expect_error(one("x", {17}, kF32, 0), {"tensor 'x' offset", "68 bytes"});
  expect_error(one("x", {16}, kF32, uint64_t{1} << 63), {"tensor 'x' offset"});
  expect_error(one("x", {16, 0}, kF32, 0), {"tensor 'x' dims[1]", "positive", "found 0"});
  expect_error(one("x", {-4}, kF32, 0), {"tensor 'x' dims[0]", "positive", "found -4"});
  expect_error(one("x", {int64_t{1} << 40, int64_t{1} << 40}, kF32, 0),
               {"tensor 'x' dims[1]", "overflows"});
  expect_error(one("x", {int64_t{1} << 31, int64_t{1} << 31}, kF32, 0),
               {"tensor 'x' dims", "overflows"});
  expect_error(one("x", {16}, kQ8_0, 0), {"tensor 'x' dims", "multiple of 32"});
  expect_error(one("", {16}, kF32, 0), {"tensor #0 name", "non-empty"});

  Bytes nd;
  nd.header(1, 0).str("x").u32(0).u32(kF32).u64(0).fill(32, 0);
  expect_error(nd.b, {"tensor 'x' n_dims", "expected 1..4, found 0"});
  nd = {};
  nd.header(1, 0).str("x").u32(5);
  for (int i = 0; i < 5; ++i) nd.i64(1);
  nd.u32(kF32).u64(0).fill(32, 0);
  expect_error(nd.b, {"tensor 'x' n_dims", "found 5"});

  Bytes name;
  name.header(1, 0).u64(uint64_t{1} << 62).u8('x').fill(32, 0);
  expect_error(name.b, {"tensor #0 name string length"});

  expect_error(with_tensors(
                   [](Bytes& f) {
                     f.tensor("a", {8}, kF32, 0);
                     f.tensor("a", {8}, kF32, 32);
                   },
                   2),
               {"tensor #1 name", "'a' again (also tensor #0)"});
  expect_error(with_tensors(
                   [](Bytes& f) {
                     f.tensor("a", {16}, kF32, 0);  // bytes 0..63
                     f.tensor("b", {8}, kF32, 32);  // bytes 32..63
                   },
                   2),
               {"tensor 'b' offset", "no overlap with tensor 'a'", "found 32"});
  // Adjacent but not overlapping, in reverse file order: valid.
  EXPECT_NO_THROW(parse(with_tensors(
      [](Bytes& f) {
        f.tensor("b", {8}, kF32, 32);
        f.tensor("a", {8}, kF32, 0);
      },
      2)));

  // The data section itself past the end of the file.
  Bytes cut;
  cut.header(1, 0).tensor("x", {8}, kF32, 0);
  expect_error(cut.b, {"data section"});
}

TEST(GgufCorrupt, AlignmentIsHonored) {
  Bytes f;
  f.header(1, 1).str("general.alignment").u32(4).u32(64);
  f.tensor("x", {8}, kF32, 32);
  f.pad(64).fill(64, 0);
  expect_error(f.b, {"tensor 'x' offset", "multiple of the alignment 64", "found 32"});

  Bytes g;
  g.header(1, 1).str("general.alignment").u32(4).u32(64);
  g.tensor("x", {8}, kF32, 0);
  g.pad(64).fill(32, 7);
  const GgufFile ok = parse(g.b);
  EXPECT_EQ(ok.alignment(), 64u);
  EXPECT_EQ(ok.data_offset() % 64, 0u);
  EXPECT_EQ(ok.tensor("x").data[0], 7);
}

// ----------------------------------------------------------------------------------------------
// MappedFile

class MappedFileTest : public TempDir {};

TEST_F(MappedFileTest, ReadOrMapAndMove) {
  std::vector<uint8_t> bytes(5000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7);
  write_bytes(path("f.bin"), bytes);
  for (size_t threshold : {size_t{1}, size_t{5000}, size_t{5001}}) {
    MappedFile m(path("f.bin"), threshold);
    EXPECT_EQ(m.is_mapped(), threshold <= 5000);
    ASSERT_EQ(m.size(), bytes.size());
    EXPECT_EQ(std::memcmp(m.data(), bytes.data(), bytes.size()), 0);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data()) % 64, 0u);
    const uint8_t* p = m.data();
    MappedFile moved(std::move(m));
    EXPECT_EQ(moved.data(), p);
    EXPECT_EQ(moved.path(), path("f.bin"));
    MappedFile assigned;
    assigned = std::move(moved);
    EXPECT_EQ(assigned.data(), p);
    EXPECT_EQ(assigned.size(), bytes.size());
  }
  write_bytes(path("empty.bin"), {});
  for (size_t threshold : {size_t{0}, size_t{1}}) {
    MappedFile e(path("empty.bin"), threshold);
    EXPECT_EQ(e.size(), 0u);
    EXPECT_FALSE(e.is_mapped());
  }
}

TEST_F(MappedFileTest, ErrorsNameThePath) {
  auto message = [](const std::string& p) -> std::string {
    try {
      MappedFile m(p);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string missing = message(path("missing.gguf"));
  EXPECT_NE(missing.find(path("missing.gguf")), std::string::npos) << missing;
  EXPECT_NE(missing.find(std::strerror(ENOENT)), std::string::npos) << missing;
  const std::string dir = message(dir_.string());
  EXPECT_NE(dir.find("regular file"), std::string::npos) << dir;
}

}  // namespace
}  // namespace bitnet::formats
