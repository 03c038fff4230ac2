// Loading models into the kernel layouts, and the prepared-model cache, on the reference fixtures
// (../shared/reference/models): every encoding of the same weights must give the same packed
// matrices; the cache must be hit when fresh and rebuilt when stale, truncated or corrupt.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"
#include "model/model-weights.h"
#include "model/prepared-cache.h"
#include "tools/dummy-model.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;

std::string reference_dir() {
  if (const char* d = std::getenv("BITNET_REFERENCE_DIR"); d && *d) return d;
  return BITNET_REFERENCE_DIR_DEFAULT;
}

std::string fixture(const std::string& name) {
  const std::string p = reference_dir() + "/models/" + name;
  return fs::exists(p) ? p : std::string();
}

#define REQUIRE_FIXTURE(var, name)       \
  const std::string var = fixture(name); \
  if (var.empty())                       \
  GTEST_SKIP() << "reference data not found at " << reference_dir() << " (set BITNET_REFERENCE_DIR)"

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/bitnet-weights-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

LoadOptions no_cache(kernels::TernaryLayout layout) {
  LoadOptions o;
  o.layout = layout;
  o.cache = CacheMode::Off;
  return o;
}

std::vector<int8_t> unpack(const PackedLinear& p) {
  std::vector<int8_t> w(static_cast<size_t>(p.view.n * p.view.k));
  kernels::unpack_ternary(p.view, w.data());
  return w;
}
std::vector<float> scales(const PackedLinear& p) {
  return {p.view.row_scale, p.view.row_scale + p.view.n};
}

// Decodes one tensor straight from a file, as the oracle for the fused matrices.
void decode(const formats::GgufFile& f, const std::string& name, std::vector<int8_t>& w,
            std::vector<float>& s) {
  const auto& t = f.tensor(name);
  const size_t old_w = w.size(), old_s = s.size();
  w.resize(old_w + static_cast<size_t>(t.dims[0] * t.dims[1]));
  s.resize(old_s + static_cast<size_t>(t.dims[1]));
  formats::decode_ternary(t.type, t.data, t.size, t.dims[1], t.dims[0], t.name, w.data() + old_w,
                          s.data() + old_s);
}

TEST(ModelWeights, EveryEncodingPacksToTheSameMatrices) {
  REQUIRE_FIXTURE(f32, "tiny-b158.f32.gguf");
  for (kernels::TernaryLayout layout : {kernels::TernaryLayout::T1, kernels::TernaryLayout::T2}) {
    const auto ref = ModelWeights::load(f32, no_cache(layout));
    EXPECT_EQ(ref->layout(), layout);
    ASSERT_EQ(ref->layers().size(), 4u);
    for (const char* other : {"tiny-b158.f16.gguf", "tiny-b158.i2_s.gguf", "tiny-b158.tq2_0.gguf",
                              "tiny-b158.tq1_0.gguf"}) {
      const auto m = ModelWeights::load(fixture(other), no_cache(layout));
      const auto a = ref->linears(), b = m->linears();
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(unpack(*a[i]), unpack(*b[i])) << other << " " << a[i]->name;
        EXPECT_EQ(scales(*a[i]), scales(*b[i])) << other << " " << a[i]->name;
      }
      EXPECT_EQ(ref->layers()[2].ffn_sub_norm, m->layers()[2].ffn_sub_norm) << other;
      EXPECT_EQ(ref->output_norm(), m->output_norm()) << other;
    }
  }
}

TEST(ModelWeights, FusedMatricesAreTheTensorsStacked) {
  REQUIRE_FIXTURE(path, "tiny-b158.i2_s.gguf");
  const auto m = ModelWeights::load(path, no_cache(kernels::TernaryLayout::T1));
  const auto f = formats::GgufFile::open(path);
  const ModelConfig& c = m->config();
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const LayerWeights& L = m->layers()[static_cast<size_t>(l)];
    std::vector<int8_t> w;
    std::vector<float> s;
    decode(f, b + "attn_q.weight", w, s);
    decode(f, b + "attn_k.weight", w, s);
    decode(f, b + "attn_v.weight", w, s);
    EXPECT_EQ(L.qkv.view.n, c.n_embd + 2 * c.n_embd_kv());
    EXPECT_EQ(unpack(L.qkv), w);
    EXPECT_EQ(scales(L.qkv), s);
    w.clear();
    s.clear();
    decode(f, b + "ffn_gate.weight", w, s);
    decode(f, b + "ffn_up.weight", w, s);
    EXPECT_EQ(L.gate_up.view.n, 2 * c.n_ff);
    EXPECT_EQ(unpack(L.gate_up), w);
    EXPECT_EQ(scales(L.gate_up), s);
    EXPECT_EQ(L.down.view.k, c.n_ff);
  }
}

