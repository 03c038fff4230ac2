// A crafted-corruption corpus, made here from small dummy models (nothing committed, nothing
// read from outside the build): corrupt headers, metadata, tensor infos and tensor data, each
// file run through the library (bitnet::Engine), `bitnet inspect` and `bitnet run`. Every one
// must give a one-line error and a non-zero exit within a time bound (no crash, no hang, no
// silent garbage), and inspect's verdict must agree with run's on every file.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "bitnet/engine.h"
#include "cli-runner.h"
#include "core/fp16.h"
#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "tools/dummy-model.h"

namespace bitnet {
namespace {

namespace fs = std::filesystem;
using formats::GgmlType;
using formats::GgufFile;
using formats::GgufTensorInfo;
using formats::GgufValue;
using formats::GgufWriter;
using test::TempDir;

constexpr uint32_t id(GgmlType t) {
  return static_cast<uint32_t>(t);
}

// One base model file and the ways to derive corrupt copies of it.
class Base {
 public:
  Base(const fs::path& dir, const std::string& name, uint32_t linear, uint32_t embd)
      : dir_(dir), path_((dir / (name + ".gguf")).string()) {
    model::DummyOptions o;
    o.linear_type = linear;
    o.embd_type = embd;
    model::write_dummy_model(model::find_dummy_preset("tiny-1m"), o, path_);
    bytes_ = test::read_all(path_);
    file_.emplace(GgufFile::open(path_));
  }

  const std::string& path() const { return path_; }
  const std::string& bytes() const { return bytes_; }
  const GgufFile& file() const { return *file_; }
  size_t data_start(const std::string& tensor) const {
    const GgufTensorInfo& t = file_->tensor(tensor);
    return static_cast<size_t>(file_->data_offset() + t.offset);
  }
  // Offset of the tensor info of `name` (its u64 name length) in the header.
  size_t info_offset(const std::string& name) const {
    std::string needle(8, '\0');
    const uint64_t len = name.size();
    std::memcpy(needle.data(), &len, 8);
    needle += name;
    const size_t at = bytes_.find(needle);
    if (at == std::string::npos) throw std::runtime_error("no tensor info for " + name);
    return at;
  }
  // Offset of the field after the name in the tensor info: n_dims (u32), then dims (i64 each),
  // then type (u32) and offset (u64).
  size_t info_fields(const std::string& name) const { return info_offset(name) + 8 + name.size(); }

