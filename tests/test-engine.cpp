// The engine layer through its public API (include/bitnet/): generation against the reference's
// greedy text, streaming, early stop, asynchronous requests from several threads, cancellation,
// errors, presets; and the model cache (sharing, coalesced loads, LRU eviction under a budget).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bitnet/engine.h"
#include "engine/model-cache.h"

namespace {

namespace fs = std::filesystem;

fs::path reference_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  return env && *env ? env : BITNET_REFERENCE_DIR_DEFAULT;
}

const std::string kPrompt = "The quick brown fox jumps over the lazy dog.";

std::string fixture(const char* name) {
  return (reference_dir() / "models" / name).string();
}

#define REQUIRE_FIXTURE(path)                                                                 \
  do {                                                                                        \
    if (!fs::exists(path))                                                                    \
      GTEST_SKIP() << path << " not found; set BITNET_REFERENCE_DIR to the shared reference " \
                   << "directory";                                                            \
  } while (0)

// The reference's greedy continuation of kPrompt (golden/tiny-b158/*.p1.json, greedy_text).
std::string reference_greedy_text() {
  std::string s;
  for (int i = 0; i < 16; ++i) s += " List";
  return s;
}

// Prepared caches written by these tests go here, never to the user's cache directory.
const std::string& test_cache_dir() {
  static const std::string dir = [] {
    const fs::path d =
        fs::temp_directory_path() / ("bitnet-test-engine-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d.string();
  }();
  return dir;
}

bitnet::EngineConfig config(bitnet::OptimizationLevel level, bitnet::ModelCache* cache) {
  bitnet::EngineConfig c(level);
  c.cache_dir = test_cache_dir();
  c.model_cache = cache;
  if (c.threads == 0) c.threads = 2;
  return c;
}

bitnet::GenerateOptions greedy(int64_t n) {
  bitnet::GenerateOptions o;
  o.temperature = 0;
  o.max_tokens = n;
  return o;
}

class Engine : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = fixture("tiny-b158.i2_s.gguf");
    if (!fs::exists(model_)) GTEST_SKIP() << model_ << " not found; set BITNET_REFERENCE_DIR";
  }
  std::string model_;
  bitnet::ModelCache cache_;
};

TEST_F(Engine, GreedyReproducesTheReference) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  const bitnet::GenerateResult r = engine.generate(kPrompt, greedy(16));
  EXPECT_EQ(r.text, reference_greedy_text());
  EXPECT_EQ(r.tokens, std::vector<int32_t>(16, 1796));
  EXPECT_EQ(r.prompt_tokens, 20);
  EXPECT_EQ(r.stop_reason, bitnet::StopReason::MaxTokens);
  EXPECT_STREQ(bitnet::to_string(r.stop_reason), "max tokens");
  EXPECT_GT(r.timings.prompt_tokens_per_second, 0);
  EXPECT_GT(r.timings.generation_tokens_per_second, 0);
  EXPECT_GT(r.timings.time_to_first_token_ms, 0);
}

TEST_F(Engine, SimpleApiGeneratesTheReferenceText) {
  bitnet::EngineConfig c;
  c.cache_dir = test_cache_dir();
  c.threads = 2;
  EXPECT_EQ(bitnet::generate(model_, kPrompt, greedy(16), c), reference_greedy_text());
  // The second call finds the model in the global cache.
  const uint64_t hits = bitnet::ModelCache::global().stats().hits;
  EXPECT_EQ(bitnet::generate(model_, kPrompt, greedy(4), c), " List List List List");
  EXPECT_EQ(bitnet::ModelCache::global().stats().hits, hits + 1);
}

TEST_F(Engine, StreamedPiecesConcatenateToTheText) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  bitnet::GenerateOptions o;  // sampled, so the text is not one repeated word
  o.max_tokens = 24;
  o.seed = 7;
  std::string streamed;
  int pieces = 0;
  const bitnet::GenerateResult r = engine.generate(kPrompt, o, [&](std::string_view piece) {
    EXPECT_FALSE(piece.empty());
    streamed += piece;
    ++pieces;
    return true;
  });
  EXPECT_EQ(streamed, r.text);
  EXPECT_GT(pieces, 1);
  EXPECT_FALSE(r.text.empty());
}

