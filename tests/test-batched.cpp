// Session (model/session.h) on the reference tiny-b158 model: every sequence's
// logits in a batched run are bit-identical to the same tokens run alone in a session of its own,
// under continuous batching (staggered joins, a removal and slot reuse), mixed prefill and decode
// items, and both KV types; bad input is refused before anything changes; step() never allocates
// after its first call.
//
// Why bit-identical rather than a tolerance: each row's quantization, ternary matmul (checked
// bit-exact per row against the dense oracle for M = 1..17 on every ISA in test-ternary-matmul),
// norms, rope, attention and LM-head dots use the same code in the same order in both sessions, and
// none of them reads another row.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "model/session.h"

// Heap allocations through operator new, counted while g_counting is set.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};

void* counted_alloc(std::size_t size, std::size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (size == 0) size = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(size)
                : std::aligned_alloc(align, (size + align - 1) / align * align);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t size) {
  return counted_alloc(size, alignof(std::max_align_t));
}
void* operator new[](std::size_t size) {
  return counted_alloc(size, alignof(std::max_align_t));
}
void* operator new(std::size_t size, std::align_val_t align) {
  return counted_alloc(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return counted_alloc(size, static_cast<std::size_t>(align));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;

std::string reference_dir() {
  if (const char* d = std::getenv("BITNET_REFERENCE_DIR"); d && *d) return d;
  return BITNET_REFERENCE_DIR_DEFAULT;
}
std::string model_path() {
  return reference_dir() + "/models/tiny-b158.i2_s.gguf";
}

#define REQUIRE_MODEL()          \
  if (!fs::exists(model_path())) \
  GTEST_SKIP() << "reference model not found at " << model_path() << " (set BITNET_REFERENCE_DIR)"

const ModelWeights& tiny() {
  static const std::unique_ptr<ModelWeights> w = [] {
    LoadOptions o;
    o.cache = CacheMode::Off;
    return ModelWeights::load(model_path(), o);
  }();
  return *w;
}

// A deterministic token sequence inside the vocabulary (different per seed).
std::vector<int32_t> tokens_for(uint32_t seed, size_t n, int64_t n_vocab) {
  std::vector<int32_t> t(n);
  uint32_t s = seed * 2654435761u + 12345u;
  for (auto& v : t) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(n_vocab));
  }
  return t;
}

// The oracle: logits of every position of `tokens` run alone, one sequence in a session of its
// own evaluated in as many steps as eval() cuts it into ([n][V]).
std::vector<float> alone(const std::vector<int32_t>& tokens, KvType kv, ThreadPool& pool,
                         bool quantize_activations = true, bool fused = true) {
  SessionOptions so;
  so.fused_norm_quant = fused;
  so.n_ctx = static_cast<int64_t>(tokens.size());
  so.kv = kv;
  so.quantize_activations = quantize_activations;
  Session s(tiny(), so, pool);
  const int s_slot = s.add_sequence();
  std::vector<float> out(tokens.size() * static_cast<size_t>(s.n_vocab()));
  s.eval(s_slot, tokens, out.data(), true);
  return out;
}

// Exact comparison of one logits row; reports the first differing entry and the largest gap.
::testing::AssertionResult same_row(const float* got, const float* want, int64_t n) {
  if (std::memcmp(got, want, static_cast<size_t>(n) * sizeof(float)) == 0) {
    return ::testing::AssertionSuccess();
  }
  int64_t first = -1;
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && first < 0) first = i;
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  return ::testing::AssertionFailure() << "first difference at " << first << ": " << got[first]
                                       << " vs " << want[first] << ", max |diff| " << worst;
}

template <class E, class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning \"" << needle << "\"";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// --------------------------------------------------------------- continuous batching

struct Seq {
  std::vector<int32_t> tokens;  // prompt, then the tokens fed while decoding
  size_t prompt = 0;
  int64_t join_step = 0;
  int64_t remove_after = -1;  // leaves after this many tokens fed, if >= 0
  int slot = -1;
  size_t fed = 0;
  bool done = false;
  std::vector<float> want;  // oracle rows [tokens][V]
  int64_t rows_checked = 0;
};

// KV type and page size: 4-position pages make every sequence span several pages, taken from the
// shared pool in the order the sequences grow (interleaved).
class Continuous : public ::testing::TestWithParam<std::tuple<KvType, int64_t>> {};

