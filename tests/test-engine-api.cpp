// The Engine API the server is built on: prompts as token ids, tokenize/detokenize, chat
// templates, log-probabilities against the reference's logits, the per-token callback, presence
// and frequency penalties, and the queue and KV-page statistics.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bitnet/engine.h"

namespace {

namespace fs = std::filesystem;

fs::path reference_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  return env && *env ? env : BITNET_REFERENCE_DIR_DEFAULT;
}

const std::string kPrompt = "The quick brown fox jumps over the lazy dog.";
// golden/tiny-b158/*.p1.json, prompt_tokens (BOS first).
const std::vector<int32_t> kPromptTokens = {4096, 791, 4062, 293, 654,  77, 282, 78,  87,  503,
                                            1538, 82,  927,  279, 1208, 89, 88,  294, 540, 13};
constexpr int32_t kList = 1796;  // " List", the reference's greedy token after kPrompt
constexpr int64_t kVocab = 4112;

const std::string& test_cache_dir() {
  static const std::string dir = [] {
    const fs::path d =
        fs::temp_directory_path() / ("bitnet-test-engine-api-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d.string();
  }();
  return dir;
}

bitnet::GenerateOptions greedy(int64_t n) {
  bitnet::GenerateOptions o;
  o.temperature = 0;
  o.max_tokens = n;
  return o;
}

template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const bitnet::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a bitnet::Error: ") + e.what();
  }
  return "no exception";
}

class EngineApi : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = (reference_dir() / "models" / "tiny-b158.i2_s.gguf").string();
    if (!fs::exists(model_)) GTEST_SKIP() << model_ << " not found; set BITNET_REFERENCE_DIR";
  }
  bitnet::EngineConfig config() {
    bitnet::EngineConfig c;
    c.cache_dir = test_cache_dir();
    c.model_cache = &cache_;
    c.threads = 2;
    return c;
  }
  std::string model_;
  bitnet::ModelCache cache_;
};

TEST_F(EngineApi, TokenizeMatchesTheReferenceAndDetokenizeInvertsIt) {
  bitnet::Engine engine(model_, config());
  EXPECT_EQ(engine.tokenize(kPrompt), kPromptTokens);
  const std::vector<int32_t> no_bos(kPromptTokens.begin() + 1, kPromptTokens.end());
  EXPECT_EQ(engine.tokenize(kPrompt, false), no_bos);
  EXPECT_EQ(engine.detokenize(no_bos), kPrompt);
  // BOS is a control token: "" unless rendered.
  EXPECT_EQ(engine.detokenize(kPromptTokens), kPrompt);
  EXPECT_EQ(engine.detokenize(kPromptTokens, true), "<|begin_of_text|>" + kPrompt);
  // Special-token text is one token only with parse_special.
  EXPECT_EQ(engine.tokenize("<|eot_id|>", false, true), std::vector<int32_t>{4105});
  EXPECT_GT(engine.tokenize("<|eot_id|>", false, false).size(), 1u);
  const std::vector<int32_t> bad = {13, 4112};
  const std::string msg = error_message([&] { engine.detokenize(bad); });
  EXPECT_NE(msg.find("token 1 is 4112"), std::string::npos) << msg;
}

