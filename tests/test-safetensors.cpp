// safetensors reader: hand-built files (tests/fixture-safetensors.h writes the bytes), round trips
// of every supported dtype, corrupt headers, and sharded checkpoints with an index.
#include "formats/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fixture-safetensors.h"

namespace bitnet::formats {
namespace {

using test::le_bytes;
using test::SafetensorsBuilder;
using ::testing::HasSubstr;

std::vector<float> values(const SafetensorsTensor& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  safetensors_to_f32(t, 0, t.n_elements(), v.data());
  return v;
}

// Expects from_memory to throw SafetensorsError with every fragment in its message.
void expect_error(const std::vector<uint8_t>& bytes, std::vector<std::string> fragments) {
  try {
    (void)SafetensorsFile::from_memory(bytes, "bad.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const SafetensorsError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad.safetensors")) << e.what();
    for (const std::string& f : fragments) EXPECT_THAT(e.what(), HasSubstr(f)) << e.what();
  }
}

TEST(Safetensors, RoundTripEveryDtype) {
  // Bit patterns written by hand: bf16 0x3fc0 = 1.5, 0xc020 = -2.5; fp16 0x3e00 = 1.5,
  // 0xc100 = -2.5, 0x0001 = 2^-24 (subnormal).
  SafetensorsBuilder b;
  b.add("a.bf16", "BF16", {2}, le_bytes(std::vector<uint16_t>{0x3fc0, 0xc020}));
  b.add("b.f16", "F16", {3}, le_bytes(std::vector<uint16_t>{0x3e00, 0xc100, 0x0001}));
  b.add("c.f32", "F32", {2, 2}, le_bytes(std::vector<float>{1.0f, -0.25f, 3e38f, 0.0f}));
  b.add("d.u8", "U8", {2, 3}, {0, 1, 2, 127, 128, 255});
  b.add("e.i8", "I8", {4}, {0x00, 0x7f, 0x80, 0xff});
  b.add("f.scalar", "F32", {}, le_bytes(std::vector<float>{7.0f}));
  b.metadata("format", "pt");
  const std::vector<uint8_t> bytes = b.bytes();
  const SafetensorsFile f = SafetensorsFile::from_memory(bytes, "ok.safetensors");

  ASSERT_EQ(f.tensors().size(), 6u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.data_offset(), bytes.size() - (4 + 6 + 16 + 6 + 4 + 4));
  EXPECT_EQ(values(f.tensor("a.bf16")), (std::vector<float>{1.5f, -2.5f}));
  EXPECT_EQ(values(f.tensor("b.f16")), (std::vector<float>{1.5f, -2.5f, 0x1p-24f}));
  EXPECT_EQ(values(f.tensor("c.f32")), (std::vector<float>{1.0f, -0.25f, 3e38f, 0.0f}));
  EXPECT_EQ(values(f.tensor("d.u8")), (std::vector<float>{0, 1, 2, 127, 128, 255}));
  EXPECT_EQ(values(f.tensor("e.i8")), (std::vector<float>{0, 127, -128, -1}));
  EXPECT_EQ(values(f.tensor("f.scalar")), (std::vector<float>{7.0f}));

  const SafetensorsTensor& u8 = f.tensor("d.u8");
  EXPECT_EQ(u8.dtype, SafetensorsDtype::U8);
  EXPECT_EQ(u8.dtype_name, "U8");
  EXPECT_EQ(u8.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(u8.size, 6u);
  EXPECT_EQ(std::vector<uint8_t>(u8.data, u8.data + u8.size),
            (std::vector<uint8_t>{0, 1, 2, 127, 128, 255}));
  EXPECT_EQ(f.tensor("f.scalar").shape.size(), 0u);

  // A sub-range of elements.
  float two[2];
  safetensors_to_f32(f.tensor("d.u8"), 3, 2, two);
  EXPECT_EQ(two[0], 127.0f);
  EXPECT_EQ(two[1], 128.0f);
  EXPECT_THROW(safetensors_to_f32(f.tensor("d.u8"), 5, 2, two), std::out_of_range);
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_THROW((void)f.tensor("missing"), SafetensorsError);
}

TEST(Safetensors, OpenFromPathAndUnsortedOffsets) {
  // Header lists "z" first but its data lies after "a"'s; an empty tensor sits anywhere.
  const std::string header = R"({"z":{"dtype":"I8","shape":[2],"data_offsets":[2,4]},)"
                             R"("a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                             R"("e":{"dtype":"F32","shape":[0,5],"data_offsets":[1,1]}})";
  const auto bytes = SafetensorsBuilder::assemble(header, {10, 11, 0xfe, 3});
  const auto path = std::filesystem::temp_directory_path() / "bitnet-test-unsorted.safetensors";
  SafetensorsBuilder::write_bytes(path, bytes);
  const SafetensorsFile f = SafetensorsFile::open(path.string());
  std::filesystem::remove(path);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "a");  // sorted by name
  EXPECT_EQ(values(f.tensor("z")), (std::vector<float>{-2.0f, 3.0f}));
  EXPECT_EQ(values(f.tensor("a")), (std::vector<float>{10.0f, 11.0f}));
  EXPECT_EQ(f.tensor("e").n_elements(), 0);
}

TEST(Safetensors, TruncatedFile) {
  expect_error({}, {"shorter than the 8-byte header length"});
  expect_error({1, 0, 0}, {"shorter than the 8-byte header length"});
}

TEST(Safetensors, HeaderLengthPastEof) {
  auto bytes = SafetensorsBuilder::assemble("{}", {});
  bytes[0] = 200;
  expect_error(bytes, {"header length 200", "past the end"});
  bytes.assign(8, 0xff);
  expect_error(bytes, {"past the end"});
}

TEST(Safetensors, HeaderLengthOverTheCap) {
  const uint64_t n = kSafetensorsMaxHeaderBytes + 8;
  std::vector<uint8_t> bytes(8 + n, ' ');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  expect_error(bytes, {"exceeds the limit"});
}

TEST(Safetensors, BadJson) {
  expect_error(SafetensorsBuilder::assemble(R"({"a": {"dtype": )", {}), {"not valid JSON"});
  expect_error(SafetensorsBuilder::assemble("[1, 2]", {}), {"expected a JSON object"});
  expect_error(SafetensorsBuilder::assemble(R"({"a": 3})", {}), {"tensor 'a'", "object"});
  expect_error(SafetensorsBuilder::assemble(R"({"__metadata__": {"k": 1}})", {}),
               {"__metadata__ key 'k'", "expected a string"});
  expect_error(SafetensorsBuilder::assemble(R"({"t": {"dtype": "U8", "shape": [1]}})", {0}),
               {"tensor 't'", "data_offsets", "missing"});
  expect_error(SafetensorsBuilder::assemble(
                   R"({"t": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}})", {0}),
               {"tensor 't'", "non-negative"});
  expect_error(SafetensorsBuilder::assemble(
                   R"({"t": {"dtype": "U8", "shape": [1], "data_offsets": [0]}})", {0}),
               {"tensor 't'", "data_offsets"});
}

TEST(Safetensors, OffsetsOutOfRange) {
  expect_error(SafetensorsBuilder::assemble(
                   R"({"t": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", {1, 2}),
               {"tensor 't'", "[0, 4)", "data section of 2 bytes"});
  expect_error(SafetensorsBuilder::assemble(
                   R"({"t": {"dtype": "U8", "shape": [0], "data_offsets": [2, 1]}})", {1, 2}),
               {"tensor 't'", "[2, 1)"});
}

TEST(Safetensors, Overlapping) {
  // Listed in reverse order of their offsets: the check does not depend on header order.
  expect_error(
      SafetensorsBuilder::assemble(R"({"b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]},)"
                                   R"("a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})",
                                   {1, 2, 3}),
      {"tensor 'b'", "overlaps tensor 'a'"});
}

