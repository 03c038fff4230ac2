// The Engine's prefix cache and logits outputs: a request whose prompt extends a finished one's
// (the next turn of a conversation) evaluates only the new tokens, with results bit-identical to
// an Engine without the cache; parked slots never delay other requests; prompt_logits and
// token_logits give the rows the reference's golden files hold.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bitnet/engine.h"

namespace {

namespace fs = std::filesystem;

fs::path reference_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  return env && *env ? env : BITNET_REFERENCE_DIR_DEFAULT;
}

// golden/tiny-b158/*.p1.json, prompt_tokens (BOS first).
const std::vector<int32_t> kPromptTokens = {4096, 791, 4062, 293, 654,  77, 282, 78,  87,  503,
                                            1538, 82,  927,  279, 1208, 89, 88,  294, 540, 13};
constexpr size_t kVocab = 4112;

bitnet::GenerateOptions greedy(int64_t n) {
  bitnet::GenerateOptions o;
  o.temperature = 0;
  o.max_tokens = n;
  o.token_logits = true;
  return o;
}

class EngineCache : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = (reference_dir() / "models" / "tiny-b158.i2_s.gguf").string();
    if (!fs::exists(model_)) GTEST_SKIP() << model_ << " not found; set BITNET_REFERENCE_DIR";
  }
  bitnet::EngineConfig config(bool prefix_cache) {
    bitnet::EngineConfig c;
    c.model_cache = &cache_;
    c.threads = 2;
    c.kv_type = bitnet::KvCacheType::F32;
    c.prefix_cache = prefix_cache;
    c.prepared_cache = bitnet::PreparedCache::Off;
    return c;
  }
  std::string model_;
  bitnet::ModelCache cache_;
};

TEST_F(EngineCache, NextTurnReusesThePrefixAndChangesNoResult) {
  bitnet::Engine cached(model_, config(true));
  bitnet::Engine fresh(model_, config(false));
  const bitnet::GenerateResult first =
      cached.generate(bitnet::TokenPrompt{kPromptTokens}, greedy(6));
  EXPECT_EQ(first.cached_prompt_tokens, 0);
  ASSERT_EQ(first.tokens.size(), 6u);
  // The next turn: the first prompt, its reply, and more.
  std::vector<int32_t> next = kPromptTokens;
  next.insert(next.end(), first.tokens.begin(), first.tokens.end());
  next.insert(next.end(), {13, 791, 4062});
  const bitnet::GenerateResult a = cached.generate(bitnet::TokenPrompt{next}, greedy(8));
  const bitnet::GenerateResult b = fresh.generate(bitnet::TokenPrompt{next}, greedy(8));
  // Every token the first request fed is reused: its prompt and 5 of its 6 replies (the last was
  // sampled, never evaluated).
  EXPECT_EQ(a.cached_prompt_tokens, static_cast<int64_t>(kPromptTokens.size() + 5));
  EXPECT_EQ(b.cached_prompt_tokens, 0);
  EXPECT_EQ(a.tokens, b.tokens);
  ASSERT_EQ(a.token_logits.size(), b.token_logits.size());
  EXPECT_EQ(std::memcmp(a.token_logits.data(), b.token_logits.data(),
                        a.token_logits.size() * sizeof(float)),
            0)
      << "logits differ with the prefix cache";
  const bitnet::EngineStats s = cached.stats();
  EXPECT_EQ(s.prefix_cache_hits, 1u);
  EXPECT_EQ(s.prefix_tokens_reused, kPromptTokens.size() + 5);
  EXPECT_EQ(s.kv_pages_in_use, 0u);  // nothing runs: the parked slot's pages are "cached"
  EXPECT_GT(s.kv_pages_cached, 0u);
  EXPECT_EQ(fresh.stats().kv_pages_cached, 0u);
}