TEST_F(Engine, CallbackReturningFalseStops) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  std::string streamed;
  int calls = 0;
  const bitnet::GenerateResult r = engine.generate(kPrompt, greedy(16), [&](std::string_view p) {
    streamed += p;
    return ++calls < 3;
  });
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r.stop_reason, bitnet::StopReason::Callback);
  EXPECT_EQ(r.tokens.size(), 3u);
  EXPECT_EQ(r.text, " List List List");
  EXPECT_EQ(streamed, r.text);
}

TEST_F(Engine, StopStringEndsTheTextBeforeIt) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  bitnet::GenerateOptions o = greedy(16);
  o.stop = {"List List List"};
  const bitnet::GenerateResult r = engine.generate(kPrompt, o);
  EXPECT_EQ(r.stop_reason, bitnet::StopReason::StopString);
  EXPECT_EQ(r.text, " ");
  EXPECT_EQ(r.tokens.size(), 3u);
}

TEST_F(Engine, AsyncRequestsFromFourThreadsMatchSequentialResults) {
  bitnet::EngineConfig c = config(bitnet::OptimizationLevel::Basic, &cache_);
  c.max_concurrent_requests = 4;
  c.threads = 1;
  bitnet::Engine engine(model_, c);
  const std::vector<std::string> prompts = {kPrompt,   "Hello", "Once upon a time", "1 2 3 4",
                                            "The cat", "A B C", "What is",          "Zebra"};
  auto options = [](size_t i) {
    bitnet::GenerateOptions o;
    o.max_tokens = 12;
    o.seed = 100 + i;
    return o;
  };
  std::vector<bitnet::GenerateResult> sequential;
  for (size_t i = 0; i < prompts.size(); ++i)
    sequential.push_back(engine.generate(prompts[i], options(i)));

  std::vector<std::future<bitnet::GenerateResult>> futures(prompts.size());
  std::vector<std::string> streamed(prompts.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < prompts.size(); i += 4) {
        futures[i] = engine.submit(prompts[i], options(i), [&streamed, i](std::string_view p) {
          streamed[i] += p;
          return true;
        });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const bitnet::GenerateResult r = futures[i].get();
    EXPECT_EQ(r.tokens, sequential[i].tokens) << prompts[i];
    EXPECT_EQ(r.text, sequential[i].text) << prompts[i];
    EXPECT_EQ(streamed[i], r.text) << prompts[i];
  }
  const bitnet::EngineStats s = engine.stats();
  EXPECT_EQ(s.requests_completed, 2 * prompts.size());
  EXPECT_EQ(s.requests_pending, 0u);
  EXPECT_EQ(s.requests_running, 0u);
  // Continuous batching: 8 concurrent requests of 4 + 12 tokens took fewer steps than tokens.
  EXPECT_GT(s.step_tokens, s.steps);
}

// Blocking generate() from several threads at once: one caller drives the batch while it is idle,
// the others wait for the scheduler thread or for the next caller to drive; every result equals
// the sequential one (the driver changes, the batch does not).
TEST_F(Engine, ConcurrentBlockingGenerateCallsMatchSequentialResults) {
  bitnet::EngineConfig c = config(bitnet::OptimizationLevel::Basic, &cache_);
  c.max_concurrent_requests = 3;
  c.threads = 1;
  bitnet::Engine engine(model_, c);
  const std::vector<std::string> prompts = {kPrompt,   "Hello",   "Once upon a time",
                                            "1 2 3 4", "The cat", "A B C"};
  auto options = [](size_t i) {
    bitnet::GenerateOptions o;
    o.max_tokens = 10 + static_cast<int64_t>(i);
    o.seed = 7 + i;
    return o;
  };
  std::vector<bitnet::GenerateResult> sequential;
  for (size_t i = 0; i < prompts.size(); ++i)
    sequential.push_back(engine.generate(prompts[i], options(i)));
  std::vector<bitnet::GenerateResult> concurrent(prompts.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < prompts.size(); i += 3) {
        concurrent[i] = engine.generate(prompts[i], options(i));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(concurrent[i].tokens, sequential[i].tokens) << prompts[i];
    EXPECT_EQ(concurrent[i].text, sequential[i].text) << prompts[i];
  }
  EXPECT_EQ(engine.stats().requests_pending, 0u);
  EXPECT_EQ(engine.stats().requests_running, 0u);
}