TEST_F(EngineApi, TokenPromptGeneratesLikeTheTextPrompt) {
  bitnet::Engine engine(model_, config());
  const bitnet::GenerateResult text = engine.generate(kPrompt, greedy(16));
  const bitnet::GenerateResult tokens =
      engine.generate(bitnet::TokenPrompt{kPromptTokens}, greedy(16));
  EXPECT_EQ(tokens.tokens, std::vector<int32_t>(16, kList));
  EXPECT_EQ(tokens.text, text.text);
  EXPECT_EQ(tokens.prompt_tokens, 20);
  // Without BOS it is another prompt (no BOS is added to token prompts).
  const std::vector<int32_t> no_bos(kPromptTokens.begin() + 1, kPromptTokens.end());
  EXPECT_EQ(engine.submit(bitnet::TokenPrompt{no_bos}, greedy(4)).get().prompt_tokens, 19);

  std::promise<bitnet::GenerateResult> done;
  engine.submit(bitnet::TokenPrompt{kPromptTokens}, greedy(3), {},
                [&](const bitnet::GenerateResult* r, std::exception_ptr) { done.set_value(*r); });
  EXPECT_EQ(done.get_future().get().text, " List List List");

  std::string msg = error_message([&] { engine.submit(bitnet::TokenPrompt{{4096, -1}}); });
  EXPECT_NE(msg.find("token 1 is -1"), std::string::npos) << msg;
  msg = error_message([&] { engine.submit(bitnet::TokenPrompt{{5000}}); });
  EXPECT_NE(msg.find("outside the vocabulary"), std::string::npos) << msg;
  msg = error_message([&] { engine.generate(bitnet::TokenPrompt{}); });
  EXPECT_NE(msg.find("no tokens"), std::string::npos) << msg;
  bitnet::GenerateOptions chat = greedy(2);
  chat.chat = true;
  msg = error_message([&] { engine.submit(bitnet::TokenPrompt{kPromptTokens}, chat); });
  EXPECT_NE(msg.find("chat"), std::string::npos) << msg;
  msg = error_message(
      [&] { engine.submit(bitnet::TokenPrompt{std::vector<int32_t>(600, 13)}, greedy(2)); });
  EXPECT_NE(msg.find("in a context of 512 positions"), std::string::npos) << msg;
}

// tiny-b158's vocabulary has <|eot_id|> and no chat template key: BitNet 2B4T's format
// (model/chat-template.h), whose text is spelled out here.
TEST_F(EngineApi, ChatTemplateRendersTheConversation) {
  bitnet::Engine engine(model_, config());
  EXPECT_EQ(engine.info().chat_template, "bitnet-2b4t");
  const std::vector<bitnet::ChatMessage> conversation = {
      {"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello."}, {"user", "Why?"}};
  EXPECT_EQ(engine.apply_chat_template(conversation),
            "System: Be brief.<|eot_id|>User: Hi<|eot_id|>Assistant: Hello.<|eot_id|>User: "
            "Why?<|eot_id|>Assistant: ");
  EXPECT_EQ(engine.apply_chat_template({{"user", "Hi"}}, false), "User: Hi<|eot_id|>");
  const std::string msg = error_message([&] {
    engine.apply_chat_template({{"user", "a"}, {"robot", "b"}});
  });
  EXPECT_NE(msg.find("'robot'"), std::string::npos) << msg;

  // The rendered conversation, tokenized, is what GenerateOptions::chat generates from.
  bitnet::GenerateOptions chat = greedy(8);
  chat.chat = true;
  const std::vector<int32_t> ids = engine.tokenize(engine.apply_chat_template({{"user", kPrompt}}));
  EXPECT_EQ(ids.front(), 4096);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 4105), 1);  // <|eot_id|> as one token
  EXPECT_EQ(engine.generate(bitnet::TokenPrompt{ids}, greedy(8)).tokens,
            engine.generate(kPrompt, chat).tokens);
}

