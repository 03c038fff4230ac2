// Ternary encodings: TQ2_0 and TQ1_0 blocks, bitnet.cpp's I2_S tensors, and ternary weights held
// as plain floats with the scale folded in. Layouts: tensor-codec.h and the reference README.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/ggml-types.h"
#include "formats/tensor-codec-internal.h"
#include "formats/tensor-codec.h"

namespace bitnet::formats {

using detail::kTq1Bytes;
using detail::kTq2Bytes;
using detail::kTqBlock;
using detail::load_f32;
using detail::store_f32;
using detail::store_u16;

namespace {

constexpr uint8_t kPow3[6] = {1, 3, 9, 27, 81, 243};

// A TQ1_0 byte stores v = sum t'_n 3^(4-n) (t' = t + 1, digit 0 most significant) as
// ceil(v * 256 / 243): a fixed-point fraction v / 243 of 256. Multiplying by 3^n (mod 256) drops
// the leading n digits; the next one is then the integer part of 3 * fraction.
int8_t tq1_0_trit(uint8_t byte, int n) {
  const auto shifted = static_cast<uint8_t>(byte * kPow3[n]);
  return static_cast<int8_t>(((shifted * 3) >> 8) - 1);
}

uint8_t tq1_0_pack(const int8_t* t, int count, int stride) {
  int v = 0;
  for (int n = 0; n < count; ++n) v = v * 3 + (t[n * stride] + 1);
  for (int n = count; n < 5; ++n) v *= 3;  // qh bytes hold 4 trits in the leading digits
  return static_cast<uint8_t>((v * 256 + 242) / 243);
}

}  // namespace

namespace detail {

// TQ2_0: element 128h + 32l + m is bits 2l..2l+1 of qs[32h + m], holding t + 1.
void tq2_0_block_codes(const uint8_t* block, int8_t* t) {
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 4; ++l) {
      for (int m = 0; m < 32; ++m) {
        t[128 * h + 32 * l + m] = static_cast<int8_t>(((block[32 * h + m] >> (2 * l)) & 3) - 1);
      }
    }
  }
}

// TQ1_0: qs[m] (m < 32) holds elements 32n + m; qs[32 + m] (m < 16) holds 160 + 16n + m;
// qh[j] holds 240 + 4n + j (n = 0..3).
void tq1_0_block_codes(const uint8_t* block, int8_t* t) {
  for (int n = 0; n < 5; ++n) {
    for (int m = 0; m < 32; ++m) t[32 * n + m] = tq1_0_trit(block[m], n);
    for (int m = 0; m < 16; ++m) t[160 + 16 * n + m] = tq1_0_trit(block[32 + m], n);
  }
  for (int n = 0; n < 4; ++n) {
    for (int j = 0; j < 4; ++j) t[240 + 4 * n + j] = tq1_0_trit(block[48 + j], n);
  }
}

}  // namespace detail