TEST_F(Engine, CancelStopsAtTheNextToken) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  bitnet::GenerateOptions o = greedy(16);
  bitnet::CancelToken cancel = o.cancel;
  const bitnet::GenerateResult r = engine.generate(kPrompt, o, [&](std::string_view) {
    cancel.cancel();
    return true;
  });
  EXPECT_EQ(r.stop_reason, bitnet::StopReason::Cancelled);
  EXPECT_STREQ(bitnet::to_string(r.stop_reason), "cancelled");
  EXPECT_EQ(r.tokens.size(), 1u);
  EXPECT_EQ(r.text, " List");
}

TEST_F(Engine, CancelFromAnotherThreadWhileQueuedOrRunning) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  // The first request holds the only worker until the test lets it go.
  std::atomic<bool> started{false}, release{false};
  bitnet::GenerateOptions first = greedy(16);
  auto running = engine.submit(kPrompt, first, [&](std::string_view) {
    started.store(true);
    while (!release.load()) std::this_thread::yield();
    return true;
  });
  bitnet::GenerateOptions second = greedy(16);
  auto queued = engine.submit(kPrompt, second);
  while (!started.load()) std::this_thread::yield();  // the first has its first token
  std::thread canceller([&] {
    second.cancel.cancel();
    first.cancel.cancel();
    release.store(true);
  });
  canceller.join();
  const bitnet::GenerateResult a = running.get(), b = queued.get();
  EXPECT_EQ(a.stop_reason, bitnet::StopReason::Cancelled);
  EXPECT_EQ(a.tokens.size(), 1u);
  EXPECT_EQ(b.stop_reason, bitnet::StopReason::Cancelled);
  EXPECT_TRUE(b.tokens.empty());
  EXPECT_TRUE(b.text.empty());
}

TEST_F(Engine, CallbackExceptionReachesTheFuture) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  auto f = engine.submit(kPrompt, greedy(4), [](std::string_view) -> bool {
    throw std::logic_error("from the callback");
  });
  EXPECT_THROW(f.get(), std::logic_error);
  EXPECT_EQ(engine.generate(kPrompt, greedy(2)).text, " List List");  // the worker lives on
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

TEST_F(Engine, ErrorsAreBitnetErrorsNamingTheCause) {
  const auto c = config(bitnet::OptimizationLevel::Basic, &cache_);
  EXPECT_NE(error_message([&] {
              bitnet::Engine e("/nonexistent/model.gguf", c);
            }).find("/nonexistent/model.gguf"),
            std::string::npos);
  const fs::path junk = fs::path(test_cache_dir()) / "not-a-model.gguf";
  std::ofstream(junk) << "this is not a GGUF file";
  EXPECT_NE(error_message([&] { bitnet::Engine e(junk.string(), c); }).find(junk.string()),
            std::string::npos);
  auto bad = c;
  bad.max_concurrent_requests = 0;
  EXPECT_NE(error_message([&] { bitnet::Engine e(model_, bad); }).find("max_concurrent_requests"),
            std::string::npos);

  bitnet::EngineConfig small = c;
  small.context_size = 8;
  bitnet::Engine engine(model_, small);
  EXPECT_EQ(engine.info().context_size, 8);
  EXPECT_NE(error_message([&] { engine.generate(kPrompt); }).find("in a context of 8 positions"),
            std::string::npos);
  bitnet::GenerateOptions o;
  o.temperature = -1;
  EXPECT_NE(error_message([&] { engine.generate("Hi", o); }).find("temperature"),
            std::string::npos);
  o = {};
  o.top_p = 0;
  EXPECT_NE(error_message([&] { engine.submit("Hi", o); }).find("top_p"), std::string::npos);
  o = {};
  o.max_tokens = -1;
  EXPECT_NE(error_message([&] { engine.submit("Hi", o); }).find("max_tokens"), std::string::npos);
  // A short prompt in the small context runs until the context is full.
  const bitnet::GenerateResult r = engine.generate("Hi", greedy(64));
  EXPECT_EQ(r.stop_reason, bitnet::StopReason::ContextFull);
  EXPECT_EQ(r.prompt_tokens + static_cast<int64_t>(r.tokens.size()), 8 + 1);
}

