// Kernel benchmarks on the BitNet b1.58 2B4T shapes, per ISA, layout and thread count.
//
// Before the benchmarks run, the program measures this machine's own limits in the same process:
// read bandwidth (a plain streaming loop over 256 MiB) and the int8 multiply-add peak (a tight
// vpdpbusd loop), each at 1 and 2 threads. Every benchmark then reports, besides its time:
//   GOPs      integer ops per second (2 per ternary multiply-add)
//   wGBs      packed weight bytes streamed per second
//   bwGBs     read bandwidth measured right after this GEMV on the same threads (paired)
//   pct_bw    wGBs as a share of bwGBs (GEMV)
//   peakGOPs  int8 peak of this ISA measured right after this GEMM on the same threads (paired)
//   pct_peak  GOPs as a share of peakGOPs (GEMM)
//   x_scalar  speed-up over the scalar reference kernel, single thread, same layout and shape
// GEMV cycles through copies of the matrix filling 256 MiB (8x the 32 MiB L3, the same size as the
// bandwidth probe's buffer), so both measure DRAM the same way.
//
//   build/bin/bench-kernels --benchmark_filter=Gemv/avx512 --benchmark_repetitions=5
// With repetitions, Gemv and Gemm rows also report "max": each counter's best repetition (rates
// and probes alike), the least disturbed figures on a shared machine.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/cpu-features.h"
#include "kernels/machine-limits.h"
#include "kernels/ternary-matmul.h"