TEST_F(EngineCache, TheSamePromptAgainEvaluatesOnlyItsLastToken) {
  bitnet::Engine e(model_, config(true));
  const auto r1 = e.generate(bitnet::TokenPrompt{kPromptTokens}, greedy(1));
  const auto r2 = e.generate(bitnet::TokenPrompt{kPromptTokens}, greedy(1));
  EXPECT_EQ(r2.cached_prompt_tokens, static_cast<int64_t>(kPromptTokens.size() - 1));
  EXPECT_EQ(r1.tokens, r2.tokens);
  EXPECT_EQ(r1.token_logits, r2.token_logits);
}

// One slot and a KV budget of one request: the parked slot of a finished request is given up at
// once for an unrelated one, which then runs as if nothing had been cached.
TEST_F(EngineCache, ParkedSlotsNeverBlockAdmission) {
  bitnet::EngineConfig c = config(true);
  c.max_concurrent_requests = 1;
  c.context_size = 128;
  c.kv_cache_bytes = 0;  // one request's whole context: the parked slot holds part of it
  bitnet::Engine e(model_, c);
  bitnet::Engine fresh(model_, config(false));
  e.generate(bitnet::TokenPrompt{kPromptTokens}, greedy(4));
  const std::vector<int32_t> other = {4096, 1208, 89, 88, 294, 540, 13, 791};
  const auto a = e.generate(bitnet::TokenPrompt{other}, greedy(100));
  const auto b = fresh.generate(bitnet::TokenPrompt{other}, greedy(100));
  EXPECT_EQ(a.cached_prompt_tokens, 1);  // only BOS is shared
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.token_logits, b.token_logits);
}

// prompt_logits: every prompt row of the reference prompt, evaluated in full even when the prefix
// cache holds it, equal to the reference's rows within the end-to-end bounds of the reference
// README section 8 (F32 KV, activation quantization on), and the first token_logits row is the
// last prompt row.
TEST_F(EngineCache, PromptLogitsAreEveryPromptRow) {
  const fs::path golden = reference_dir() / "golden" / "tiny-b158" / "exact.p1.prompt.f32";
  if (!fs::exists(golden)) GTEST_SKIP() << golden << " not found";
  std::ifstream in(golden, std::ios::binary);
  std::vector<float> want(kPromptTokens.size() * kVocab);
  in.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * 4));
  ASSERT_TRUE(in);
  bitnet::Engine e(model_, config(true));
  e.generate(bitnet::TokenPrompt{kPromptTokens}, greedy(2));  // now cached
  bitnet::GenerateOptions o = greedy(3);
  o.prompt_logits = true;
  const auto r = e.generate(bitnet::TokenPrompt{kPromptTokens}, o);
  EXPECT_EQ(r.cached_prompt_tokens, 0);
  ASSERT_EQ(r.prompt_logits.size(), want.size());
  double sq = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(static_cast<double>(r.prompt_logits[i]) - want[i]);
    sq += d * d;
    worst = std::max(worst, d);
  }
  EXPECT_LE(std::sqrt(sq / static_cast<double>(want.size())), 0.20);
  EXPECT_LE(worst, 1.0);
  ASSERT_EQ(r.token_logits.size(), 3 * kVocab);
  EXPECT_EQ(std::memcmp(r.token_logits.data(),
                        r.prompt_logits.data() + (kPromptTokens.size() - 1) * kVocab,
                        kVocab * sizeof(float)),
            0);
  // Scoring only: a prompt that fills the whole context, no token generated.
  bitnet::EngineConfig small = config(true);
  small.context_size = static_cast<int64_t>(kPromptTokens.size());
  bitnet::Engine s(model_, small);
  bitnet::GenerateOptions score;
  score.max_tokens = 0;
  score.prompt_logits = true;
  const auto full = s.generate(bitnet::TokenPrompt{kPromptTokens}, score);
  EXPECT_TRUE(full.tokens.empty());
  EXPECT_EQ(full.prompt_logits, r.prompt_logits);
}

}  // namespace