TEST_F(Engine, StatsCountWeightsKvPagesAndActivations) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  bitnet::EngineStats s = engine.stats();
  EXPECT_EQ(s.kv_pool_bytes, 0u);  // allocated on the first request
  EXPECT_GT(s.weights_bytes, fs::file_size(model_));
  EXPECT_EQ(s.current_bytes, s.weights_bytes);
  // tiny-b158: 4 layers, 512 positions, K and V rows of 128 F16 values, pages of 64 positions.
  EXPECT_EQ(engine.info().kv_cache_bytes, 2u * 4 * 512 * 128 * 2);
  EXPECT_EQ(engine.info().kv_page_positions, 64);
  const uint64_t page = 2u * 4 * 64 * 128 * 2;
  bitnet::EngineStats during;
  engine.generate("Hi", greedy(70), [&](std::string_view) {
    during = engine.stats();  // from the request's own callback: must not deadlock
    return true;
  });
  EXPECT_EQ(during.requests_running, 1u);
  EXPECT_EQ(during.kv_bytes_in_use, 2 * page);  // 70+ positions: two pages
  EXPECT_GT(during.kv_fragmentation, 0.0);
  EXPECT_LT(during.kv_fragmentation, 1.0);
  s = engine.stats();
  EXPECT_EQ(s.kv_pool_bytes, 2u * 4 * 512 * 128 * 2);
  EXPECT_EQ(s.kv_bytes_in_use, 0u);
  EXPECT_EQ(s.kv_peak_bytes, 2 * page);
  EXPECT_EQ(s.kv_fragmentation, 0.0);
  EXPECT_GT(s.activation_bytes, 0u);
  EXPECT_EQ(s.current_bytes, s.weights_bytes + s.activation_bytes);
  EXPECT_EQ(s.peak_bytes, s.weights_bytes + s.activation_bytes + 2 * page);
  EXPECT_EQ(s.requests_completed, 1u);
}

// The KV budget: a request that could never fit is refused at once; requests that do not fit now
// wait (FIFO) and complete with the same text as alone.
TEST_F(Engine, KvBudgetQueuesWhatDoesNotFitNowAndRefusesWhatNeverFits) {
  bitnet::EngineConfig c = config(bitnet::OptimizationLevel::Basic, &cache_);
  c.max_concurrent_requests = 3;
  const uint64_t page = 2u * 4 * 64 * 128 * 2;
  c.kv_cache_bytes = 3 * page;  // 192 positions
  bitnet::Engine engine(model_, c);
  EXPECT_EQ(engine.info().kv_cache_bytes, 3 * page);
  const std::string msg = error_message([&] { engine.submit("Hi", greedy(300)); });
  EXPECT_NE(msg.find("needs 5 KV pages"), std::string::npos) << msg;
  EXPECT_NE(msg.find("kv_cache_bytes"), std::string::npos) << msg;

  const bitnet::GenerateResult alone = engine.generate(kPrompt, greedy(100));  // 2 pages
  std::vector<std::future<bitnet::GenerateResult>> f;
  for (int i = 0; i < 3; ++i) f.push_back(engine.submit(kPrompt, greedy(100)));
  for (auto& x : f) EXPECT_EQ(x.get().text, alone.text);
  EXPECT_EQ(engine.stats().kv_peak_bytes, 2 * page);  // never two requests at once

  bitnet::EngineConfig tiny_budget = c;
  tiny_budget.kv_cache_bytes = page - 1;
  EXPECT_NE(error_message([&] { bitnet::Engine e(model_, tiny_budget); }).find("kv_cache_bytes"),
            std::string::npos);
  bitnet::EngineConfig small_batch = c;
  small_batch.max_batch_tokens = 2;
  EXPECT_NE(error_message([&] { bitnet::Engine e(model_, small_batch); }).find("max_batch_tokens"),
            std::string::npos);
}

