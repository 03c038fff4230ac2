#include "kernels/machine-limits.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/aligned-buffer.h"

namespace bitnet::kernels {

BandwidthResult measure_read_bandwidth(ThreadPool& pool, const KernelTable& table,
                                       size_t buffer_bytes, int reps) {
  const int threads = pool.size();
  constexpr size_t kStep = 256;  // stream_read granularity
  const size_t per_thread = buffer_bytes / static_cast<size_t>(threads) / kStep * kStep;
  AlignedBuffer<uint8_t> buf(per_thread * static_cast<size_t>(threads));
  std::vector<uint64_t> sink(static_cast<size_t>(threads) * 8);  // one cache line per thread
  auto pass = [&] {
    pool.parallel_for(threads, [&](int64_t t, int64_t, int) {
      sink[static_cast<size_t>(t) * 8] +=
          table.stream_read(buf.data() + per_thread * static_cast<size_t>(t), per_thread);
    });
  };
  pass();  // warm-up
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(buf.size()) / s);
  }
  std::sort(rates.begin(), rates.end());
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  return {rates[rates.size() / 2], buf.size(), threads};
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