TEST(Safetensors, SizeMismatch) {
  expect_error(SafetensorsBuilder::assemble(
                   R"({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 6]}})",
                   std::vector<uint8_t>(6)),
               {"tensor 'w'", "needs 8 bytes", "hold 6"});
  expect_error(
      SafetensorsBuilder::assemble(R"({"w": {"dtype": "F32", "shape": )"
                                   R"([4294967296, 4294967296, 4], "data_offsets": [0, 4]}})",
                                   std::vector<uint8_t>(4)),
      {"tensor 'w'", "2^62"});
}

TEST(Safetensors, UnknownAndUnsupportedDtypes) {
  expect_error(SafetensorsBuilder::assemble(
                   R"({"w": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}})", {0}),
               {"tensor 'w'", "unknown dtype 'Q4'"});
  // A known dtype the engine does not read opens, and fails only when used.
  SafetensorsBuilder b;
  b.add("f64", "F64", {1}, le_bytes(std::vector<double>{1.0}));
  b.add("ok", "U8", {1}, {5});
  const auto bytes = b.bytes();
  const SafetensorsFile f = SafetensorsFile::from_memory(bytes, "mixed.safetensors");
  EXPECT_EQ(values(f.tensor("ok")), (std::vector<float>{5.0f}));
  const SafetensorsTensor& t = f.tensor("f64");
  EXPECT_EQ(t.dtype, SafetensorsDtype::Unsupported);
  EXPECT_EQ(t.size, 8u);
  try {
    (void)values(t);
    ADD_FAILURE() << "no error";
  } catch (const SafetensorsError& e) {
    EXPECT_THAT(e.what(), HasSubstr("mixed.safetensors"));
    EXPECT_THAT(e.what(), HasSubstr("tensor 'f64'"));
    EXPECT_THAT(e.what(), HasSubstr("dtype F64 is not supported"));
  }
}

class SafetensorsIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("bitnet-test-st-index-" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    SafetensorsBuilder a, b;
    a.add("model.a", "U8", {2}, {1, 2});
    a.add("model.b", "I8", {1}, {0xff});
    b.add("model.c", "F32", {1}, le_bytes(std::vector<float>{0.5f}));
    a.write(dir_ / "model-00001-of-00002.safetensors");
    b.write(dir_ / "model-00002-of-00002.safetensors");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void index(const std::string& json) {
    std::ofstream(dir_ / "model.safetensors.index.json") << json;
  }
  std::filesystem::path dir_;
};

constexpr const char* kGoodIndex = R"({"metadata": {"total_size": 7}, "weight_map": {
  "model.a": "model-00001-of-00002.safetensors",
  "model.b": "model-00001-of-00002.safetensors",
  "model.c": "model-00002-of-00002.safetensors"}})";

TEST_F(SafetensorsIndex, TwoShards) {
  index(kGoodIndex);
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open_dir(dir_.string());
  EXPECT_EQ(c.shards().size(), 2u);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"model.a", "model.b", "model.c"}));
  EXPECT_EQ(values(c.tensor("model.a")), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(values(c.tensor("model.b")), (std::vector<float>{-1.0f}));
  EXPECT_EQ(values(c.tensor("model.c")), (std::vector<float>{0.5f}));
  EXPECT_THAT(c.tensor("model.c").file, HasSubstr("model-00002-of-00002.safetensors"));
  EXPECT_EQ(c.find("model.d"), nullptr);
  // Moving keeps the lookups valid.
  const SafetensorsCheckpoint moved = std::move(const_cast<SafetensorsCheckpoint&>(c));
  EXPECT_EQ(values(moved.tensor("model.c")), (std::vector<float>{0.5f}));
}

TEST_F(SafetensorsIndex, SingleFileWithoutIndex) {
  std::filesystem::rename(dir_ / "model-00002-of-00002.safetensors", dir_ / "model.safetensors");
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open_dir(dir_.string());
  EXPECT_EQ(c.names(), (std::vector<std::string>{"model.c"}));
}

TEST_F(SafetensorsIndex, Errors) {
  // SafetensorsError, or MappedFile's std::runtime_error for a missing shard.
  auto expect_index_error = [&](const std::string& json, const std::string& fragment) {
    index(json);
    try {
      (void)SafetensorsCheckpoint::open_dir(dir_.string());
      ADD_FAILURE() << "no error for " << json;
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr(fragment)) << e.what();
    }
  };
  expect_index_error(R"({"weight_map": {"model.c": "model-00001-of-00002.safetensors"}})",
                     "places tensor 'model.c' in model-00001-of-00002.safetensors");
  expect_index_error(R"({"weight_map": {"model.a": "../x.safetensors"}})", "leaves the directory");
  expect_index_error(R"({"weight_map": {"model.a": "missing.safetensors"}})",
                     "missing.safetensors");
  expect_index_error(R"({"weight_map": [)", "not valid JSON");
  expect_index_error(R"({"shards": {}})", "weight_map");
  // The same tensor in two shards.
  SafetensorsBuilder dup;
  dup.add("model.a", "U8", {1}, {9});
  dup.write(dir_ / "model-00002-of-00002.safetensors");
  expect_index_error(kGoodIndex, "tensor 'model.a' is in both");
}

TEST(SafetensorsDir, NothingThere) {
  const auto dir = std::filesystem::temp_directory_path() / "bitnet-test-st-empty-dir";
  std::filesystem::create_directories(dir);
  EXPECT_THROW((void)SafetensorsCheckpoint::open_dir(dir.string()), SafetensorsError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace bitnet::formats