TEST_F(Engine, CompletionCallbackReceivesTheResultOrTheError) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  std::promise<std::string> text;
  engine.submit(kPrompt, greedy(16), {},
                [&](const bitnet::GenerateResult* r, std::exception_ptr e) {
                  if (r) text.set_value(r->text);
                  if (e) text.set_exception(e);
                });
  EXPECT_EQ(text.get_future().get(), reference_greedy_text());

  std::promise<std::string> failed;
  engine.submit(
      kPrompt, greedy(16), [](std::string_view) -> bool { throw std::runtime_error("mine"); },
      [&](const bitnet::GenerateResult* r, std::exception_ptr e) {
        if (r) failed.set_value("no error");
        try {
          if (e) std::rethrow_exception(e);
        } catch (const std::runtime_error& x) {
          failed.set_value(x.what());
        }
      });
  EXPECT_EQ(failed.get_future().get(), "mine");
  EXPECT_NE(error_message([&] {
              engine.submit("Hi", greedy(2), {}, bitnet::CompletionCallback{});
            }).find("completion callback"),
            std::string::npos);
}

TEST_F(Engine, ProfileTimesEveryOperation) {
  bitnet::Engine engine(model_, config(bitnet::OptimizationLevel::Basic, &cache_));
  engine.generate(kPrompt, greedy(8));
  const std::string j = engine.profile_json();
  for (const char* op : {"\"matmul_qkv\"", "\"matmul_down\"", "\"attention\"", "\"lm_head\"",
                         "\"sampling\"", "\"norm\""}) {
    EXPECT_NE(j.find(op), std::string::npos) << op << " in " << j;
  }
  EXPECT_NE(j.find("\"steps\": 8"), std::string::npos) << j;
}