std::vector<float> read_f32(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<float> v(fs::file_size(p) / sizeof(float));
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

// Logprobs are the log-softmax of the logits. Checked against llama.cpp's F32 logits of the
// reference (golden/tiny-b158/llamacpp-f32.p1.gen.f32, row k: the logits that chose greedy token
// k), on the F32 model in validation mode (no activation quantization, F32 KV cache), where our
// logits agree with those to 1e-3 (test-forward): a log-probability then agrees to 2e-3.
TEST_F(EngineApi, LogprobsAreTheLogSoftmaxOfTheReferenceLogits) {
  const fs::path gen = reference_dir() / "golden" / "tiny-b158" / "llamacpp-f32.p1.gen.f32";
  const std::string f32_model = (reference_dir() / "models" / "tiny-b158.f32.gguf").string();
  if (!fs::exists(gen) || !fs::exists(f32_model)) GTEST_SKIP() << gen << " not found";
  const std::vector<float> ref = read_f32(gen);
  ASSERT_EQ(ref.size(), static_cast<size_t>(16 * kVocab));

  bitnet::EngineConfig c(bitnet::OptimizationLevel::None);
  c.cache_dir = test_cache_dir();
  c.model_cache = &cache_;
  c.quantize_activations = false;
  bitnet::Engine engine(f32_model, c);
  bitnet::GenerateOptions o = greedy(16);
  o.logprobs = true;
  o.top_logprobs = 5;
  const bitnet::GenerateResult r = engine.generate(kPrompt, o);
  ASSERT_EQ(r.tokens.size(), 16u);
  ASSERT_EQ(r.logprobs.size(), 16u);
  ASSERT_EQ(r.top_logprobs.size(), 16u * 5);
  for (size_t k = 0; k < 16; ++k) {
    const float* row = ref.data() + k * kVocab;
    double max = row[0];
    for (int64_t i = 1; i < kVocab; ++i) max = std::max(max, double{row[i]});
    double sum = 0;
    for (int64_t i = 0; i < kVocab; ++i) sum += std::exp(double{row[i]} - max);
    auto ref_logprob = [&](int32_t t) { return double{row[t]} - max - std::log(sum); };
    EXPECT_EQ(r.logprobs[k].token, r.tokens[k]);
    EXPECT_NEAR(r.logprobs[k].logprob, ref_logprob(r.tokens[k]), 2e-3) << "token " << k;
    // Greedy: the chosen token is the most likely one; the alternatives descend.
    const bitnet::TokenLogprob* top = &r.top_logprobs[k * 5];
    EXPECT_EQ(top[0].token, r.tokens[k]);
    EXPECT_EQ(top[0].logprob, r.logprobs[k].logprob);
    std::set<int32_t> ids;
    for (int j = 0; j < 5; ++j) {
      ids.insert(top[j].token);
      EXPECT_NEAR(top[j].logprob, ref_logprob(top[j].token), 2e-3) << "token " << k << " alt " << j;
      if (j > 0) {
        EXPECT_LE(top[j].logprob, top[j - 1].logprob);
      }
    }
    EXPECT_EQ(ids.size(), 5u);
    // No token outside ours is more likely than our fifth (beyond the tolerance).
    for (int32_t t = 0; t < kVocab; ++t) {
      if (!ids.count(t)) {
        EXPECT_LT(ref_logprob(t), top[4].logprob + 2e-3) << t;
      }
    }
  }
  // Off: nothing is computed or stored.
  const bitnet::GenerateResult off = engine.generate(kPrompt, greedy(4));
  EXPECT_TRUE(off.logprobs.empty());
  EXPECT_TRUE(off.top_logprobs.empty());
}

TEST_F(EngineApi, LogprobOptionsAreValidated) {
  bitnet::Engine engine(model_, config());
  bitnet::GenerateOptions o = greedy(2);
  o.top_logprobs = 3;
  EXPECT_NE(error_message([&] { engine.submit("Hi", o); }).find("needs logprobs"),
            std::string::npos);
  o.logprobs = true;
  o.top_logprobs = 21;
  EXPECT_NE(error_message([&] { engine.submit("Hi", o); }).find("top_logprobs"), std::string::npos);
  o.top_logprobs = -1;
  EXPECT_NE(error_message([&] { engine.submit("Hi", o); }).find("top_logprobs"), std::string::npos);
  o.top_logprobs = 0;  // logprobs of the chosen tokens only
  const bitnet::GenerateResult r = engine.generate("Hi", o);
  EXPECT_EQ(r.logprobs.size(), r.tokens.size());
  EXPECT_TRUE(r.top_logprobs.empty());
  for (const auto& lp : r.logprobs) EXPECT_LE(lp.logprob, 0.0f);
}

// on_token sees every generated token, in order, before its text reaches the piece callback;
// sampled hot and untruncated, so that the stream is not one repeated token.
TEST_F(EngineApi, TokenCallbackSeesEveryTokenBeforeItsText) {
  bitnet::Engine engine(model_, config());
  bitnet::GenerateOptions o;
  o.max_tokens = 24;
  o.seed = 11;
  o.temperature = 2.0f;
  o.top_k = 0;
  o.min_p = 0;
  o.top_p = 1;
  o.logprobs = true;
  o.top_logprobs = 2;
  std::vector<bitnet::TokenEvent> events;
  std::vector<bitnet::TokenLogprob> tops;
  std::vector<size_t> tokens_before_piece;
  o.on_token = [&](const bitnet::TokenEvent& e) {
    events.push_back(e);
    tops.insert(tops.end(), e.top.begin(), e.top.end());
  };
  const bitnet::GenerateResult r = engine.generate(kPrompt, o, [&](std::string_view) {
    tokens_before_piece.push_back(events.size());
    return true;
  });
  ASSERT_EQ(events.size(), r.tokens.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].index, static_cast<int64_t>(i));
    EXPECT_EQ(events[i].token, r.tokens[i]);
    EXPECT_EQ(events[i].logprob, r.logprobs[i].logprob);
  }
  ASSERT_EQ(tops.size(), r.top_logprobs.size());
  for (size_t i = 0; i < tops.size(); ++i) EXPECT_EQ(tops[i].token, r.top_logprobs[i].token);
  ASSERT_FALSE(tokens_before_piece.empty());
  for (size_t i = 1; i < tokens_before_piece.size(); ++i)
    EXPECT_LE(tokens_before_piece[i - 1], tokens_before_piece[i]);
  EXPECT_GE(tokens_before_piece.front(), 1u);
  std::set<int32_t> distinct(r.tokens.begin(), r.tokens.end());
  EXPECT_GT(distinct.size(), 1u);

  bitnet::GenerateOptions throwing = greedy(4);
  throwing.on_token = [](const bitnet::TokenEvent&) { throw std::logic_error("on_token"); };
  EXPECT_THROW(engine.submit(kPrompt, throwing).get(), std::logic_error);
  EXPECT_EQ(engine.generate(kPrompt, greedy(2)).text, " List List");
}

