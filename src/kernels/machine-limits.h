// This machine's own limits, measured in the same process as the kernels they are compared with:
// the read bandwidth (roofline of memory-bound decode) and the int8 multiply-add peak (roofline of
// compute-bound prefill).
#pragma once

#include <cstddef>

#include "core/aligned-buffer.h"
#include "core/thread-pool.h"
#include "kernels/kernel-types.h"

namespace bitnet::kernels {

struct BandwidthResult {
  double bytes_per_second = 0;  // median over the repetitions
  size_t buffer_bytes = 0;
  int threads = 0;
};

// A reusable probe: the buffer is allocated and faulted in once, so the probe can be repeated
// right next to the measurement it anchors (bandwidth on a shared machine drifts over seconds).
class BandwidthProbe {
 public:
  explicit BandwidthProbe(size_t buffer_bytes = size_t{256} << 20);
  BandwidthResult measure(ThreadPool& pool, const KernelTable& table, int reps = 5);

 private:
  AlignedBuffer<uint8_t> buf_;
};

// One-shot BandwidthProbe. Every thread of the pool streams its contiguous share of a buffer much
// larger than the last-level cache through table.stream_read (the ISA's widest loads, no other
// work); median of `reps` passes after one warm-up pass that also faults the pages in.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, const KernelTable& table,
                                       size_t buffer_bytes = size_t{256} << 20, int reps = 5);

// Integer operations per second (2 per multiply-add) with every thread of the pool running the
// table's int8_peak loop; median of `reps` runs of about `seconds` each.
double measure_int8_peak(ThreadPool& pool, const KernelTable& table, double seconds = 0.1,
                         int reps = 3);

}  // namespace bitnet::kernels