namespace bitnet::kernels {
namespace {

constexpr size_t kColdSetBytes = size_t{256} << 20;  // 8x L3, the bandwidth probe's buffer size

struct Limits {
  double bandwidth[3] = {};                         // by thread count 1, 2
  std::map<std::pair<int, int>, double> int8_peak;  // (isa, threads) -> ops/s
};
Limits g_limits;
std::map<std::string, double> g_scalar_seconds;  // "layout/N/K/M" -> seconds per call, 1 thread

ThreadPool& pool_for(int threads) {
  static std::unique_ptr<ThreadPool> pools[5];
  if (!pools[threads]) pools[threads] = std::make_unique<ThreadPool>(threads);
  return *pools[threads];
}

struct MatrixSet {
  std::vector<TernaryMatrix> mats;
  size_t bytes_each = 0;
};

// Packed copies of one random ternary matrix, enough of them to defeat the caches when `cold`.
const MatrixSet& matrices(TernaryLayout layout, int64_t n, int64_t k, bool cold) {
  static std::map<std::tuple<int, int64_t, int64_t, bool>, MatrixSet> cache;
  auto key = std::make_tuple(static_cast<int>(layout), n, k, cold);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::mt19937 rng(42);
  std::vector<int8_t> w(static_cast<size_t>(n * k));
  for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  std::vector<float> scale(static_cast<size_t>(n), 0.01f);
  MatrixSet set;
  set.mats.push_back(pack_ternary(layout, w.data(), n, k, scale.data()));
  set.bytes_each = set.mats[0].bytes();
  // BITNET_BENCH_COLD_BYTES shrinks the set, e.g. to find a kernel's in-cache ceiling.
  const char* env = std::getenv("BITNET_BENCH_COLD_BYTES");
  const size_t cold_bytes = env ? std::strtoull(env, nullptr, 10) : kColdSetBytes;
  const size_t copies = cold ? (cold_bytes + set.bytes_each - 1) / set.bytes_each : 1;
  const TernaryMatrixView v = set.mats[0].view();
  for (size_t i = 1; i < copies; ++i) {
    TernaryMatrix c(layout, n, k);
    std::memcpy(c.data(), v.data, v.group_bytes * static_cast<size_t>(v.groups()));
    std::memcpy(c.row_scale(), v.row_scale, static_cast<size_t>(v.groups()) * kGroupRows * 4);
    set.mats.push_back(std::move(c));
  }
  return cache.emplace(key, std::move(set)).first->second;
}

struct Acts {
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> sum;
  QuantizedRows rows(int64_t m, int64_t k) const {
    return {q.data(), k, scale.data(), sum.data(), m};
  }
};
Acts make_acts(int64_t m, int64_t k) {
  std::mt19937 rng(7);
  Acts a;
  a.q.resize(static_cast<size_t>(m * k));
  for (auto& v : a.q) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  a.scale.assign(static_cast<size_t>(m), 10.0f);
  a.sum.assign(static_cast<size_t>(m), 0);
  return a;
}

// The table of `isa`, or null after marking the benchmark skipped (the CPU lacks it).
const KernelTable* table_or_skip(benchmark::State& state, Isa isa) {
  const KernelTable* table = kernels_for(isa);
  if (!table) state.SkipWithError("ISA not available on this CPU");
  return table;
}

std::string shape_key(TernaryLayout layout, int64_t n, int64_t k, int64_t m) {
  return std::string(layout_name(layout)) + "/" + std::to_string(n) + "/" + std::to_string(k) +
         "/" + std::to_string(m);
}

// Seconds per call of the scalar reference on one thread (measured once per shape, short).
double scalar_seconds(TernaryLayout layout, int64_t n, int64_t k, int64_t m) {
  const std::string key = shape_key(layout, n, k, m);
  auto it = g_scalar_seconds.find(key);
  if (it != g_scalar_seconds.end()) return it->second;
  const MatrixSet& set = matrices(layout, n, k, m == 1);
  const Acts acts = make_acts(m, k);
  std::vector<float> y(static_cast<size_t>(m * n));
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  const int calls = m == 1 ? 6 : 1;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    const TernaryMatrixView v = set.mats[static_cast<size_t>(i) % set.mats.size()].view();
    ternary_matmul(pool_for(1), ref, v, acts.rows(m, k), y.data(), n);
  }
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
  g_scalar_seconds[key] = s;
  return s;
}

void run_matmul(benchmark::State& state, Isa isa, TernaryLayout layout, int64_t m,
                bool vs_scalar = true) {
  const int64_t n = state.range(0), k = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const KernelTable* table = table_or_skip(state, isa);
  if (!table) return;
  const MatrixSet& set = matrices(layout, n, k, /*cold=*/m == 1);
  const Acts acts = make_acts(m, k);
  std::vector<float> y(static_cast<size_t>(m * n));
  ThreadPool& pool = pool_for(threads);
  size_t i = 0;
  for (auto _ : state) {
    const TernaryMatrixView v = set.mats[i++ % set.mats.size()].view();
    ternary_matmul(pool, *table, v, acts.rows(m, k), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  // The roofline, measured right after the kernel on the same threads: on a shared machine the
  // bandwidth drifts within seconds, so a figure from program start would not be comparable.
  if (m == 1) {
    static BandwidthProbe probe(kColdSetBytes);
    state.counters["bwGBs"] = probe.measure(pool, active_kernels(), 3).bytes_per_second / 1e9;
  } else {
    state.counters["peakGOPs"] = measure_int8_peak(pool, *table, 0.05, 3) / 1e9;
  }
  const double calls = static_cast<double>(state.iterations());
  const double ops = 2.0 * static_cast<double>(m * n * k);
  state.counters["GOPs"] = benchmark::Counter(ops * calls / 1e9, benchmark::Counter::kIsRate);
  state.counters["wGBs"] = benchmark::Counter(static_cast<double>(set.bytes_each) * calls / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["bpw"] = layout_bits_per_weight(layout, k);
  // Ratios need the time per call, which counters only see as rates: RatioReporter fills them in.
  if (isa != Isa::Scalar && vs_scalar) state.counters["x_scalar"] = 0;
  state.SetLabel(std::string(isa_name(isa)) + " " + layout_name(layout));
}

// ---------------------------------------------------------------- LM head: quantized outputs
// The 2B4T output matrix (vocabulary 128256 x 2560) as Q6_K (269 MB) or Q8_0 (349 MB), read in
// place by the block dots of kernel-types.h: one pass per call over a matrix 8x the L3, so every
// call reads from DRAM. Random codes and scales with a valid fp16 d; m activation rows quantized
// once outside the timing (the LM head quantizes per call, under a microsecond per row); the
// vocabulary split over the pool as model/lm-head.cpp does. wGBs / pct_bw as for GEMV, computed
// here from the loop's own time (plain counters, so the median row has them too).
// LmHeadWarm: 256 rows (538 / 696 KB) that stay in L2 on one thread, the kernels' compute ceiling
// (no bandwidth probe).
struct OutputMatrix {
  std::vector<uint8_t> bytes;
  size_t row_bytes = 0;
};

const OutputMatrix& output_matrix(bool q6, int64_t n, int64_t k) {
  static std::map<std::tuple<bool, int64_t, int64_t>, OutputMatrix> cache;
  auto key = std::make_tuple(q6, n, k);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  OutputMatrix m;
  const size_t block_bytes = q6 ? kQ6KBytes : kQ80Bytes;
  const int64_t blocks = k / (q6 ? kQ6KBlock : kQ80Block);
  m.row_bytes = static_cast<size_t>(blocks) * block_bytes;
  m.bytes.resize(m.row_bytes * static_cast<size_t>(n));
  uint64_t state = 0x9e3779b97f4a7c15u;
  for (size_t i = 0; i + 8 <= m.bytes.size(); i += 8) {
    state += 0x9e3779b97f4a7c15u;  // splitmix64
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    std::memcpy(m.bytes.data() + i, &z, 8);
  }
  const uint16_t d = 0x1c00;  // fp16 2^-8
  for (size_t b = 0; b < static_cast<size_t>(n * blocks); ++b) {
    std::memcpy(m.bytes.data() + b * block_bytes + (q6 ? 208 : 0), &d, 2);
  }
  return cache.emplace(key, std::move(m)).first->second;
}

void run_lm_head(benchmark::State& state, Isa isa, bool q6, int64_t m, bool warm) {
  const int64_t n = state.range(0), k = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const KernelTable* table = table_or_skip(state, isa);
  if (!table) return;
  const OutputMatrix& w = output_matrix(q6, n, k);
  const int64_t block = q6 ? kQ6KBlock : kQ80Block;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * k));
  for (auto& v : x) v = nd(rng);
  std::vector<int8_t> q(x.size());
  std::vector<float> d(static_cast<size_t>(m * (k / block)));
  std::vector<int16_t> bsum(static_cast<size_t>(m * (k / kQ8SumSpan)));
  for (int64_t r = 0; r < m; ++r) {
    table->quantize_blocks(x.data() + r * k, k, block, q.data() + r * k, d.data() + r * (k / block),
                           bsum.data() + r * (k / kQ8SumSpan));
  }
  BlockQ8Rows a;
  a.q = q.data();
  a.d = d.data();
  a.bsum = bsum.data();
  a.ldq = k;
  a.ldd = k / block;
  a.ldbsum = k / kQ8SumSpan;
  a.m = m;
  a.k = k;
  const BlockDotFn fn = q6 ? table->dot_q6_k : table->dot_q8_0;
  std::vector<float> y(static_cast<size_t>(m * n));
  ThreadPool& pool = pool_for(threads);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    pool.parallel_for(n, [&](int64_t v0, int64_t v1, int) {
      fn(w.bytes.data() + static_cast<size_t>(v0) * w.row_bytes, w.row_bytes, v1 - v0, a,
         y.data() + v0, n);
    });
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double wgbs =
      static_cast<double>(w.bytes.size()) * static_cast<double>(state.iterations()) / sec / 1e9;
  state.counters["wGBs"] = wgbs;
  if (!warm) {
    static BandwidthProbe probe(kColdSetBytes);
    const double bw = probe.measure(pool, active_kernels(), 3).bytes_per_second / 1e9;
    state.counters["bwGBs"] = bw;
    state.counters["pct_bw"] = 100.0 * wgbs / bw;
    state.counters["tok_s"] = static_cast<double>(state.iterations()) / sec;  // head passes / s
  }
  state.SetLabel(std::string(isa_name(isa)) + (q6 ? " q6_k" : " q8_0"));
}

// The opt-in int8 head (Int8Matrix, KernelTable::matmul_i8) on the same 2B4T shape: 328 MB of
// codes plus a scale and a code sum per row, m activation rows of random codes (make_acts, made
// outside the timing; the kernel's time does not depend on the values), the row groups split over
// the pool as model/lm-head.cpp does. wGBs / pct_bw as above; GOPs the multiply-adds x 2 per
// second. LmHeadI8Warm: 256 rows (640 KB), in L2 on one thread.
const Int8Matrix& int8_matrix(int64_t n, int64_t k) {
  static std::map<std::pair<int64_t, int64_t>, Int8Matrix> cache;
  auto it = cache.find({n, k});
  if (it != cache.end()) return it->second;
  Int8Matrix m(n, k);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    for (auto& v : row) v = nd(rng);
    m.set_row(i, row.data());
  }
  return cache.emplace(std::make_pair(n, k), std::move(m)).first->second;
}

void run_i8_head(benchmark::State& state, Isa isa, int64_t m, bool warm) {
  const int64_t n = state.range(0), k = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const KernelTable* table = table_or_skip(state, isa);
  if (!table) return;
  const Int8Matrix& mat = int8_matrix(n, k);
  const Int8MatrixView w = mat.view();
  const Acts acts = make_acts(m, k);
  const QuantizedRows a = acts.rows(m, k);
  std::vector<float> y(static_cast<size_t>(m * n));
  ThreadPool& pool = pool_for(threads);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    int8_matmul(pool, *table, w, a, y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double calls = static_cast<double>(state.iterations());
  const auto bytes = static_cast<double>(mat.bytes());
  state.counters["wGBs"] = bytes * calls / sec / 1e9;
  state.counters["GOPs"] = 2.0 * static_cast<double>(m * n * k) * calls / sec / 1e9;
  if (!warm) {
    static BandwidthProbe probe(kColdSetBytes);
    const double bw = probe.measure(pool, active_kernels(), 3).bytes_per_second / 1e9;
    state.counters["bwGBs"] = bw;
    state.counters["pct_bw"] = 100.0 * bytes * calls / sec / 1e9 / bw;
  }
  state.SetLabel(std::string(isa_name(isa)) + " int8");
}

// Google Benchmark computes rates only at report time, so the ratio counters are derived in a
// reporter that sees each run's real time per iteration.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  explicit RatioReporter(bool color) : ConsoleReporter(color ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> copy = runs;
    for (Run& r : copy) decorate(r);
    ConsoleReporter::ReportRuns(copy);
  }

