// The decode loop allocates nothing: every buffer of a session (activations, KV cache, scratch)
// is allocated when it is created. Counted with a replaced global operator new, switched on only
// around the decode steps.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <vector>

#include "model/session.h"

// GCC pairs the inlined replacement operator delete (std::free) with the replaced operator new and
// warns of a mismatch that is not one: both replacements use malloc/free.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return operator new(n);
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

namespace bitnet::model {
namespace {

std::string reference_model() {
  const char* d = std::getenv("BITNET_REFERENCE_DIR");
  return std::string(d && *d ? d : BITNET_REFERENCE_DIR_DEFAULT) + "/models/tiny-b158.i2_s.gguf";
}

TEST(DecodeAllocations, NoHeapAllocationPerDecodeStep) {
  const std::string path = reference_model();
  if (!std::filesystem::exists(path))
    GTEST_SKIP() << path << " not found (set BITNET_REFERENCE_DIR)";
  LoadOptions lo;
  lo.cache = CacheMode::Off;
  const auto w = ModelWeights::load(path, lo);
  for (int threads : {1, 2}) {
    for (KvType kv : {KvType::F16, KvType::F32}) {
      ThreadPool pool(threads);
      SessionOptions so;
      so.kv = kv;
      Session s(*w, so, pool);
      const int s_slot = s.add_sequence();
      std::vector<float> logits(static_cast<size_t>(s.n_vocab()));
      const std::vector<int32_t> prompt = {4096, 791, 4062, 293, 654};
      s.eval(s_slot, prompt, logits.data(), false);  // prefill (may warm anything lazy)
      int32_t tok = 13;
      g_allocations = 0;
      g_counting = true;
      for (int i = 0; i < 32; ++i) {
        s.eval(s_slot, std::span<const int32_t>(&tok, 1), logits.data(), false);
        tok = (tok * 31 + 7) % 4000;
      }
      g_counting = false;
      EXPECT_EQ(g_allocations.load(), 0) << threads << " threads";
    }
  }
}

TEST(DecodeAllocations, TheCounterCounts) {
  g_allocations = 0;
  g_counting = true;
  auto* p = new std::vector<int>(100);
  g_counting = false;
  delete p;
  EXPECT_GE(g_allocations.load(), 1);
}

}  // namespace
}  // namespace bitnet::model
