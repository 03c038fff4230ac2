// Public entry points of the ternary kernels: packing, the per-ISA kernel tables chosen once at
// start-up, and the threaded matmul driver. Layouts and the kernel contract: kernel-types.h.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/aligned-buffer.h"
#include "core/cpu-features.h"
#include "core/thread-pool.h"
#include "kernels/kernel-types.h"

namespace bitnet::kernels {

const char* isa_name(Isa isa);  // "scalar", "avx2", "avx512", "neon", "neondot", "avxvnni", "amx"
const char* layout_name(TernaryLayout);  // "t2", "t1"
double layout_bits_per_weight(TernaryLayout layout, int64_t k);
size_t packed_group_bytes(TernaryLayout layout, int64_t k);  // bytes per group of 16 rows

// Parses a BITNET_FORCE_ISA value; throws std::invalid_argument naming the accepted values.
Isa parse_isa(std::string_view name);

// The table for `isa`, or nullptr when that variant is not built into this binary or the CPU
// lacks the instructions it needs.
const KernelTable* kernels_for(Isa isa);
std::vector<Isa> available_isas();  // usable on this CPU, scalar first

// The table used by the engine, chosen once: BITNET_FORCE_ISA if set (throws std::runtime_error
// if that ISA is unknown, not built or not supported by this CPU), else the fastest usable one.
const KernelTable& active_kernels();
// Selection logic behind active_kernels(), exposed for tests. force may be null or empty.
const KernelTable& select_kernels(const char* force);

// The layout to repack weights into for `table` on this CPU: table.preferred_layout, except
// where one microarchitecture of the ISA is known to run the other layout faster (see
// dispatch.cpp). The same on every call.
TernaryLayout preferred_layout(const KernelTable& table);
// The rule itself, for tests: the CPU as its features describe it.
TernaryLayout preferred_layout(const KernelTable& table, const CpuFeatures& cpu);

// Owning packed matrix.
class TernaryMatrix {
 public:
  TernaryMatrix() = default;
  TernaryMatrix(TernaryLayout layout, int64_t n, int64_t k);  // zero weights, zero scales
  TernaryMatrixView view() const;
  uint8_t* data() { return data_.data(); }
  float* row_scale() { return scale_.data(); }
  size_t bytes() const { return data_.size() + scale_.size() * sizeof(float); }

 private:
  TernaryLayout layout_ = TernaryLayout::T2;
  int64_t n_ = 0, k_ = 0;
  size_t group_bytes_ = 0;
  AlignedBuffer<uint8_t> data_;
  AlignedBuffer<float> scale_;
};

// Owning int8 matrix in the layout of Int8MatrixView (kernel-types.h).
class Int8Matrix {
 public:
  Int8Matrix() = default;
  // Zero rows; throws std::invalid_argument unless n >= 1 and k is a positive multiple of 4 up to
  // kI8MaxK.
  Int8Matrix(int64_t n, int64_t k);
  Int8MatrixView view() const;
  // Quantizes row `row` from k floats, per row as the activations are (QuantizeFn): s = 127 /
  // max(max|x|, 1e-5), code = clamp(round_half_even(x * s), -127, 127) (NaN -> -127), row_scale
  // = 1 / s. Rows may be set from different threads at once, each row by one.
  void set_row(int64_t row, const float* x);
  size_t bytes() const {
    return data_.size() + scale_.size() * sizeof(float) + sum_.size() * sizeof(int32_t);
  }

 private:
  int64_t n_ = 0, k_ = 0;
  AlignedBuffer<int8_t> data_;
  AlignedBuffer<float> scale_;
  AlignedBuffer<int32_t> sum_;
};

// Packs W[n][k] (row-major, values in {-1, 0, +1}) with one scale per row. Throws
// std::invalid_argument if k is not a positive multiple of 16, n < 1, or a value is not ternary
// (naming the row and column).
TernaryMatrix pack_ternary(TernaryLayout layout, const int8_t* w, int64_t n, int64_t k,
                           const float* row_scale);
// Scalar decode of a packed matrix back to W[n][k]: the oracle for the packing tests.
void unpack_ternary(const TernaryMatrixView& w, int8_t* out);

// Dense scalar oracle: y[m][n] = epilogue(sum_k w[n][k] * q[m][k]) on an unpacked int8 matrix.
void dense_matmul_ref(const int8_t* w, const float* row_scale, int64_t n, int64_t k,
                      const QuantizedRows& a, float* y, int64_t ldy);

// Splits the row groups of w over the pool and runs table.matmul for them.
// (int8_matmul: the same for table.matmul_i8.)
void ternary_matmul(ThreadPool& pool, const KernelTable& table, const TernaryMatrixView& w,
                    const QuantizedRows& a, float* y, int64_t ldy);
void int8_matmul(ThreadPool& pool, const KernelTable& table, const Int8MatrixView& w,
                 const QuantizedRows& a, float* y, int64_t ldy);

// Quantizes m rows over the pool (rows split between threads).
void quantize_rows(ThreadPool& pool, const KernelTable& table, const float* x, int64_t ldx,
                   int64_t m, int64_t k, int8_t* q, int64_t ldq, float* scale, int32_t* sum);

}  // namespace bitnet::kernels