// Each level and preset changes what engine.h says it changes, and all generate the same text.
TEST_F(Engine, LevelsAndPresetsChangeWhatTheySay) {
  using bitnet::OptimizationLevel;
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  bitnet::EngineConfig none(OptimizationLevel::None), basic,
      aggressive(OptimizationLevel::Aggressive);
  EXPECT_EQ(basic.level, OptimizationLevel::Basic);
  EXPECT_EQ(none.threads, 1);
  EXPECT_EQ(basic.threads, 0);
  EXPECT_EQ(aggressive.threads, 0);

  auto with_dir = [&](bitnet::EngineConfig c) {
    c.cache_dir = test_cache_dir();
    c.model_cache = &cache_;
    return c;
  };
  bitnet::Engine e_none(model_, with_dir(none));
  bitnet::Engine e_basic(model_, with_dir(basic));
  bitnet::Engine e_aggr(model_, with_dir(aggressive));
  bitnet::Engine e_speed(model_, with_dir(bitnet::EngineConfig::optimized_for_speed()));
  bitnet::Engine e_mem(model_, with_dir(bitnet::EngineConfig::optimized_for_memory()));
  bitnet::EngineConfig t2 = with_dir(basic);
  t2.layout = bitnet::WeightLayout::T2;
  bitnet::Engine e_t2(model_, t2);

  EXPECT_EQ(e_none.info().kv_type, bitnet::KvCacheType::F32);
  EXPECT_EQ(e_none.info().kv_cache_bytes, 2 * e_basic.info().kv_cache_bytes);
  EXPECT_EQ(e_none.info().weights_source, "packed");
  EXPECT_EQ(e_none.info().threads, 1);

  EXPECT_EQ(e_basic.info().kv_type, bitnet::KvCacheType::F16);
  EXPECT_EQ(e_basic.info().threads, hw);
  EXPECT_EQ(e_basic.info().weights_source, "packed");  // Auto: tiny-b158 is far below 64 MiB

  EXPECT_EQ(e_aggr.info().layout, "t1");
  EXPECT_EQ(e_aggr.info().weights_source.rfind("prepared cache", 0), 0u)
      << e_aggr.info().weights_source;
  EXPECT_EQ(e_aggr.info().threads, hw);

  EXPECT_EQ(e_speed.info().layout, "t1");
  EXPECT_EQ(e_speed.info().max_concurrent_requests, 8);
  EXPECT_EQ(e_speed.info().threads, hw);

  const auto mem = bitnet::EngineConfig::optimized_for_memory();
  EXPECT_EQ(mem.context_size, 2048);
  EXPECT_EQ(mem.max_batch_tokens, 32);
  EXPECT_EQ(e_mem.info().max_concurrent_requests, 1);
  EXPECT_EQ(e_mem.info().context_size, 512);  // reduced to the model's context length
  EXPECT_EQ(e_mem.info().layout, "t1");
  EXPECT_EQ(e_mem.info().kv_type, bitnet::KvCacheType::F16);
  EXPECT_EQ(e_t2.info().layout, "t2");
  EXPECT_LT(e_mem.stats().weights_bytes, e_t2.stats().weights_bytes);

  for (bitnet::Engine* e : {&e_none, &e_basic, &e_aggr, &e_speed, &e_mem, &e_t2})
    EXPECT_EQ(e->generate(kPrompt, greedy(16)).text, reference_greedy_text()) << e->info().layout;
}

// ---- model cache ----

bitnet::model::LoadOptions no_prepared_cache() {
  bitnet::model::LoadOptions o;
  o.cache = bitnet::model::CacheMode::Off;
  return o;
}

TEST(ModelCache, TwoEnginesOnOnePathShareOneLoad) {
  const std::string path = fixture("tiny-b158.i2_s.gguf");
  REQUIRE_FIXTURE(path);
  bitnet::ModelCache cache;
  bitnet::Engine a(path, config(bitnet::OptimizationLevel::Basic, &cache));
  bitnet::Engine b(path, config(bitnet::OptimizationLevel::Basic, &cache));
  bitnet::ModelCacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, a.stats().weights_bytes);
  // Another layout is another entry (Auto is keyed apart from T1 and T2).
  bitnet::EngineConfig t2 = config(bitnet::OptimizationLevel::Basic, &cache);
  t2.layout = bitnet::WeightLayout::T2;
  bitnet::EngineConfig t1 = t2;
  t1.layout = bitnet::WeightLayout::T1;
  bitnet::Engine c(path, t2), d(path, t1);
  s = cache.stats();
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.entries, 3u);
  // The int8 head is another entry too, holding its matrix besides the file's.
  bitnet::EngineConfig i8 = config(bitnet::OptimizationLevel::Basic, &cache);
  i8.int8_lm_head = true;
  bitnet::Engine e(path, i8);
  s = cache.stats();
  EXPECT_EQ(s.misses, 4u);
  EXPECT_EQ(a.info().lm_head, "F16");
  EXPECT_EQ(e.info().lm_head, "int8 (from F16)");
  // one byte per weight plus a scale and a code sum per row (n_embd >= 64 here)
  EXPECT_GE(e.stats().weights_bytes,
            a.stats().weights_bytes + static_cast<uint64_t>(e.info().n_vocab) * (64 + 8));
  const bitnet::GenerateResult r = e.generate("hello", greedy(8));
  EXPECT_EQ(r.tokens.size(), 8u);
}