TEST(ModelWeights, ArchBitnetScaleTensorsAreFoldedIntoRowScales) {
  REQUIRE_FIXTURE(path, "tiny-bitnet.tq2_0.gguf");
  const auto m = ModelWeights::load(path, no_cache(kernels::TernaryLayout::T2));
  const auto f = formats::GgufFile::open(path);
  float q_scale, up_scale;
  std::memcpy(&q_scale, f.tensor("blk.1.attn_q.scale").data, 4);
  std::memcpy(&up_scale, f.tensor("blk.1.ffn_up.scale").data, 4);
  const LayerWeights& L = m->layers()[1];
  // The TQ2_0 blocks of tiny-bitnet hold unit weights (d = 1): the row scale is the .scale value.
  EXPECT_EQ(L.qkv.view.row_scale[0], q_scale);
  EXPECT_EQ(L.gate_up.view.row_scale[m->config().n_ff], up_scale);
  const auto f32 =
      ModelWeights::load(fixture("tiny-bitnet.f32.gguf"), no_cache(kernels::TernaryLayout::T2));
  for (size_t i = 0; i < m->linears().size(); ++i) {
    EXPECT_EQ(unpack(*m->linears()[i]), unpack(*f32->linears()[i]));
    EXPECT_EQ(scales(*m->linears()[i]), scales(*f32->linears()[i]));
  }
}

TEST(ModelWeights, EmbeddingIsUsedInPlaceFromTheMapping) {
  REQUIRE_FIXTURE(path, "tiny-b158.f16.gguf");
  LoadOptions o = no_cache(kernels::TernaryLayout::T1);
  o.mmap_threshold = 0;  // map even this small file
  const auto m = ModelWeights::load(path, o);
  ASSERT_TRUE(m->file().is_mapped());
  const auto& embd = *m->token_embd().info;
  EXPECT_EQ(embd.type, static_cast<uint32_t>(formats::GgmlType::F16));
  // The tensor's bytes are the file's bytes: the first bytes of the data section plus its offset.
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(m->file().data_offset() + embd.offset));
  std::vector<char> head(64);
  in.read(head.data(), 64);
  EXPECT_EQ(std::memcmp(head.data(), embd.data, 64), 0);
  EXPECT_EQ(&m->output(), &m->token_embd());  // tied LM head
}

TEST(PreparedCache, HitWhenFreshRebuiltWhenStaleTruncatedOrCorrupt) {
  REQUIRE_FIXTURE(src, "tiny-b158.i2_s.gguf");
  TempDir tmp;
  const fs::path model = tmp.path / "model.gguf";
  fs::copy_file(src, model);
  LoadOptions o;
  o.layout = kernels::TernaryLayout::T1;
  o.cache = CacheMode::On;
  o.cache_dir = (tmp.path / "cache").string();

  const auto first = ModelWeights::load(model.string(), o);
  EXPECT_EQ(first->report().source, LoadReport::Source::CacheRebuilt)
      << first->report().cache_reason;
  const std::string cache = first->report().cache_path;
  ASSERT_TRUE(fs::exists(cache));

  const auto second = ModelWeights::load(model.string(), o);
  ASSERT_EQ(second->report().source, LoadReport::Source::CacheHit) << second->report().cache_reason;
  for (size_t i = 0; i < first->linears().size(); ++i) {
    const PackedLinear& a = *first->linears()[i];
    const PackedLinear& b = *second->linears()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(unpack(a), unpack(b));
    EXPECT_EQ(scales(a), scales(b));
    EXPECT_EQ(b.owned.bytes(), 0u) << "a cache hit must use the mapping, not a copy";
  }

  auto expect_rebuilt = [&](const char* what, const char* reason_part) {
    const auto m = ModelWeights::load(model.string(), o);
    EXPECT_EQ(m->report().source, LoadReport::Source::CacheRebuilt) << what;
    EXPECT_NE(m->report().cache_reason.find(reason_part), std::string::npos)
        << what << ": " << m->report().cache_reason;
    EXPECT_EQ(unpack(*m->linears()[5]), unpack(*first->linears()[5])) << what;
    EXPECT_EQ(ModelWeights::load(model.string(), o)->report().source, LoadReport::Source::CacheHit)
        << what << ": the rebuilt cache is used next time";
  };

  // A corrupt byte in the first matrix's packed data (the first page after the header page and
  // the 16-entry table; padding between sections is not covered, and is never read).
  {
    std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(8200);
    const char old = static_cast<char>(f.get());
    f.seekp(8200);
    f.put(static_cast<char>(old ^ 0x5a));
  }
  expect_rebuilt("corrupt data", "checksum");
  // Truncated.
  fs::resize_file(cache, fs::file_size(cache) - 4096);
  expect_rebuilt("truncated", "size");
  // Garbage instead of a cache.
  {
    std::ofstream f(cache, std::ios::binary | std::ios::trunc);
    f << "not a cache at all, but long enough? no.";
  }
  expect_rebuilt("garbage", "truncated");
  // The model file changes (same size, new mtime): stale.
  struct timespec times[2] = {{0, UTIME_OMIT}, {1234567890, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, model.c_str(), times, 0), 0);
  {
    const auto m = ModelWeights::load(model.string(), o);
    EXPECT_EQ(m->report().source, LoadReport::Source::CacheRebuilt);
    EXPECT_NE(m->report().cache_reason.find("stale"), std::string::npos)
        << m->report().cache_reason;
  }
}