// Four slots, five sequences with prompts of 5..12 tokens, staggered joins, prefill in chunks of
// at most 4 tokens mixed with the decode tokens of the others in the same step, one sequence
// removed mid-way and its slot taken by the fifth (which waited: add_sequence returned -1).
TEST_P(Continuous, EverySequenceMatchesItsSingleRun) {
  REQUIRE_MODEL();
  const KvType kv = std::get<0>(GetParam());
  ThreadPool pool(2);
  const int64_t V = tiny().config().n_vocab;
  std::vector<Seq> seqs(5);
  const size_t prompts[] = {5, 9, 3, 12, 7};
  const size_t decodes[] = {10, 8, 12, 6, 9};
  const int64_t joins[] = {0, 1, 3, 4, 5};
  for (size_t i = 0; i < seqs.size(); ++i) {
    seqs[i].tokens = tokens_for(static_cast<uint32_t>(i + 1), prompts[i] + decodes[i], V);
    seqs[i].prompt = prompts[i];
    seqs[i].join_step = joins[i];
    seqs[i].want = alone(seqs[i].tokens, kv, pool);
  }
  seqs[1].remove_after = 9 + 3;  // prompt, then 3 decode tokens

  SessionOptions bo;
  bo.max_sequences = 4;
  bo.n_ctx = 24;
  bo.kv = kv;
  bo.max_batch_tokens = 16;
  bo.kv_page_size = std::get<1>(GetParam());
  Session b(tiny(), bo, pool);
  std::vector<BatchItem> items;
  std::vector<size_t> owner;  // seqs index of each item
  std::vector<float> logits(static_cast<size_t>(bo.max_batch_tokens * V));
  int removed_slot = -1;
  bool fifth_waited = false;
  for (int64_t step = 0; step < 200; ++step) {
    for (auto& s : seqs) {
      if (s.slot >= 0 || s.done || step < s.join_step) continue;
      s.slot = b.add_sequence();
      if (s.slot < 0) {
        fifth_waited = true;
        continue;
      }
      EXPECT_EQ(b.n_past(s.slot), 0);
    }
    items.clear();
    owner.clear();
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = seqs[i];
      if (s.slot < 0 || s.done) continue;
      const size_t n = s.fed < s.prompt ? std::min<size_t>(4, s.prompt - s.fed) : 1;
      for (size_t k = 0; k < n; ++k) {
        // Logits for every row, so every position is compared (not only the last prompt row).
        items.push_back({s.slot, s.tokens[s.fed + k], true});
        owner.push_back(i);
      }
    }
    if (items.empty()) break;
    b.step(items, logits.data());
    for (size_t r = 0; r < items.size(); ++r) {
      Seq& s = seqs[owner[r]];
      ASSERT_TRUE(same_row(logits.data() + r * static_cast<size_t>(V),
                           s.want.data() + s.fed * static_cast<size_t>(V), V))
          << "sequence " << owner[r] << " position " << s.fed << " step " << step;
      ++s.fed;
      ++s.rows_checked;
    }
    for (auto& s : seqs) {
      if (s.slot < 0 || s.done) continue;
      EXPECT_EQ(b.n_past(s.slot), static_cast<int64_t>(s.fed));
      const bool leave = s.remove_after >= 0 && s.fed == static_cast<size_t>(s.remove_after);
      if (leave || s.fed == s.tokens.size()) {
        if (leave) removed_slot = s.slot;
        b.remove_sequence(s.slot);
        s.slot = -1;
        s.done = true;
      }
    }
  }
  EXPECT_TRUE(fifth_waited) << "the fifth sequence should have found all four slots in use";
  EXPECT_GE(removed_slot, 0);
  for (size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_TRUE(seqs[i].done) << "sequence " << i;
    const auto expect = i == 1 ? seqs[i].remove_after : static_cast<int64_t>(seqs[i].tokens.size());
    EXPECT_EQ(seqs[i].rows_checked, expect) << "sequence " << i;
  }
  EXPECT_EQ(b.active_sequences(), 0);
}

INSTANTIATE_TEST_SUITE_P(KvTypes, Continuous,
                         ::testing::Combine(::testing::Values(KvType::F16, KvType::F32),
                                            ::testing::Values(int64_t{4}, int64_t{64})),
                         [](const auto& p) {
                           return std::string(std::get<0>(p.param) == KvType::F16 ? "F16" : "F32") +
                                  "_page" + std::to_string(std::get<1>(p.param));
                         });

// --------------------------------------------------------------- KV pages and reservations