namespace {

constexpr uint32_t id(GgmlType t) {
  return static_cast<uint32_t>(t);
}

std::string format_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

void tq2_0_encode_block(const int8_t* t, uint16_t d, uint8_t* block) {
  for (int h = 0; h < 2; ++h) {
    for (int m = 0; m < 32; ++m) {
      int byte = 0;
      for (int l = 0; l < 4; ++l) byte |= (t[128 * h + 32 * l + m] + 1) << (2 * l);
      block[32 * h + m] = static_cast<uint8_t>(byte);
    }
  }
  store_u16(block + 64, d);
}

void tq1_0_encode_block(const int8_t* t, uint16_t d, uint8_t* block) {
  for (int m = 0; m < 32; ++m) block[m] = tq1_0_pack(t + m, 5, 32);
  for (int m = 0; m < 16; ++m) block[32 + m] = tq1_0_pack(t + 160 + m, 5, 16);
  for (int j = 0; j < 4; ++j) block[48 + j] = tq1_0_pack(t + 240 + j, 4, 4);
  store_u16(block + 52, d);
}

// I2_S (x86 layout): the flattened tensor in blocks of 128; element r of a block is the 2-bit
// field at bits 7-2(r/32)..6-2(r/32) of the block's byte r % 32.
constexpr int64_t kI2Block = 128;
constexpr size_t kI2BlockBytes = 32;

int i2_s_shift(int64_t r) {
  return static_cast<int>(6 - 2 * (r / 32));
}

bool is_tq(uint32_t type_id) {
  return type_id == id(GgmlType::TQ2_0) || type_id == id(GgmlType::TQ1_0);
}
bool is_float(uint32_t type_id) {
  return type_id == id(GgmlType::F32) || type_id == id(GgmlType::F16) ||
         type_id == id(GgmlType::BF16);
}

// "tensor 'name' (TQ2_0, k 256 x 64 rows)": the prefix of every decode_ternary error.
std::string describe(std::string_view name, uint32_t type_id, int64_t n_rows, int64_t k) {
  return "tensor '" + std::string(name) + "' (" + ggml_type_name(type_id) + ", k " +
         std::to_string(k) + " x " + std::to_string(n_rows) + " rows)";
}

size_t expected_bytes(uint32_t type_id, int64_t n_rows, int64_t k, const std::string& what) {
  if (n_rows < 1 || k < 1) {
    throw std::invalid_argument(what + ": needs at least one row and one column");
  }
  const int64_t dims[2] = {k, n_rows};
  try {
    return ggml_tensor_bytes(type_id, dims, 2);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(what + ": " + e.what());
  }
}

void decode_i2_s(const uint8_t* data, int64_t n_rows, int64_t k, const std::string& what, int8_t* w,
                 float* row_scale) {
  const int64_t elems = n_rows * k;
  const float scale = load_f32(data + elems / 4);
  if (!std::isfinite(scale)) {
    throw std::invalid_argument(what + ": the scale in the I2_S trailer is " + format_float(scale));
  }
  for (int64_t b = 0; b < elems / kI2Block; ++b) {
    const uint8_t* blk = data + static_cast<size_t>(b) * kI2BlockBytes;
    int8_t* out = w + b * kI2Block;
    uint8_t code3 = 0;  // nonzero once a field holds 3; located after the branch-free pass
    for (int64_t g = 0; g < 4; ++g) {
      for (int64_t i = 0; i < 32; ++i) {
        const int code = (blk[i] >> i2_s_shift(32 * g)) & 3;
        code3 = static_cast<uint8_t>(code3 | (code == 3));
        out[32 * g + i] = static_cast<int8_t>(code - 1);
      }
    }
    if (code3 == 0) continue;
    for (int64_t r = 0; r < kI2Block; ++r) {
      if (out[r] != 2) continue;
      const int64_t j = b * kI2Block + r;
      throw std::invalid_argument(what + ": I2_S code 3 (unused) at row " + std::to_string(j / k) +
                                  ", column " + std::to_string(j % k));
    }
  }
  for (int64_t r = 0; r < n_rows; ++r) row_scale[r] = scale;
}

void decode_tq(uint32_t type_id, const uint8_t* data, int64_t n_rows, int64_t k,
               const std::string& what, int8_t* w, float* row_scale) {
  const bool tq2 = type_id == id(GgmlType::TQ2_0);
  const size_t block_bytes = tq2 ? kTq2Bytes : kTq1Bytes;
  const int64_t blocks_per_row = k / kTqBlock;
  for (int64_t r = 0; r < n_rows; ++r) {
    bool have_d = false;
    float row_d = 0.0f;
    int64_t d_block = 0;
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      const uint8_t* blk = data + static_cast<size_t>(r * blocks_per_row + b) * block_bytes;
      int8_t* t = w + r * k + b * kTqBlock;
      (tq2 ? detail::tq2_0_block_codes : detail::tq1_0_block_codes)(blk, t);
      const float d = tq2 ? detail::tq2_0_block_d(blk) : detail::tq1_0_block_d(blk);
      const auto where = [&] {
        return " at row " + std::to_string(r) + ", block " + std::to_string(b) + " (columns " +
               std::to_string(b * kTqBlock) + ".." + std::to_string(b * kTqBlock + kTqBlock - 1) +
               ")";
      };
      if (!std::isfinite(d)) {
        throw std::invalid_argument(what + ": block scale d = " + format_float(d) + where());
      }
      bool nonzero = false;
      for (int64_t j = 0; j < kTqBlock; ++j) {
        if (t[j] > 1) {
          throw std::invalid_argument(what + ": TQ2_0 field 3 (value 2d, not ternary) at row " +
                                      std::to_string(r) + ", column " +
                                      std::to_string(b * kTqBlock + j));
        }
        nonzero = nonzero || t[j] != 0;
      }
      if (b == 0) row_d = d;
      if (!nonzero) continue;
      if (!have_d) {
        row_d = d;
        d_block = b;
        have_d = true;
      } else if (d != row_d) {
        throw std::invalid_argument(what + ": block scale d = " + format_float(d) + where() +
                                    " differs from d = " + format_float(row_d) + " of block " +
                                    std::to_string(d_block) +
                                    "; ternary weights need one scale per row");
      }
    }
    row_scale[r] = row_d;
  }
}