 private:
  static void decorate(Run& r) {
    // Name: Gemv/<isa>/<layout>/N/K/threads  or  Gemm/<isa>/<layout>/M/N/K/threads
    const std::string name = r.run_name.function_name + "/" + r.run_name.args;
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t p; (p = name.find('/', start)) != std::string::npos; start = p + 1) {
      parts.push_back(name.substr(start, p - start));
    }
    parts.push_back(name.substr(start));
    if (parts.size() < 6 || !r.counters.count("GOPs")) return;
    // Only counters are used: on aggregate rows (median, mean) each counter is aggregated on its
    // own, while the run's time fields are not per call.
    const bool gemv = parts[0] == "Gemv";
    const TernaryLayout layout = parts[2] == "t2" ? TernaryLayout::T2 : TernaryLayout::T1;
    const size_t base = gemv ? 3 : 4;
    const int64_t m = gemv ? 1 : std::stoll(parts[3]);
    const int64_t n = std::stoll(parts[base]), k = std::stoll(parts[base + 1]);
    const double gops = r.counters["GOPs"].value;
    if (gemv && r.counters.count("bwGBs")) {
      r.counters["pct_bw"] = 100.0 * r.counters["wGBs"].value / r.counters["bwGBs"].value;
    }
    if (!gemv && r.counters.count("peakGOPs")) {
      r.counters["pct_peak"] = 100.0 * gops / r.counters["peakGOPs"].value;
    }
    if (r.counters.count("x_scalar") && gops > 0) {
      const double sec = 2.0 * static_cast<double>(m * n * k) / (gops * 1e9);
      r.counters["x_scalar"] = scalar_seconds(layout, n, k, m) / sec;
    }
  }
};