// A pool of 6 pages of 4 positions: sequences reserve what they will need, add_sequence refuses
// (returns -1, changes nothing) what the pool cannot promise, a step needing pages beyond the
// reservations and the free pages is refused before anything is evaluated, and pages come back
// when a sequence leaves.
TEST(Batched, PagesAreReservedAndRefusedNotExhaustedMidWay) {
  REQUIRE_MODEL();
  ThreadPool pool(2);
  const int64_t V = tiny().config().n_vocab;
  SessionOptions bo;
  bo.max_sequences = 4;
  bo.n_ctx = 16;
  bo.max_batch_tokens = 16;
  bo.kv_page_size = 4;
  bo.kv_pages = 6;
  Session b(tiny(), bo, pool);
  EXPECT_EQ(b.kv_bytes(), b.kv_pool().page_bytes() * 6);
  EXPECT_EQ(b.pages_for(10), 3);
  EXPECT_EQ(b.pages_for(100), 4);    // capped at n_ctx
  const int a = b.add_sequence(10);  // 3 pages
  const int c = b.add_sequence(8);   // 2 pages
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  EXPECT_EQ(b.kv_pool().available(), 1);
  EXPECT_EQ(b.add_sequence(5), -1);  // needs 2 pages, 1 left; a slot is free
  EXPECT_EQ(b.active_sequences(), 2);
  const int d = b.add_sequence(0);  // no reservation: takes pages as it goes
  ASSERT_GE(d, 0);

  const auto ta = tokens_for(41, 10, V), td = tokens_for(43, 8, V);
  const auto wa = alone(ta, KvType::F16, pool), wd = alone(td, KvType::F16, pool);
  std::vector<float> logits(16 * static_cast<size_t>(V));
  std::vector<BatchItem> items;
  for (size_t i = 0; i < 10; ++i) items.push_back({a, ta[i], i == 9});
  for (size_t i = 0; i < 4; ++i) items.push_back({d, td[i], i == 3});
  b.step(items, logits.data());  // a from its reservation, d takes the last free page
  EXPECT_TRUE(same_row(logits.data(), wa.data() + 9 * V, V));
  EXPECT_TRUE(same_row(logits.data() + V, wd.data() + 3 * V, V));
  EXPECT_EQ(b.kv_pool().pages_in_use(), 4);
  EXPECT_EQ(b.kv_pool().available(), 0);  // 2 free pages, both promised to c

  // d's 5th position needs a page nobody promised: refused, nothing changes.
  const BatchItem over[] = {{a, ta[0], false}, {d, td[4], true}};
  expect_error<std::out_of_range>([&] { b.step(over, logits.data()); },
                                  "needs 1 more pages beyond the reservations but 0 of 6");
  EXPECT_EQ(b.n_past(a), 10);
  EXPECT_EQ(b.n_past(d), 4);

  b.remove_sequence(a);  // 3 pages back
  EXPECT_EQ(b.kv_pool().available(), 3);
  const BatchItem go_on[] = {{d, td[4], true}};
  b.step(go_on, logits.data());
  EXPECT_TRUE(same_row(logits.data(), wd.data() + 4 * V, V));
  EXPECT_EQ(b.kv_pool().peak_pages_in_use(), 4);
  b.remove_sequence(c);
  b.remove_sequence(d);
  EXPECT_EQ(b.kv_pool().pages_in_use(), 0);
  EXPECT_EQ(b.kv_pool().available(), 6);

  SessionOptions bad = bo;
  bad.kv_page_size = 6;
  expect_error<std::invalid_argument>([&] { Session(tiny(), bad, pool); },
                                      "page_size (6, a power of 2)");
}

