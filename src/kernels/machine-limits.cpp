#include "kernels/machine-limits.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

namespace bitnet::kernels {

namespace {
constexpr size_t kStreamStep = 256;  // stream_read granularity
}  // namespace

// Filled with non-repeating bytes: pages of zeros (or of one repeated pattern) can be merged by a
// hypervisor or the kernel, and the probe would then read one physical page from cache.
BandwidthProbe::BandwidthProbe(size_t buffer_bytes)
    : buf_(buffer_bytes / kStreamStep * kStreamStep) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i + 8 <= buf_.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(buf_.data() + i, &x, 8);
  }
}

BandwidthResult BandwidthProbe::measure(ThreadPool& pool, const KernelTable& table, int reps) {
  const int threads = pool.size();
  const size_t per_thread = buf_.size() / static_cast<size_t>(threads) / kStreamStep * kStreamStep;
  std::vector<uint64_t> sink(static_cast<size_t>(threads) * 8);  // one cache line per thread
  auto pass = [&] {
    pool.parallel_for(threads, [&](int64_t t, int64_t, int) {
      sink[static_cast<size_t>(t) * 8] +=
          table.stream_read(buf_.data() + per_thread * static_cast<size_t>(t), per_thread);
    });
  };
  pass();  // warm-up (and first touch on a new buffer)
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(per_thread * static_cast<size_t>(threads)) / s);
  }
  std::sort(rates.begin(), rates.end());
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  return {rates[rates.size() / 2], per_thread * static_cast<size_t>(threads), threads};
}

BandwidthResult measure_read_bandwidth(ThreadPool& pool, const KernelTable& table,
                                       size_t buffer_bytes, int reps) {
  BandwidthProbe probe(buffer_bytes);
  return probe.measure(pool, table, reps);
}

double measure_int8_peak(ThreadPool& pool, const KernelTable& table, double seconds, int reps) {
  using clock = std::chrono::steady_clock;
  auto run = [&](int64_t iters) {
    std::vector<int64_t> sink(static_cast<size_t>(pool.size()) * 8);
    const auto t0 = clock::now();
    pool.parallel_for(pool.size(), [&](int64_t b, int64_t, int) {
      sink[static_cast<size_t>(b) * 8] = table.int8_peak(iters);
    });
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    volatile int64_t keep = sink[0];
    (void)keep;
    return s;
  };
  // Calibrate the iteration count to the requested duration.
  int64_t iters = 1 << 16;
  double t = run(iters);
  while (t < seconds / 4) {
    iters *= 2;
    t = run(iters);
  }
  iters = static_cast<int64_t>(static_cast<double>(iters) * seconds / t) + 1;
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    const double s = run(iters);
    rates.push_back(2.0 * static_cast<double>(iters) *
                    static_cast<double>(table.int8_peak_macs_per_iteration) * pool.size() / s);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

}  // namespace bitnet::kernels