  // A copy rewritten by GgufWriter with edits: kv (may set or drop keys via `drop`), tensors (drop
  // by returning false; change dims or type), data (change bytes).
  struct Edit {
    std::function<void(GgufWriter&)> kv;
    std::vector<std::string> drop_keys;
    std::function<bool(const GgufTensorInfo&, std::vector<int64_t>& dims, uint32_t& type)> tensor;
    std::function<void(const std::string& name, std::vector<uint8_t>& data)> data;
    std::function<void(GgufWriter&, std::vector<std::vector<uint8_t>>& keep)> extra;
  };
  std::string rewrite(const std::string& name, const Edit& e) const {
    GgufWriter w;
    for (const auto& kv : file_->kvs()) {
      bool drop = false;
      for (const auto& k : e.drop_keys) drop = drop || k == kv.key;
      if (!drop) w.set(kv.key, kv.value);
    }
    if (e.kv) e.kv(w);
    std::vector<std::vector<uint8_t>> keep;
    keep.reserve(file_->tensors().size() + 4);
    for (const GgufTensorInfo& t : file_->tensors()) {
      std::vector<int64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
      uint32_t type = t.type;
      if (e.tensor && !e.tensor(t, dims, type)) continue;
      const size_t size =
          formats::ggml_tensor_bytes(type, dims.data(), static_cast<int>(dims.size()));
      keep.emplace_back(size, uint8_t{0});
      std::memcpy(keep.back().data(), t.data, std::min(size, t.size));
      if (e.data) e.data(t.name, keep.back());
      w.add_tensor(t.name, type, dims, std::span<const uint8_t>(keep.back()));
    }
    if (e.extra) e.extra(w, keep);
    const std::string out = (dir_ / (name + ".gguf")).string();
    w.write(out);
    return out;
  }
  std::string with_bytes(const std::string& name, const std::string& bytes) const {
    const std::string out = (dir_ / (name + ".gguf")).string();
    std::ofstream(out, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return out;
  }
  template <class T>
  std::string patched(const std::string& name, size_t offset, T value) const {
    std::string b = bytes_;
    std::memcpy(b.data() + offset, &value, sizeof value);
    return with_bytes(name, b);
  }

 private:
  fs::path dir_;
  std::string path_;
  std::string bytes_;
  std::optional<GgufFile> file_;
};

struct Case {
  std::string name;
  std::string path;
};

void set_f32(std::vector<uint8_t>& d, size_t i, float v) {
  std::memcpy(d.data() + 4 * i, &v, 4);
}
void set_u16(std::vector<uint8_t>& d, size_t byte, uint16_t v) {
  std::memcpy(d.data() + byte, &v, 2);
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

std::vector<Case> make_corpus(const fs::path& dir) {
  const Base i2s(dir, "base-i2s", id(GgmlType::I2_S), id(GgmlType::F16));
  const Base tq2(dir, "base-tq2", id(GgmlType::TQ2_0), id(GgmlType::Q8_0));
  const Base tq1(dir, "base-tq1", id(GgmlType::TQ1_0), id(GgmlType::Q6_K));
  const Base f16(dir, "base-f16", id(GgmlType::F16), id(GgmlType::F16));
  std::vector<Case> c;
  auto add = [&](const std::string& name, const std::string& path) { c.push_back({name, path}); };
  const std::string& b = i2s.bytes();
  const std::string p = "bitnet-b1.58.";

  // ---- header ----
  add("magic", i2s.patched("magic", 0, uint32_t{0x58554747}));
  for (const uint32_t v : {0u, 1u, 4u, 0xFFFFFFFFu}) {
    add("version-" + std::to_string(v), i2s.patched("version-" + std::to_string(v), 4, v));
  }
  const uint64_t n_tensors = i2s.file().tensors().size(), n_kv = i2s.file().kvs().size();
  for (const uint64_t v : {uint64_t{1} << 63, n_tensors + 1, uint64_t{0}, n_tensors - 1}) {
    add("n-tensors-" + std::to_string(v), i2s.patched("n-tensors-" + std::to_string(v), 8, v));
  }
  for (const uint64_t v : {uint64_t{1} << 40, n_kv + 1, uint64_t{0}, n_kv - 1}) {
    add("n-kv-" + std::to_string(v), i2s.patched("n-kv-" + std::to_string(v), 16, v));
  }
  // ---- truncations: 16 cuts from the magic to the last byte ----
  const size_t header_end = i2s.file().data_offset();
  for (const size_t keep :
       {size_t{0}, size_t{3}, size_t{8}, size_t{20}, size_t{30}, header_end / 8, header_end / 3,
        header_end / 2, header_end - 9, header_end - 1, header_end, header_end + 1, b.size() / 2,
        b.size() - 33, b.size() - 2, b.size() - 1}) {
    add("truncated-" + std::to_string(keep),
        i2s.with_bytes("truncated-" + std::to_string(keep), b.substr(0, keep)));
  }

  // ---- metadata ----
  auto kv = [&](const std::string& name, std::function<void(GgufWriter&)> f) {
    Base::Edit e;
    e.kv = std::move(f);
    add(name, i2s.rewrite(name, e));
  };
  auto drop = [&](const std::string& name, const std::string& key) {
    Base::Edit e;
    e.drop_keys = {key};
    add(name, i2s.rewrite(name, e));
  };
  drop("arch-missing", "general.architecture");
  kv("arch-unknown", [](GgufWriter& w) { w.set("general.architecture", "gpt9"); });
  kv("arch-empty", [](GgufWriter& w) { w.set("general.architecture", ""); });
  kv("arch-type", [](GgufWriter& w) { w.set("general.architecture", uint32_t{7}); });
  for (const uint32_t v : {0u, 0xFFFFFFFFu, 3u, 1000000u}) {
    kv("block-count-" + std::to_string(v), [&, v](GgufWriter& w) { w.set(p + "block_count", v); });
  }
  kv("block-count-string", [&](GgufWriter& w) { w.set(p + "block_count", "two"); });
  drop("block-count-missing", p + "block_count");
  for (const uint32_t v : {0u, 255u, 512u}) {
    kv("n-embd-" + std::to_string(v), [&, v](GgufWriter& w) { w.set(p + "embedding_length", v); });
  }
  kv("n-embd-u64", [&](GgufWriter& w) { w.set(p + "embedding_length", uint64_t{1} << 40); });
  for (const uint32_t v : {0u, 3u, 1u << 20}) {
    kv("n-head-" + std::to_string(v),
       [&, v](GgufWriter& w) { w.set(p + "attention.head_count", v); });
  }
  for (const uint32_t v : {0u, 3u, 8u}) {
    kv("n-head-kv-" + std::to_string(v),
       [&, v](GgufWriter& w) { w.set(p + "attention.head_count_kv", v); });
  }
  for (const uint32_t v : {0u, 1000u}) {
    kv("n-ff-" + std::to_string(v), [&, v](GgufWriter& w) { w.set(p + "feed_forward_length", v); });
  }
  for (const uint32_t v : {0u, 0xFFFFFFFFu, (1u << 24) + 1}) {
    kv("context-" + std::to_string(v), [&, v](GgufWriter& w) { w.set(p + "context_length", v); });
  }
  for (const uint32_t v : {0u, 63u, 128u}) {
    kv("rope-dim-" + std::to_string(v),
       [&, v](GgufWriter& w) { w.set(p + "rope.dimension_count", v); });
  }
  for (const float v : {kNaN, kInf, -1.0f, 0.0f}) {
    kv("rope-base-" + std::to_string(c.size()),
       [&, v](GgufWriter& w) { w.set(p + "rope.freq_base", v); });
  }
  for (const float v : {kNaN, 0.0f, -1e-5f, kInf}) {
    kv("rms-eps-" + std::to_string(c.size()),
       [&, v](GgufWriter& w) { w.set(p + "attention.layer_norm_rms_epsilon", v); });
  }
  kv("rope-scaling-yarn", [&](GgufWriter& w) { w.set(p + "rope.scaling.type", "yarn"); });
  kv("rope-scaling-factor", [&](GgufWriter& w) { w.set(p + "rope.scaling.factor", 4.0f); });
  for (const uint32_t v : {0u, 4000u, 5000u}) {
    kv("vocab-size-" + std::to_string(v), [&, v](GgufWriter& w) { w.set(p + "vocab_size", v); });
  }
  drop("tokenizer-model-missing", "tokenizer.ggml.model");
  kv("tokenizer-model-unknown", [](GgufWriter& w) { w.set("tokenizer.ggml.model", "bert"); });
  kv("tokenizer-model-type", [](GgufWriter& w) { w.set("tokenizer.ggml.model", uint32_t{2}); });
  kv("tokenizer-pre-unknown", [](GgufWriter& w) { w.set("tokenizer.ggml.pre", "klingon"); });
  drop("tokens-missing", "tokenizer.ggml.tokens");
  kv("tokens-empty",
     [](GgufWriter& w) { w.set("tokenizer.ggml.tokens", GgufValue(std::vector<std::string>{})); });
  kv("tokens-u32", [](GgufWriter& w) {
    w.set("tokenizer.ggml.tokens", GgufValue(std::vector<uint32_t>{1, 2}));
  });
  kv("tokens-short", [](GgufWriter& w) {
    w.set("tokenizer.ggml.tokens", GgufValue(std::vector<std::string>{"a", "b", "c"}));
  });
  kv("token-type-length", [](GgufWriter& w) {
    w.set("tokenizer.ggml.token_type", GgufValue(std::vector<int32_t>(10, 1)));
  });
  kv("merges-malformed", [](GgufWriter& w) {
    w.set("tokenizer.ggml.merges", GgufValue(std::vector<std::string>{"abc"}));
  });
  kv("merges-unknown-token", [](GgufWriter& w) {
    w.set("tokenizer.ggml.merges", GgufValue(std::vector<std::string>{"zzzq qqqz"}));
  });
  kv("bos-out-of-range",
     [](GgufWriter& w) { w.set("tokenizer.ggml.bos_token_id", uint32_t{1000000}); });
  kv("eos-out-of-range",
     [](GgufWriter& w) { w.set("tokenizer.ggml.eos_token_id", uint32_t{99999}); });

  // ---- tensor infos (rewritten) ----
  auto tensors =
      [&](const std::string& name,
          std::function<bool(const GgufTensorInfo&, std::vector<int64_t>&, uint32_t&)> f) {
        Base::Edit e;
        e.tensor = std::move(f);
        add(name, i2s.rewrite(name, e));
      };
  for (const std::string t : {"token_embd.weight", "blk.0.attn_q.weight", "output_norm.weight",
                              "blk.1.ffn_sub_norm.weight", "blk.1.ffn_down.weight"}) {
    tensors("missing-" + t, [t](const GgufTensorInfo& i, auto&, auto&) { return i.name != t; });
  }
  {
    Base::Edit e;
    e.extra = [](GgufWriter& w, std::vector<std::vector<uint8_t>>& keep) {
      keep.emplace_back(256 * 4, uint8_t{0});
      const int64_t dims[1] = {256};
      w.add_tensor("foo.weight", id(GgmlType::F32), dims, std::span<const uint8_t>(keep.back()));
    };
    add("extra-tensor", i2s.rewrite("extra-tensor", e));
  }
  auto reshape = [&](const std::string& name, const std::string& t, std::vector<int64_t> dims) {
    tensors(name, [t, dims](const GgufTensorInfo& i, std::vector<int64_t>& d, uint32_t&) {
      if (i.name == t) d = dims;
      return true;
    });
  };
  reshape("shape-attn-q", "blk.0.attn_q.weight", {256, 128});
  reshape("shape-attn-norm", "blk.0.attn_norm.weight", {128});
  reshape("shape-attn-norm-2d", "blk.0.attn_norm.weight", {256, 1});
  reshape("shape-token-embd", "token_embd.weight", {256, 4000});
  reshape("shape-ffn-down-transposed", "blk.1.ffn_down.weight", {256, 512});
  reshape("shape-ffn-gate-3d", "blk.0.ffn_gate.weight", {256, 512, 1});
  auto retype = [&](const std::string& name, const std::string& t, uint32_t type) {
    tensors(name, [t, type](const GgufTensorInfo& i, std::vector<int64_t>&, uint32_t& ty) {
      if (i.name == t) ty = type;
      return true;
    });
  };
  retype("type-norm-q8", "blk.0.attn_norm.weight", id(GgmlType::Q8_0));
  retype("type-linear-q6k", "blk.0.ffn_gate.weight", id(GgmlType::Q6_K));
  retype("type-embd-i2s", "token_embd.weight", id(GgmlType::I2_S));
  retype("type-norm-tq2", "blk.1.ffn_norm.weight", id(GgmlType::TQ2_0));
  retype("type-linear-q8", "blk.0.attn_v.weight", id(GgmlType::Q8_0));

  // ---- tensor infos (bytes) ----
  const std::string q = "blk.0.attn_q.weight";
  const size_t qf = i2s.info_fields(q);  // n_dims u32, dims 2 x i64, type u32, offset u64
  add("info-type-99", i2s.patched("info-type-99", qf + 4 + 16, uint32_t{99}));
  add("info-type-max", i2s.patched("info-type-max", qf + 4 + 16, uint32_t{0xFFFFFFFF}));
  add("info-offset-past-end",
      i2s.patched("info-offset-past-end", qf + 4 + 16 + 4, uint64_t{b.size()}));
  add("info-offset-huge", i2s.patched("info-offset-huge", qf + 4 + 16 + 4, uint64_t{1} << 62));
  {
    uint64_t off;
    std::memcpy(&off, b.data() + qf + 4 + 16 + 4, 8);
    add("info-offset-misaligned", i2s.patched("info-offset-misaligned", qf + 4 + 16 + 4, off + 1));
    const size_t kf = i2s.info_fields("blk.0.attn_k.weight");
    add("info-offset-overlap", i2s.patched("info-offset-overlap", kf + 4 + 16 + 4, off));
  }
  add("info-ndims-0", i2s.patched("info-ndims-0", qf, uint32_t{0}));
  add("info-ndims-5", i2s.patched("info-ndims-5", qf, uint32_t{5}));
  add("info-dim-0", i2s.patched("info-dim-0", qf + 4, int64_t{0}));
  add("info-dim-negative", i2s.patched("info-dim-negative", qf + 4, int64_t{-256}));
  {
    std::string bb = b;
    const int64_t big = int64_t{1} << 40;
    std::memcpy(bb.data() + qf + 4, &big, 8);
    std::memcpy(bb.data() + qf + 12, &big, 8);
    add("info-dims-overflow", i2s.with_bytes("info-dims-overflow", bb));
  }
  add("info-name-length-huge",
      i2s.patched("info-name-length-huge", i2s.info_offset(q), uint64_t{1} << 50));

  // ---- data ----
  auto data = [&](const Base& base, const std::string& name, const std::string& t,
                  std::function<void(std::vector<uint8_t>&)> f) {
    Base::Edit e;
    e.data = [t, f](const std::string& n, std::vector<uint8_t>& d) {
      if (n == t) f(d);
    };
    add(name, base.rewrite(name, e));
  };
  data(i2s, "nan-attn-norm", "blk.0.attn_norm.weight", [](auto& d) { set_f32(d, 17, kNaN); });
  data(i2s, "inf-ffn-norm", "blk.1.ffn_norm.weight", [](auto& d) { set_f32(d, 0, kInf); });
  data(i2s, "nan-output-norm", "output_norm.weight", [](auto& d) { set_f32(d, 255, kNaN); });
  data(i2s, "neg-inf-attn-sub-norm", "blk.0.attn_sub_norm.weight",
       [](auto& d) { set_f32(d, 3, -kInf); });
  data(i2s, "nan-ffn-sub-norm", "blk.1.ffn_sub_norm.weight",
       [](auto& d) { set_f32(d, 511, kNaN); });
  data(i2s, "nan-token-embd-f16", "token_embd.weight",
       [](auto& d) { set_u16(d, 2 * 12345, 0x7e00); });
  data(i2s, "inf-token-embd-f16", "token_embd.weight", [](auto& d) { set_u16(d, 0, 0x7c00); });
  data(i2s, "neg-inf-token-embd-last", "token_embd.weight",
       [](auto& d) { set_u16(d, d.size() - 2, 0xfc00); });
  for (const std::string t :
       {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "blk.0.ffn_up.weight"}) {
    data(i2s, "i2s-scale-nan-" + t, t,
         [](auto& d) { std::memcpy(d.data() + d.size() - 32, &kNaN, 4); });
  }
  data(i2s, "i2s-scale-inf", "blk.1.attn_output.weight",
       [](auto& d) { std::memcpy(d.data() + d.size() - 32, &kInf, 4); });
  for (const std::string t :
       {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "blk.0.attn_v.weight"}) {
    data(i2s, "i2s-code3-" + t, t, [](auto& d) { d[d.size() / 2 - 40] |= 0xC0; });
  }
  data(i2s, "i2s-code3-first-byte", "blk.0.ffn_gate.weight", [](auto& d) { d[0] = 0xFF; });
  // TQ2_0 (66-byte blocks: qs[64], fp16 d) and Q8_0 (34-byte blocks: fp16 d, q[32]).
  data(tq2, "tq2-field-3", "blk.0.attn_q.weight", [](auto& d) { d[66 * 5 + 7] = 0xFF; });
  data(tq2, "tq2-d-nan", "blk.1.ffn_up.weight", [](auto& d) { set_u16(d, 66 * 3 + 64, 0x7e01); });
  data(tq2, "tq2-d-inf", "blk.0.ffn_down.weight", [](auto& d) { set_u16(d, 64, 0x7c00); });
  data(tq2, "q8-embd-d-nan", "token_embd.weight", [](auto& d) { set_u16(d, 34 * 1000, 0x7e00); });
  data(tq2, "q8-embd-d-inf", "token_embd.weight", [](auto& d) { set_u16(d, 0, 0xfc00); });
  // TQ1_0 (54-byte blocks: qs[48], qh[4], fp16 d) and Q6_K (210-byte blocks, fp16 d last).
  data(tq1, "tq1-d-inf", "blk.0.attn_k.weight", [](auto& d) { set_u16(d, 54 * 2 + 52, 0x7c00); });
  data(tq1, "tq1-d-nan", "blk.1.attn_q.weight", [](auto& d) { set_u16(d, 52, 0xfe00); });
  data(tq1, "q6k-embd-d-nan", "token_embd.weight",
       [](auto& d) { set_u16(d, 210 * 77 + 208, 0x7e00); });
  data(tq1, "q6k-embd-d-inf", "token_embd.weight", [](auto& d) { set_u16(d, 208, 0x7c00); });
  // F16 linears: t * scale exactly; anything else is not ternary.
  data(f16, "f16-linear-not-ternary", "blk.0.attn_q.weight",
       [](auto& d) { set_u16(d, 2 * 100, fp32_to_fp16(0.123f)); });
  data(f16, "f16-linear-nan", "blk.1.ffn_gate.weight", [](auto& d) { set_u16(d, 2 * 7, 0x7e00); });
  data(f16, "f16-linear-inf", "blk.1.ffn_down.weight", [](auto& d) { set_u16(d, 0, 0x7c00); });
  return c;
}

// The corpus is made once for all tests of the suite; a failure to make it fails each test (an
// exception in SetUpTestSuite would only mark them skipped).
class Corruption : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!corpus_ && error_.empty()) {
      dir_ = new TempDir("bitnet-corrupt");
      try {
        corpus_ = new std::vector<Case>(make_corpus(dir_->path()));
      } catch (const std::exception& e) {
        error_ = e.what();
      }
    }
    ASSERT_TRUE(corpus_) << "making the corpus failed: " << error_;
  }
  static void TearDownTestSuite() {
    delete corpus_;
    delete dir_;
    corpus_ = nullptr;
    dir_ = nullptr;
  }
  static TempDir* dir_;
  static std::vector<Case>* corpus_;
  static std::string error_;
};
TempDir* Corruption::dir_ = nullptr;
std::vector<Case>* Corruption::corpus_ = nullptr;
std::string Corruption::error_;

TEST_F(Corruption, CorpusHasAtLeast100Files) {
  EXPECT_GE(corpus_->size(), 100u);
}

// The library: constructing an Engine (or its first request) throws bitnet::Error with a message
// on one line naming the file, quickly.
TEST_F(Corruption, LibraryRefusesEveryFileWithOneLineError) {
  for (const Case& c : *corpus_) {
    SCOPED_TRACE(c.name);
    const auto t0 = std::chrono::steady_clock::now();
    EngineConfig cfg;
    cfg.threads = 1;
    cfg.prepared_cache = PreparedCache::Off;
    ModelCache cache;
    cfg.model_cache = &cache;
    std::string error;
    try {
      Engine engine(c.path, cfg);
      GenerateOptions o;
      o.max_tokens = 4;
      o.temperature = 0;
      const GenerateResult r = engine.generate("hello", o);
      ADD_FAILURE() << "generated " << r.tokens.size() << " tokens from a corrupt file";
    } catch (const Error& e) {
      error = e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a bitnet::Error: " << e.what();
    }
    if (std::getenv("BITNET_CORRUPTION_VERBOSE"))
      std::printf("%-32s %s\n", c.name.c_str(), error.c_str());
    if (error.empty()) continue;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    EXPECT_NE(error.find(c.path), std::string::npos) << error;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  }
}

#ifdef BITNET_CLI_PATH
// Whether a text is exactly one non-empty line.
bool one_line(const std::string& s) {
  const size_t nl = s.find('\n');
  return !s.empty() && (nl == std::string::npos || nl + 1 == s.size());
}

// inspect and run: a non-zero exit (3: bad model file), one line on stderr for run, within a time
// bound, and the same verdict from both.
TEST_F(Corruption, InspectAndRunAgreeAndFailCleanly) {
  for (const Case& c : *corpus_) {
    SCOPED_TRACE(c.name);
    const auto t0 = std::chrono::steady_clock::now();
    const test::Result inspect = test::run_bitnet({"inspect", c.path}, 30);
    const test::Result run = test::run_bitnet(
        {"run", "-m", c.path, "-p", "hi", "-n", "2", "-t", "1", "--no-cache", "--temp", "0"}, 30);
    ASSERT_TRUE(inspect.exited) << "inspect crashed or hung: " << inspect.err;
    ASSERT_TRUE(run.exited) << "run crashed or hung: " << run.err;
    EXPECT_EQ(inspect.code, 3) << inspect.out << inspect.err;
    EXPECT_EQ(run.code, 3) << run.err;
    EXPECT_TRUE(one_line(run.err)) << run.err;
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(inspect.code == 0, run.code == 0) << "inspect and run disagree";
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
  }
}

// Finite weights whose arithmetic overflows (an I2_S scale of 1e38): the values pass every load
// check, the forward pass produces inf and NaN, and every consumer reports it as an error naming
// where it happened instead of aborting or printing NaN.
TEST_F(Corruption, RuntimeOverflowIsAnErrorNotAnAbort) {
  const Base base(dir_->path(), "overflow-base", id(GgmlType::I2_S), id(GgmlType::F16));
  Base::Edit e;
  e.data = [](const std::string& n, std::vector<uint8_t>& d) {
    if (n.find("ffn_down") == std::string::npos) return;
    const float huge = 1e38f;
    std::memcpy(d.data() + d.size() - 32, &huge, 4);
  };
  const std::string path = base.rewrite("overflow", e);
  {
    EngineConfig cfg;
    cfg.threads = 1;
    ModelCache cache;
    cfg.model_cache = &cache;
    Engine engine(path, cfg);
    GenerateOptions o;
    o.max_tokens = 4;
    o.temperature = 0;
    try {
      engine.generate("hello", o);
      ADD_FAILURE() << "generated from an overflowing model";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("non-finite logit"), std::string::npos) << err.what();
      EXPECT_NE(std::string(err.what()).find("position"), std::string::npos) << err.what();
    }
  }
  const test::Result run = test::run_bitnet({"run", "-m", path, "-p", "hello", "-n", "4"});
  EXPECT_TRUE(run.exited);
  EXPECT_EQ(run.code, 1) << run.err;
  EXPECT_NE(run.err.find("non-finite logit"), std::string::npos) << run.err;
  const std::string prefix = (dir_->path() / "overflow-logits").string();
  const test::Result logits = test::run_bitnet({"logits", "-m", path, "-p", "hello", "-o", prefix});
  EXPECT_TRUE(logits.exited);
  EXPECT_EQ(logits.code, 1) << logits.err;
  EXPECT_NE(logits.err.find("non-finite logit"), std::string::npos) << logits.err;
  const fs::path text = dir_->path() / "overflow.txt";
  {
    std::ofstream out(text);
    for (int i = 0; i < 40; ++i) out << "hello world ";
  }
  const test::Result ppl =
      test::run_bitnet({"perplexity", "-m", path, "-f", text.string(), "-c", "16"});
  EXPECT_TRUE(ppl.exited);
  EXPECT_EQ(ppl.code, 1) << ppl.err;
  EXPECT_NE(ppl.err.find("non-finite"), std::string::npos) << ppl.err;
  EXPECT_EQ(ppl.out.find("nan"), std::string::npos) << ppl.out;
}

// The base files themselves are valid: the corruption is what makes each case fail.
TEST_F(Corruption, BaseFilesAreValid) {
  for (const char* base : {"base-i2s", "base-tq2", "base-tq1", "base-f16"}) {
    SCOPED_TRACE(base);
    const std::string path = (dir_->path() / (std::string(base) + ".gguf")).string();
    const test::Result inspect = test::run_bitnet({"inspect", path});
    EXPECT_EQ(inspect.code, 0) << inspect.out;
    const test::Result run =
        test::run_bitnet({"run", "-m", path, "-p", "hi", "-n", "2", "-t", "1"});
    EXPECT_EQ(run.code, 0) << run.err;
  }
}
#endif

}  // namespace
}  // namespace bitnet