// The fused norm + quantization passes (the execution plan's fusions) change nothing, and neither
// does undoing the load-time q|k|v and gate|up fusions: the single session gives the same logits
// fused, unfused and split, for a prefill of 7 rows and single-row decode
// steps, on 1 and 2 threads; several slots too.
TEST(Batched, FusedNormQuantIsBitIdenticalToUnfused) {
  REQUIRE_MODEL();
  const int64_t V = tiny().config().n_vocab;
  const auto t = tokens_for(61, 11, V);
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    const auto fused = alone(t, KvType::F16, pool, true, true);
    const auto plain = alone(t, KvType::F16, pool, true, false);
    SessionOptions split;
    split.n_ctx = 16;
    split.fused_norm_quant = false;
    split.split_linears = true;  // q, k, v and gate, up as separate BitLinears
    Session sp(tiny(), split, pool);
    const int sp_slot = sp.add_sequence();
    std::vector<float> split_logits(t.size() * static_cast<size_t>(V));
    sp.eval(sp_slot, t, split_logits.data(), true);
    for (size_t i = 0; i < t.size(); ++i) {
      EXPECT_TRUE(same_row(fused.data() + i * V, plain.data() + i * V, V))
          << "position " << i << ", " << threads << " threads";
      EXPECT_TRUE(same_row(split_logits.data() + i * V, plain.data() + i * V, V))
          << "split, position " << i << ", " << threads << " threads";
    }
    SessionOptions so;
    so.n_ctx = 16;
    so.fused_norm_quant = false;
    Session s(tiny(), so, pool);
    const int s_slot = s.add_sequence();
    std::vector<float> row(static_cast<size_t>(V));
    s.eval(s_slot, std::span<const int32_t>(t.data(), 7), row.data(), false);
    EXPECT_TRUE(same_row(row.data(), fused.data() + 6 * V, V));
    for (size_t i = 7; i < t.size(); ++i) {
      s.eval(s_slot, std::span<const int32_t>(&t[i], 1), row.data(), false);
      EXPECT_TRUE(same_row(row.data(), fused.data() + i * V, V)) << "decode position " << i;
    }
    split.fused_norm_quant = true;
    expect_error<std::invalid_argument>([&] { Session(tiny(), split, pool); },
                                        "split linears need");
    SessionOptions bo;
    bo.max_sequences = 1;
    bo.n_ctx = 16;
    bo.max_batch_tokens = 11;
    bo.fused_norm_quant = false;
    Session b(tiny(), bo, pool);
    const int slot = b.add_sequence();
    std::vector<BatchItem> items;
    for (int32_t tok : t) items.push_back({slot, tok, true});
    std::vector<float> logits(t.size() * static_cast<size_t>(V));
    b.step(items, logits.data());
    for (size_t i = 0; i < t.size(); ++i) {
      EXPECT_TRUE(same_row(logits.data() + i * V, fused.data() + i * V, V)) << "batched " << i;
    }
  }
}

// The validation mode (no activation quantization) in a batch gives the single-session validation
// logits bit for bit, like the quantized mode does.
TEST(Batched, ValidationModeMatchesTheSingleSession) {
  REQUIRE_MODEL();
  ThreadPool pool(2);
  const int64_t V = tiny().config().n_vocab;
  const auto ta = tokens_for(51, 6, V), tb = tokens_for(52, 5, V);
  const auto wa = alone(ta, KvType::F32, pool, false), wb = alone(tb, KvType::F32, pool, false);
  SessionOptions bo;
  bo.max_sequences = 2;
  bo.n_ctx = 8;
  bo.kv = KvType::F32;
  bo.max_batch_tokens = 11;
  bo.quantize_activations = false;
  Session b(tiny(), bo, pool);
  const int a = b.add_sequence(), c = b.add_sequence();
  std::vector<BatchItem> items;
  for (size_t i = 0; i < 6; ++i) items.push_back({a, ta[i], true});
  for (size_t i = 0; i < 5; ++i) items.push_back({c, tb[i], true});
  std::vector<float> logits(11 * static_cast<size_t>(V));
  b.step(items, logits.data());
  for (size_t i = 0; i < 6; ++i) EXPECT_TRUE(same_row(logits.data() + i * V, wa.data() + i * V, V));
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_TRUE(same_row(logits.data() + (6 + i) * V, wb.data() + i * V, V));
  }
}

// --------------------------------------------------------------- one mixed step