TEST(PreparedCache, StaleIdentityIsRejected) {
  REQUIRE_FIXTURE(src, "tiny-b158.tq1_0.gguf");
  TempDir tmp;
  const auto m = ModelWeights::load(src, no_cache(kernels::TernaryLayout::T2));
  std::vector<PreparedMatrix> mats;
  for (const PackedLinear* p : m->linears()) mats.push_back({p->name, &p->view});
  SourceIdentity id = identify_source(src);
  const std::string path = (tmp.path / "c.bnprep").string();
  write_prepared_cache(path, id, kernels::TernaryLayout::T2, kernels::Isa::Scalar, mats);
  std::string why;
  EXPECT_TRUE(open_prepared_cache(path, id, kernels::TernaryLayout::T2, kernels::Isa::Scalar, &why))
      << why;
  SourceIdentity newer = id;
  newer.mtime_ns += 1;
  EXPECT_FALSE(
      open_prepared_cache(path, newer, kernels::TernaryLayout::T2, kernels::Isa::Scalar, &why));
  EXPECT_NE(why.find("stale"), std::string::npos) << why;
  EXPECT_FALSE(
      open_prepared_cache(path, id, kernels::TernaryLayout::T1, kernels::Isa::Scalar, &why));
  EXPECT_FALSE(open_prepared_cache(path, id, kernels::TernaryLayout::T2, kernels::Isa::Avx2, &why));
}

TEST(ModelWeights, NonTernaryWeightIsAClearError) {
  REQUIRE_FIXTURE(src, "tiny-b158.f32.gguf");
  const auto f = formats::GgufFile::open(src);
  formats::GgufWriter w;
  for (const auto& kv : f.kvs()) w.set(kv.key, kv.value);
  std::vector<float> bad;
  for (const auto& t : f.tensors()) {
    const std::vector<int64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
    if (t.name == "blk.2.ffn_up.weight") {
      bad.assign(reinterpret_cast<const float*>(t.data),
                 reinterpret_cast<const float*>(t.data) + t.n_elements());
      bad[77] = bad[77] == 0.0f ? 0.001f : bad[77] * 0.5f;
      w.add_tensor(t.name, t.type, dims,
                   std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bad.data()), t.size));
    } else {
      w.add_tensor(t.name, t.type, dims, t.bytes());
    }
  }
  TempDir tmp;
  const std::string path = (tmp.path / "bad.gguf").string();
  w.write(path);
  try {
    ModelWeights::load(path, no_cache(kernels::TernaryLayout::T1));
    FAIL() << "a non-ternary weight was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("blk.2.ffn_up.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace bitnet::model

namespace bitnet::model {
namespace {

int64_t rss_anon_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stoll(line.substr(8));
  }
  return -1;
}

TEST(ModelWeights, TwoBFourTShapedDummyLoadsWithoutCopyingWeightBytes) {
  // The real 2B4T shapes (2.08 B ternary weights): a Q6_K embedding keeps the file at 0.8 GB.
  TempDir tmp;
  const std::string path = (tmp.path / "2b4t.gguf").string();
  DummyOptions d;
  d.embd_type = static_cast<uint32_t>(formats::GgmlType::Q6_K);
  write_dummy_model(find_dummy_preset("2b4t"), d, path);
  LoadOptions o;
  o.cache = CacheMode::Auto;  // on by default for a model this large
  o.cache_dir = (tmp.path / "cache").string();
  {
    const auto first = ModelWeights::load(path, o);
    EXPECT_EQ(first->report().source, LoadReport::Source::CacheRebuilt)
        << first->report().cache_reason;
  }
  const int64_t before = rss_anon_kib();
  const auto m = ModelWeights::load(path, o);
  const int64_t grown_kib = rss_anon_kib() - before;
  ASSERT_EQ(m->report().source, LoadReport::Source::CacheHit) << m->report().cache_reason;
  ASSERT_TRUE(m->file().is_mapped());
  EXPECT_EQ(m->config().n_layer, 30);
  EXPECT_EQ(m->config().n_embd, 2560);
  // Every packed linear lives in the cache mapping, the embedding in the model file's mapping.
  uint64_t packed = 0;
  for (const PackedLinear* p : m->linears()) {
    EXPECT_EQ(p->owned.bytes(), 0u) << p->name;
    packed += p->view.group_bytes * static_cast<uint64_t>(p->view.groups());
  }
  EXPECT_GE(packed, uint64_t{416000000});  // 2.08 B weights at 1.6 (T1) or 2 (T2) bits each
  const auto& embd = *m->token_embd().info;
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(m->file().data_offset() + embd.offset));
  std::vector<char> head(256);
  in.read(head.data(), 256);
  EXPECT_EQ(std::memcmp(head.data(), embd.data, 256), 0);
  // Anonymous (copied) memory: the norms in F32 (about 1 MB) and bookkeeping, not hundreds of MB.
  EXPECT_LT(grown_kib, 32 * 1024) << "anonymous memory grew by " << grown_kib << " KiB";
}

}  // namespace
}  // namespace bitnet::model