// The reference's greedy text repeats " List"; the penalties break the repetition.
TEST_F(EngineApi, PresenceAndFrequencyPenaltiesReachTheSampler) {
  bitnet::Engine engine(model_, config());
  bitnet::GenerateOptions o = greedy(16);
  o.presence_penalty = 100;  // a token seen in the window cannot win again
  o.repeat_last_n = -1;
  const bitnet::GenerateResult r = engine.generate(kPrompt, o);
  ASSERT_EQ(r.tokens.size(), 16u);
  EXPECT_EQ(r.tokens[0], kList);
  std::set<int32_t> seen(kPromptTokens.begin(), kPromptTokens.end());
  for (int32_t t : r.tokens) EXPECT_TRUE(seen.insert(t).second) << t << " repeated";

  bitnet::GenerateOptions f = greedy(16);
  f.frequency_penalty = 100;
  const bitnet::GenerateResult rf = engine.generate(kPrompt, f);
  EXPECT_NE(rf.tokens[1], kList);
  bitnet::GenerateOptions bad = greedy(2);
  bad.frequency_penalty = NAN;
  EXPECT_NE(error_message([&] { engine.submit("Hi", bad); }).find("frequency_penalty"),
            std::string::npos);
}

TEST_F(EngineApi, StatsCountQueuedRequestsAndKvPages) {
  bitnet::EngineConfig c = config();
  c.max_concurrent_requests = 1;
  bitnet::Engine engine(model_, c);
  EXPECT_EQ(engine.stats().kv_pages_total, 0u);  // allocated on the first request
  std::atomic<bool> started{false}, release{false};
  auto first = engine.submit(kPrompt, greedy(70), [&](std::string_view) {
    started.store(true);
    while (!release.load()) std::this_thread::yield();
    return true;
  });
  while (!started.load()) std::this_thread::yield();
  auto second = engine.submit(kPrompt, greedy(2));
  auto third = engine.submit(kPrompt, greedy(2));
  const bitnet::EngineStats during = engine.stats();
  release.store(true);
  EXPECT_EQ(during.requests_running, 1u);
  EXPECT_EQ(during.requests_queued, 2u);
  EXPECT_EQ(during.requests_pending, 3u);
  EXPECT_EQ(during.kv_pages_total, 8u);   // 512 positions in pages of 64
  EXPECT_EQ(during.kv_pages_in_use, 1u);  // pages holding positions: 21 so far
  first.get();
  second.get();
  third.get();
  const bitnet::EngineStats after = engine.stats();
  EXPECT_EQ(after.requests_queued, 0u);
  EXPECT_EQ(after.kv_pages_in_use, 0u);
  EXPECT_EQ(after.kv_pages_peak, 2u);  // 20 + 70 positions at the end
  EXPECT_EQ(after.kv_pages_peak * 64 * 4 * 128 * 2 * 2, after.kv_peak_bytes);
}

}  // namespace