// One step holding a decode token of A, a 5-token prefill of B interleaved with it and a 2-token
// chunk of C, with logits asked for some items only: rows come back in item order.
TEST(Batched, MixedPrefillAndDecodeInOneStep) {
  REQUIRE_MODEL();
  ThreadPool pool(2);
  const int64_t V = tiny().config().n_vocab;
  const auto ta = tokens_for(11, 7, V), tb = tokens_for(12, 5, V), tc = tokens_for(13, 4, V);
  const auto wa = alone(ta, KvType::F16, pool), wb = alone(tb, KvType::F16, pool),
             wc = alone(tc, KvType::F16, pool);
  SessionOptions bo;
  bo.max_sequences = 3;
  bo.n_ctx = 16;
  bo.max_batch_tokens = 8;
  Session b(tiny(), bo, pool);
  const int a = b.add_sequence(), bs = b.add_sequence(), c = b.add_sequence();
  ASSERT_EQ(b.add_sequence(), -1);
  // A: prompt of 6 in one step, no logits; C: 2 tokens with logits for the last.
  std::vector<BatchItem> first;
  for (size_t i = 0; i < 6; ++i) first.push_back({a, ta[i], false});
  first.push_back({c, tc[0], false});
  first.push_back({c, tc[1], true});
  std::vector<float> logits(8 * static_cast<size_t>(V));
  b.step(first, logits.data());
  EXPECT_TRUE(same_row(logits.data(), wc.data() + 1 * V, V));
  EXPECT_EQ(b.n_past(a), 6);
  EXPECT_EQ(b.n_past(bs), 0);
  EXPECT_EQ(b.n_past(c), 2);

  const BatchItem mixed[] = {{bs, tb[0], false}, {a, ta[6], true},   {bs, tb[1], true},
                             {c, tc[2], false},  {bs, tb[2], false}, {c, tc[3], true},
                             {bs, tb[3], false}, {bs, tb[4], true}};
  b.step(mixed, logits.data());
  EXPECT_TRUE(same_row(logits.data() + 0 * V, wa.data() + 6 * V, V)) << "A decode";
  EXPECT_TRUE(same_row(logits.data() + 1 * V, wb.data() + 1 * V, V)) << "B position 1";
  EXPECT_TRUE(same_row(logits.data() + 2 * V, wc.data() + 3 * V, V)) << "C position 3";
  EXPECT_TRUE(same_row(logits.data() + 3 * V, wb.data() + 4 * V, V)) << "B position 4";
  EXPECT_EQ(b.n_past(a), 7);
  EXPECT_EQ(b.n_past(bs), 5);
  EXPECT_EQ(b.n_past(c), 4);

  // reset_sequence: the slot starts again at position 0 and gives the single-run logits again.
  b.reset_sequence(bs);
  EXPECT_EQ(b.n_past(bs), 0);
  const BatchItem again[] = {{bs, tb[0], true}, {bs, tb[1], true}};
  b.step(again, logits.data());
  EXPECT_TRUE(same_row(logits.data(), wb.data(), V));
  EXPECT_TRUE(same_row(logits.data() + V, wb.data() + V, V));
}

// --------------------------------------------------------------- errors

