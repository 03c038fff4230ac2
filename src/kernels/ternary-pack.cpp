// Packing of ternary matrices into the kernel layouts of kernel-types.h (load-time work).
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/ternary-common.h"
#include "kernels/ternary-matmul.h"

namespace bitnet::kernels {

double layout_bits_per_weight(TernaryLayout layout, int64_t k) {
  return 8.0 * static_cast<double>(common::group_bytes(layout, k)) /
         static_cast<double>(kGroupRows * k);
}

size_t packed_group_bytes(TernaryLayout layout, int64_t k) {
  return common::group_bytes(layout, k);
}

TernaryMatrix::TernaryMatrix(TernaryLayout layout, int64_t n, int64_t k)
    : layout_(layout), n_(n), k_(k), group_bytes_(common::group_bytes(layout, k)) {
  if (n < 1 || k < kKMultiple || k % kKMultiple != 0) {
    throw std::invalid_argument("ternary matrix " + std::to_string(n) + " x " + std::to_string(k) +
                                ": need N >= 1 and K a positive multiple of 16");
  }
  const int64_t groups = (n + kGroupRows - 1) / kGroupRows;
  data_ = AlignedBuffer<uint8_t>(static_cast<size_t>(groups) * group_bytes_);
  scale_ = AlignedBuffer<float>(static_cast<size_t>(groups) * kGroupRows);
}

TernaryMatrixView TernaryMatrix::view() const {
  return TernaryMatrixView{layout_, n_, k_, group_bytes_, data_.data(), scale_.data()};
}

Int8Matrix::Int8Matrix(int64_t n, int64_t k) : n_(n), k_(k) {
  if (n < 1 || k < kI8KMultiple || k % kI8KMultiple != 0 || k > kI8MaxK) {
    throw std::invalid_argument("int8 matrix " + std::to_string(n) + " x " + std::to_string(k) +
                                ": need N >= 1 and K a positive multiple of 4 up to " +
                                std::to_string(kI8MaxK));
  }
  const auto rows = static_cast<size_t>((n + kGroupRows - 1) / kGroupRows * kGroupRows);
  data_ = AlignedBuffer<int8_t>(rows * static_cast<size_t>(k));
  scale_ = AlignedBuffer<float>(rows);
  sum_ = AlignedBuffer<int32_t>(rows);
}

Int8MatrixView Int8Matrix::view() const {
  return Int8MatrixView{
      n_, k_, static_cast<size_t>(kGroupRows * k_), data_.data(), scale_.data(), sum_.data()};
}

void Int8Matrix::set_row(int64_t row, const float* x) {
  // The active kernels' activation quantizer (the same codes on every ISA), then -128 - only NaN
  // gives it - raised to -127, and the row's four-byte runs placed in its group's chunks.
  thread_local std::vector<int8_t> q;
  q.resize(static_cast<size_t>(k_));
  float s = 0;
  int32_t total = 0;
  active_kernels().quantize(x, k_, 1, k_, q.data(), k_, &s, &total);
  int32_t raised = 0;
  for (int8_t& c : q) {
    raised += c == -128;
    c = c == -128 ? int8_t{-127} : c;
  }
  int8_t* grp = data_.data() + static_cast<size_t>(row / kGroupRows) * kGroupRows * k_;
  const int64_t r = row % kGroupRows;
  for (int64_t c = 0; c < k_ / kI8KMultiple; ++c) {
    std::memcpy(grp + c * kChunkBytes + 4 * r, q.data() + kI8KMultiple * c, kI8KMultiple);
  }
  scale_.data()[row] = 1.0f / s;
  sum_.data()[row] = total + raised;
}

TernaryMatrix pack_ternary(TernaryLayout layout, const int8_t* w, int64_t n, int64_t k,
                           const float* row_scale) {
  TernaryMatrix out(layout, n, k);
  const TernaryMatrixView v = out.view();
  // Code of W[row][kk], with zero weights (code 1) in the padding rows.
  auto code = [&](int64_t row, int64_t kk) -> uint8_t {
    if (row >= n) return 1;
    const int8_t x = w[row * k + kk];
    if (x < -1 || x > 1) {
      throw std::invalid_argument("ternary matrix " + std::to_string(n) + " x " +
                                  std::to_string(k) + ": value " + std::to_string(x) + " at row " +
                                  std::to_string(row) + ", column " + std::to_string(kk) +
                                  " is not in {-1, 0, +1}");
    }
    return static_cast<uint8_t>(x + 1);
  };
  const int64_t n5 = common::t1_chunks5(k);
  for (int64_t g = 0; g < v.groups(); ++g) {
    uint8_t* grp = out.data() + static_cast<size_t>(g) * v.group_bytes;
    for (int r = 0; r < kGroupRows; ++r) {
      const int64_t row = g * kGroupRows + r;
      out.row_scale()[row] = row < n ? row_scale[row] : 0.0f;
      if (layout == TernaryLayout::T2) {
        for (int64_t c = 0; c < k / 16; ++c) {
          for (int j = 0; j < 4; ++j) {
            uint8_t byte = 0;
            for (int s = 0; s < 4; ++s)
              byte |= static_cast<uint8_t>(code(row, 16 * c + 4 * s + j) << (2 * s));
            grp[c * kChunkBytes + 4 * r + j] = byte;
          }
        }
      } else {
        const int64_t total = n5 + common::t1_chunks4(k);
        for (int64_t c = 0; c < total; ++c) {
          const bool five = c < n5;
          const int64_t base = five ? 20 * c : 20 * n5 + 16 * (c - n5);
          for (int j = 0; j < 4; ++j) {
            uint8_t digits[5] = {0, 0, 0, 0, 0};
            for (int d = 0; d < (five ? 5 : 4); ++d) digits[d] = code(row, base + 4 * d + j);
            grp[c * kChunkBytes + 4 * r + j] = common::t1_encode(digits);
          }
        }
      }
    }
  }
  return out;
}

}  // namespace bitnet::kernels