// Ternary values t * scale in a float type with storage bits U. For IEEE formats the magnitude
// bits order like the magnitudes, so max |value| and the comparisons run on the raw bits: exact,
// with no rounding, and +-0 both give code 0.
template <class U>
void decode_folded_float(const uint8_t* data, int64_t n_rows, int64_t k, const std::string& what,
                         float (*to_f32)(U), U inf_bits, int8_t* w, float* row_scale) {
  constexpr U kSign = static_cast<U>(U{1} << (8 * sizeof(U) - 1));
  constexpr U kMagnitude = static_cast<U>(~kSign);
  const int64_t elems = n_rows * k;
  const auto load = [data](int64_t i) {
    U u;
    std::memcpy(&u, data + static_cast<size_t>(i) * sizeof(U), sizeof u);
    return u;
  };
  const auto where = [k](int64_t i) {
    return " at row " + std::to_string(i / k) + ", column " + std::to_string(i % k);
  };
  U max_mag = 0;
  for (int64_t i = 0; i < elems; ++i)
    max_mag = std::max(max_mag, static_cast<U>(load(i) & kMagnitude));
  if (max_mag >= inf_bits) {  // inf or NaN: report the first one
    int64_t i = 0;
    while ((load(i) & kMagnitude) != max_mag) ++i;
    throw std::invalid_argument(what + ": value " + format_float(to_f32(load(i))) + where(i) +
                                " is not finite");
  }
  const U pos = max_mag;
  const U neg = static_cast<U>(max_mag | kSign);
  bool bad = false;  // branch-free pass (random codes defeat branch prediction), then locate
  for (int64_t i = 0; i < elems; ++i) {
    const U u = load(i);
    // pos may be 0 (an all-zero tensor): zero wins over the sign tests.
    const bool is_zero = (u & kMagnitude) == 0;
    const bool is_pos = !is_zero && u == pos, is_neg = !is_zero && u == neg;
    w[i] = static_cast<int8_t>(static_cast<int>(is_pos) - static_cast<int>(is_neg));
    bad = bad || !(is_pos || is_neg || is_zero);
  }
  for (int64_t i = 0; bad && i < elems; ++i) {
    const U u = load(i);
    if ((u & kMagnitude) == 0 || u == pos || u == neg) continue;
    throw std::invalid_argument(what + ": value " + format_float(to_f32(u)) + where(i) +
                                " is not 0 or +-" + format_float(to_f32(pos)) +
                                " (the tensor's max |value|), so the tensor is not ternary");
  }
  for (int64_t r = 0; r < n_rows; ++r) row_scale[r] = to_f32(pos);
}

void check_codes(const int8_t* codes, int64_t n, int64_t k, const std::string& what) {
  for (int64_t i = 0; i < n; ++i) {
    if (codes[i] < -1 || codes[i] > 1) {
      throw std::invalid_argument(what + ": code " + std::to_string(codes[i]) + " at row " +
                                  std::to_string(i / k) + ", column " + std::to_string(i % k) +
                                  " is not -1, 0 or +1");
    }
  }
}

}  // namespace

void encode_ternary_row(uint32_t type_id, const int8_t* codes, const float* block_d, uint8_t* dst,
                        int64_t n) {
  const std::string what = "encode_ternary_row (" + ggml_type_name(type_id) + ")";
  if (!is_tq(type_id)) {
    throw std::invalid_argument(what + ": only TQ2_0 and TQ1_0 are encoded per row");
  }
  if (n < 0 || n % kTqBlock != 0) {
    throw std::invalid_argument(what + ": row length " + std::to_string(n) +
                                " is not a multiple of 256");
  }
  check_codes(codes, n, n, what);
  const bool tq2 = type_id == id(GgmlType::TQ2_0);
  for (int64_t b = 0; b < n / kTqBlock; ++b) {
    const uint16_t d = fp32_to_fp16(block_d[b]);
    if (!std::isfinite(fp16_to_fp32(d))) {
      throw std::invalid_argument(what + ": block " + std::to_string(b) + " scale " +
                                  format_float(block_d[b]) + " is not finite as fp16");
    }
    if (tq2) {
      tq2_0_encode_block(codes + b * kTqBlock, d, dst + static_cast<size_t>(b) * kTq2Bytes);
    } else {
      tq1_0_encode_block(codes + b * kTqBlock, d, dst + static_cast<size_t>(b) * kTq1Bytes);
    }
  }
}