TEST(ModelCache, SameKeySameWeights) {
  const std::string path = fixture("tiny-b158.i2_s.gguf");
  REQUIRE_FIXTURE(path);
  bitnet::engine::WeightsLru cache(uint64_t{1} << 30);
  const auto a = cache.acquire(path, no_prepared_cache());
  // The same file by another spelling of its path is the same entry.
  const auto b = cache.acquire(
      (fs::path(path).parent_path() / "." / "tiny-b158.i2_s.gguf").string(), no_prepared_cache());
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(cache.stats().misses, 1u);
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_THROW(cache.acquire("/nonexistent.gguf", no_prepared_cache()), std::invalid_argument);
}

TEST(ModelCache, ConcurrentLoadsOfOneKeyAreCoalesced) {
  const std::string path = fixture("tiny-b158.tq2_0.gguf");
  REQUIRE_FIXTURE(path);
  bitnet::engine::WeightsLru cache(uint64_t{1} << 30);
  std::vector<bitnet::engine::WeightsPtr> got(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] { got[i] = cache.acquire(path, no_prepared_cache()); });
  for (std::thread& t : threads) t.join();
  for (const auto& w : got) EXPECT_EQ(w.get(), got[0].get());
  const bitnet::ModelCacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits + s.coalesced, 3u);
  EXPECT_EQ(s.entries, 1u);
}

TEST(ModelCache, BudgetEvictsUnheldModelsLeastRecentlyUsedFirst) {
  const std::string a_path = fixture("tiny-b158.i2_s.gguf");
  const std::string b_path = fixture("tiny-b158.tq2_0.gguf");
  const std::string c_path = fixture("tiny-b158.tq1_0.gguf");
  REQUIRE_FIXTURE(a_path);
  REQUIRE_FIXTURE(b_path);
  REQUIRE_FIXTURE(c_path);
  bitnet::engine::WeightsLru cache(uint64_t{1} << 30);
  const auto opt = no_prepared_cache();
  uint64_t a_bytes = 0, b_bytes = 0;
  {
    auto a = cache.acquire(a_path, opt);
    auto b = cache.acquire(b_path, opt);
    a_bytes = bitnet::engine::weights_bytes(*a);
    b_bytes = bitnet::engine::weights_bytes(*b);
    // Both held: a budget below their total evicts nothing.
    cache.set_budget(a_bytes);
    EXPECT_EQ(cache.stats().evictions, 0u);
    EXPECT_EQ(cache.stats().bytes, a_bytes + b_bytes);
    cache.acquire(a_path, opt);  // a is now the most recently used
  }
  // Released: the least recently used (b) goes first; a fits the budget and stays.
  cache.trim();
  bitnet::ModelCacheStats s = cache.stats();
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, a_bytes);
  const uint64_t misses = s.misses;
  cache.acquire(a_path, opt);
  EXPECT_EQ(cache.stats().misses, misses);  // still cached
  // Loading c pushes the total over the budget: a, unheld and least recently used, is evicted.
  const auto c = cache.acquire(c_path, opt);
  s = cache.stats();
  EXPECT_EQ(s.evictions, 2u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, bitnet::engine::weights_bytes(*c));
  cache.clear();
  EXPECT_EQ(cache.stats().entries, 1u);  // c is held
}

TEST(ModelCache, EngineDestructionTrimsTheCache) {
  const std::string path = fixture("tiny-b158.i2_s.gguf");
  REQUIRE_FIXTURE(path);
  bitnet::ModelCache cache(1);  // smaller than any model
  {
    bitnet::Engine e(path, config(bitnet::OptimizationLevel::Basic, &cache));
    EXPECT_EQ(cache.stats().entries, 1u);  // held by the engine, so kept over the budget
  }
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.stats().evictions, 1u);
}

}  // namespace