TEST(Batched, ErrorsAreClearAndChangeNothing) {
  REQUIRE_MODEL();
  ThreadPool pool(2);
  const int64_t V = tiny().config().n_vocab;
  const auto ta = tokens_for(21, 8, V), tb = tokens_for(22, 4, V);
  const auto wa = alone(ta, KvType::F16, pool), wb = alone(tb, KvType::F16, pool);
  SessionOptions bo;
  bo.max_sequences = 2;
  bo.n_ctx = 8;
  bo.max_batch_tokens = 6;
  Session b(tiny(), bo, pool);
  const int a = b.add_sequence(), bs = b.add_sequence();
  std::vector<float> logits(6 * static_cast<size_t>(V));
  std::vector<BatchItem> items;
  for (size_t i = 0; i < 6; ++i) items.push_back({a, ta[i], false});
  b.step(items, nullptr);  // no logits wanted: null is fine

  using IA = std::invalid_argument;
  const BatchItem unknown[] = {{bs, tb[0], false}, {5, tb[1], true}};
  expect_error<IA>([&] { b.step(unknown, logits.data()); },
                   "item 1: sequence slot 5 is not in use");
  const BatchItem negative[] = {{-1, tb[0], false}};
  expect_error<IA>([&] { b.step(negative, logits.data()); }, "sequence slot -1 is not in use");
  const BatchItem bad_token[] = {{bs, tb[0], false}, {bs, static_cast<int32_t>(V), false}};
  expect_error<IA>([&] { b.step(bad_token, logits.data()); },
                   "item 1: token id " + std::to_string(V) + " is outside the vocabulary");
  const BatchItem neg_token[] = {{bs, -3, false}};
  expect_error<IA>([&] { b.step(neg_token, logits.data()); }, "token id -3");
  std::vector<BatchItem> too_many(7, BatchItem{bs, tb[0], false});
  expect_error<IA>([&] { b.step(too_many, logits.data()); }, "7 items exceed max_batch_tokens = 6");
  const BatchItem want_logits[] = {{bs, tb[0], true}};
  expect_error<IA>([&] { b.step(want_logits, nullptr); }, "no logits buffer");
  // A has 6 of 8 positions: 3 more overflow, even with B's valid items in the same step.
  const BatchItem overflow[] = {
      {bs, tb[0], true}, {a, ta[6], false}, {a, ta[7], false}, {a, ta[0], true}};
  expect_error<std::out_of_range>([&] { b.step(overflow, logits.data()); },
                                  "sequence slot " + std::to_string(a) +
                                      " would exceed its context of 8 tokens: 6 in the cache + 3");
  expect_error<IA>([&] { b.remove_sequence(7); }, "remove_sequence: sequence slot 7");
  expect_error<IA>([&] { b.reset_sequence(-2); }, "reset_sequence: sequence slot -2");
  expect_error<IA>([&] { (void)b.n_past(2); }, "n_past: sequence slot 2");

  // Nothing above changed any state: both sequences continue as if the errors never happened.
  EXPECT_EQ(b.n_past(a), 6);
  EXPECT_EQ(b.n_past(bs), 0);
  const BatchItem ok[] = {{a, ta[6], true}, {bs, tb[0], true}, {a, ta[7], true}};
  b.step(ok, logits.data());
  EXPECT_TRUE(same_row(logits.data(), wa.data() + 6 * V, V));
  EXPECT_TRUE(same_row(logits.data() + V, wb.data(), V));
  EXPECT_TRUE(same_row(logits.data() + 2 * V, wa.data() + 7 * V, V));
  EXPECT_EQ(b.n_past(a), 8);
  const BatchItem full[] = {{a, ta[0], false}};
  expect_error<std::out_of_range>([&] { b.step(full, nullptr); }, "8 in the cache + 1");

  // A removed slot is unknown until add_sequence hands it out again.
  b.remove_sequence(a);
  const BatchItem stale[] = {{a, ta[0], false}};
  expect_error<IA>([&] { b.step(stale, nullptr); }, "is not in use");
  EXPECT_EQ(b.add_sequence(), a);
  EXPECT_EQ(b.n_past(a), 0);
  EXPECT_EQ(b.add_sequence(), -1);

  SessionOptions bad = bo;
  bad.max_sequences = 0;
  expect_error<IA>([&] { Session(tiny(), bad, pool); }, "max_sequences (0)");
  bad = bo;
  bad.max_batch_tokens = 0;
  expect_error<IA>([&] { Session(tiny(), bad, pool); }, "max_batch_tokens (0)");
}

// --------------------------------------------------------------- allocation

TEST(Batched, StepDoesNotAllocateAfterTheFirstCall) {
  REQUIRE_MODEL();
  ThreadPool pool(2);
  const int64_t V = tiny().config().n_vocab;
  SessionOptions bo;
  bo.max_sequences = 4;
  bo.n_ctx = 32;
  bo.max_batch_tokens = 12;
  Session b(tiny(), bo, pool);
  int slots[4];
  for (int& s : slots) s = b.add_sequence();
  std::vector<float> logits(12 * static_cast<size_t>(V));
  const auto toks = tokens_for(31, 32, V);
  std::vector<BatchItem> items;
  for (int i = 0; i < 3; ++i) items.push_back({slots[0], toks[static_cast<size_t>(i)], i == 2});
  b.step(items, logits.data());  // the first call

  // Decode steps of all four, prefill chunks mixed in, a reset and a removal/re-add between steps.
  std::vector<std::vector<BatchItem>> plan;
  for (int s = 0; s < 8; ++s) {
    std::vector<BatchItem> p;
    for (int k = 0; k < 4; ++k) {
      const int n = (s + k) % 3 == 0 ? 3 : 1;
      for (int j = 0; j < n; ++j) {
        p.push_back({slots[k], toks[static_cast<size_t>(s * 3 + j)], j == n - 1});
      }
    }
    plan.push_back(std::move(p));
  }
  g_allocations = 0;
  g_counting = true;
  for (size_t s = 0; s < plan.size(); ++s) {
    if (s == 4) b.reset_sequence(slots[1]);
    if (s == 6) {
      b.remove_sequence(slots[2]);
      slots[2] = b.add_sequence();
    }
    b.step(plan[s], logits.data());
  }
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0);
  EXPECT_EQ(b.n_past(slots[1]), 1 + 3 + 1 + 1);  // steps 4..7 after the reset
  EXPECT_EQ(b.n_past(slots[2]), 1 + 3);          // steps 6..7 after the re-add
}

}  // namespace
}  // namespace bitnet::model