// The best repetition besides mean/median/stddev: on a shared machine, time slices lost to other
// processes only ever slow a run down, so the fastest repetition (and the highest probe) is the
// least disturbed one. Each counter takes its own maximum.
double max_of(const std::vector<double>& v) {
  return *std::max_element(v.begin(), v.end());
}

void register_all() {
  // 2B4T: N 2560 (q, o), 640 (k, v), 3840 (q|k|v fused), 6912 (gate, up), 13824 (gate|up fused)
  // at K 2560; N 2560 at K 6912 (down).
  const int64_t shapes[][2] = {{2560, 2560}, {640, 2560},   {3840, 2560},
                               {6912, 2560}, {13824, 2560}, {2560, 6912}};
  for (Isa isa : available_isas()) {
    for (TernaryLayout layout : {TernaryLayout::T2, TernaryLayout::T1}) {
      const std::string tag = std::string(isa_name(isa)) + "/" + layout_name(layout);
      for (int threads : {1, 2}) {
        if (isa == Isa::Scalar && threads > 1) continue;
        for (const auto& s : shapes) {
          if (isa == Isa::Scalar && s[0] != 6912) continue;  // the reference is slow: one shape
          benchmark::RegisterBenchmark(
              ("Gemv/" + tag).c_str(),
              [isa, layout](benchmark::State& st) { run_matmul(st, isa, layout, 1); })
              ->Args({s[0], s[1], threads})
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime()
              ->ComputeStatistics("max", max_of);
        }
        if (isa == Isa::Scalar) continue;
        const int64_t gemm_shapes[][2] = {{6912, 2560}, {2560, 6912}};
        for (const auto& s : gemm_shapes) {
          benchmark::RegisterBenchmark(
              ("Gemm/" + tag + "/128").c_str(),
              [isa, layout](benchmark::State& st) { run_matmul(st, isa, layout, 128); })
              ->Args({s[0], s[1], threads})
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime()
              ->ComputeStatistics("max", max_of);
        }
        // Prefill chunks from 16 to 512 rows on the fused 2B4T linears (q|k|v, o, gate|up,
        // down), in the layout the loader picks for this ISA (no scalar comparison: too slow).
        if (layout != preferred_layout(*kernels_for(isa))) continue;
        const int64_t fused[][2] = {{3840, 2560}, {2560, 2560}, {13824, 2560}, {2560, 6912}};
        for (int64_t m : {16, 128, 512}) {
          for (const auto& s : fused) {
            if (m == 128 && s[0] == 2560 && s[1] == 6912) continue;  // registered above
            benchmark::RegisterBenchmark(
                ("Gemm/" + tag + "/" + std::to_string(m)).c_str(),
                [isa, layout, m](benchmark::State& st) { run_matmul(st, isa, layout, m, false); })
                ->Args({s[0], s[1], threads})
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime()
                ->ComputeStatistics("max", max_of);
          }
        }
      }
    }
  }
  for (Isa isa : available_isas()) {
    if (isa == Isa::Scalar) continue;  // about 3 s per pass
    for (bool q6 : {true, false}) {
      for (int64_t m : {1, 4}) {
        for (int threads : {1, 2}) {
          const std::string name = std::string("LmHead/") + isa_name(isa) +
                                   (q6 ? "/q6_k" : "/q8_0") + "/" + std::to_string(m);
          benchmark::RegisterBenchmark(
              name.c_str(),
              [isa, q6, m](benchmark::State& st) { run_lm_head(st, isa, q6, m, false); })
              ->Args({128256, 2560, threads})
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
        benchmark::RegisterBenchmark(
            (std::string("LmHeadWarm/") + isa_name(isa) + (q6 ? "/q6_k/" : "/q8_0/") +
             std::to_string(m))
                .c_str(),
            [isa, q6, m](benchmark::State& st) { run_lm_head(st, isa, q6, m, true); })
            ->Args({256, 2560, 1})
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
    }
  }
  for (Isa isa : available_isas()) {
    if (isa == Isa::Scalar) continue;
    for (int64_t m : {1, 4, 16}) {
      for (int threads : {1, 2}) {
        benchmark::RegisterBenchmark(
            (std::string("LmHeadI8/") + isa_name(isa) + "/" + std::to_string(m)).c_str(),
            [isa, m](benchmark::State& st) { run_i8_head(st, isa, m, false); })
            ->Args({128256, 2560, threads})
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
      benchmark::RegisterBenchmark(
          (std::string("LmHeadI8Warm/") + isa_name(isa) + "/" + std::to_string(m)).c_str(),
          [isa, m](benchmark::State& st) { run_i8_head(st, isa, m, true); })
          ->Args({256, 2560, 1})
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
  benchmark::RegisterBenchmark("ThreadPoolOverhead",
                               [](benchmark::State& st) {
                                 ThreadPool& pool = pool_for(static_cast<int>(st.range(0)));
                                 for (auto _ : st)
                                   pool.parallel_for(pool.size(), [](int64_t, int64_t, int) {});
                               })
      ->Arg(1)
      ->Arg(2)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("Quantize",
                               [](benchmark::State& st) {
                                 const KernelTable& t = active_kernels();
                                 const int64_t k = st.range(0);
                                 std::vector<float> x(static_cast<size_t>(k), 0.25f);
                                 std::vector<int8_t> q(static_cast<size_t>(k));
                                 float s;
                                 int32_t sum;
                                 for (auto _ : st) {
                                   t.quantize(x.data(), k, 1, k, q.data(), k, &s, &sum);
                                   benchmark::DoNotOptimize(q.data());
                                 }
                                 st.SetBytesProcessed(st.iterations() * k * 4);
                               })
      ->Arg(2560)
      ->Arg(6912)
      ->Unit(benchmark::kNanosecond);
}

void measure_limits() {
  for (int threads : {1, 2}) {
    g_limits.bandwidth[threads] =
        measure_read_bandwidth(pool_for(threads), active_kernels()).bytes_per_second;
    for (Isa isa : available_isas()) {
      g_limits.int8_peak[{static_cast<int>(isa), threads}] =
          measure_int8_peak(pool_for(threads), *kernels_for(isa));
    }
  }
  std::printf("CPU: %s [%s]\n", cpu_features().model_name.c_str(),
              cpu_features().describe().c_str());
  std::printf("read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n",
              g_limits.bandwidth[1] / 1e9, g_limits.bandwidth[2] / 1e9);
  for (Isa isa : available_isas()) {
    std::printf("int8 peak %-7s: %.0f GOP/s (1 thread), %.0f GOP/s (2 threads)\n", isa_name(isa),
                g_limits.int8_peak[{static_cast<int>(isa), 1}] / 1e9,
                g_limits.int8_peak[{static_cast<int>(isa), 2}] / 1e9);
  }
  std::fflush(stdout);
}

}  // namespace
}  // namespace bitnet::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  bitnet::kernels::measure_limits();
  bitnet::kernels::register_all();
  bitnet::kernels::RatioReporter reporter(isatty(STDOUT_FILENO) != 0);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