void encode_ternary(uint32_t type_id, const int8_t* codes, int64_t n_rows, int64_t k, float scale,
                    uint8_t* dst, size_t dst_bytes) {
  const std::string what = "encode_ternary (" + ggml_type_name(type_id) + ", k " +
                           std::to_string(k) + " x " + std::to_string(n_rows) + " rows)";
  if (type_id != id(GgmlType::I2_S) && !is_tq(type_id) && !is_float(type_id)) {
    throw std::invalid_argument(what +
                                ": not a ternary encoding (I2_S, TQ2_0, TQ1_0, F32, F16, "
                                "BF16)");
  }
  if (!std::isfinite(scale) || scale < 0.0f) {
    throw std::invalid_argument(what + ": scale " + format_float(scale) +
                                " is not finite and non-negative");
  }
  const size_t want = expected_bytes(type_id, n_rows, k, what);
  if (dst_bytes != want) {
    throw std::invalid_argument(what + ": needs " + std::to_string(want) + " bytes, given " +
                                std::to_string(dst_bytes));
  }
  const float stored_scale = type_id == id(GgmlType::F16)    ? fp16_to_fp32(fp32_to_fp16(scale))
                             : type_id == id(GgmlType::BF16) ? bf16_to_fp32(fp32_to_bf16(scale))
                                                             : scale;
  if (!std::isfinite(stored_scale)) {
    throw std::invalid_argument(what + ": scale " + format_float(scale) + " overflows " +
                                ggml_type_name(type_id));
  }
  const int64_t elems = n_rows * k;
  check_codes(codes, elems, k, what);
  if (type_id == id(GgmlType::I2_S)) {
    std::memset(dst, 0, dst_bytes);
    for (int64_t j = 0; j < elems; ++j) {
      const int64_t r = j % kI2Block;
      uint8_t& byte =
          dst[static_cast<size_t>(j / kI2Block) * kI2BlockBytes + static_cast<size_t>(r % 32)];
      byte = static_cast<uint8_t>(byte | (codes[j] + 1) << i2_s_shift(r));
    }
    store_f32(dst + elems / 4, scale);
  } else if (is_tq(type_id)) {
    const std::vector<float> block_d(static_cast<size_t>(k / kTqBlock), scale);
    const size_t row_bytes = dst_bytes / static_cast<size_t>(n_rows);
    for (int64_t r = 0; r < n_rows; ++r) {
      encode_ternary_row(type_id, codes + r * k, block_d.data(),
                         dst + static_cast<size_t>(r) * row_bytes, k);
    }
  } else {
    std::vector<float> row(static_cast<size_t>(k));
    const size_t row_bytes = dst_bytes / static_cast<size_t>(n_rows);
    for (int64_t r = 0; r < n_rows; ++r) {
      for (int64_t c = 0; c < k; ++c)
        row[static_cast<size_t>(c)] = static_cast<float>(codes[r * k + c]) * scale;
      quantize_row(type_id, row.data(), dst + static_cast<size_t>(r) * row_bytes, k);
    }
  }
}

void decode_ternary(uint32_t type_id, const uint8_t* data, size_t bytes, int64_t n_rows, int64_t k,
                    std::string_view tensor_name, int8_t* w_out, float* row_scale_out) {
  const std::string what = describe(tensor_name, type_id, n_rows, k);
  if (type_id != id(GgmlType::I2_S) && !is_tq(type_id) && !is_float(type_id)) {
    throw std::invalid_argument(what +
                                ": this type holds no ternary weights (expected I2_S, "
                                "TQ2_0, TQ1_0, F32, F16 or BF16)");
  }
  const size_t want = expected_bytes(type_id, n_rows, k, what);
  if (bytes != want) {
    throw std::invalid_argument(what + ": expected " + std::to_string(want) + " bytes, found " +
                                std::to_string(bytes));
  }
  if (type_id == id(GgmlType::I2_S)) {
    decode_i2_s(data, n_rows, k, what, w_out, row_scale_out);
  } else if (is_tq(type_id)) {
    decode_tq(type_id, data, n_rows, k, what, w_out, row_scale_out);
  } else if (type_id == id(GgmlType::F32)) {
    decode_folded_float<uint32_t>(data, n_rows, k, what, bits_to_f32, 0x7f800000u, w_out,
                                  row_scale_out);
  } else {
    const bool f16 = type_id == id(GgmlType::F16);
    decode_folded_float<uint16_t>(data, n_rows, k, what, f16 ? fp16_to_fp32 : bf16_to_fp32,
                                  f16 ? 0x7c00 : 0x7f80, w_out, row_scale_out);
  }
}

}  // namespace bitnet::formats
