// Tensor encodings of GGUF files, on raw bytes (no file I/O): row dequantizers for the float and
// ggml block types the engine reads, encoders for the writer / converter / model generator, and the
// ternary extraction the loader uses to turn any ternary encoding into W[n][k] codes plus one scale
// per row (the input of kernels::pack_ternary).
//
// Layouts (SPEC.md "Weight encodings in GGUF"; byte sizes come from ggml-types.h):
//   Q8_0  32 elements, 34 bytes: fp16 d, int8 q[32];                  x = q * d
//   Q6_K  256 elements, 210 bytes: ql[128], qh[64], int8 scales[16], fp16 d;
//         x = d * scales[e / 16] * (q - 32), q a 6-bit field (see tensor-codec.cpp)
//   TQ2_0 256 elements, 66 bytes: qs[64], fp16 d; 2-bit fields hold t + 1
//   TQ1_0 256 elements, 54 bytes: qs[48], qh[4], fp16 d; five (four in qh) base-3 trits per byte
//   I2_S  whole tensor: n*k/4 bytes of 2-bit codes in blocks of 128 (0 -> -1, 1 -> 0, 2 -> +1),
//         then a 32-byte trailer whose bytes 0..3 are the f32 per-tensor scale
// All multi-byte values are little-endian; src/dst pointers need no alignment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bitnet::formats {

// dst[0..n) = the values of one row stored as `type_id` at src (ggml_tensor_bytes(type_id, {n})
// bytes). Supports F32, F16, BF16, Q8_0, Q6_K, TQ2_0 and TQ1_0; n must be a non-negative multiple
// of the type's block. A TQ2_0 field of 3 decodes as 2d, as in ggml. Throws std::invalid_argument
// naming the type for any other type (I2_S has a per-tensor trailer, not rows: use decode_ternary)
// or a bad n.
void dequantize_row(uint32_t type_id, const uint8_t* src, float* dst, int64_t n);

// Encodes one row of n floats as F32, F16, BF16 (round to nearest even), Q8_0 or Q6_K into
// ggml_tensor_bytes(type_id, {n}) bytes at dst. Q8_0 matches ggml's reference quantizer (d =
// amax / 127, q = round half away from zero). Q6_K picks one scale per 16 elements (amax / 31,
// rounded up onto the block's 8-bit scale grid so no value clips); its error is at most about
// 1/62 of the block's max |x|. Q8_0 and Q6_K throw std::invalid_argument on a non-finite input.
// Ternary types have their own encoders below.
void quantize_row(uint32_t type_id, const float* src, uint8_t* dst, int64_t n);

// Encodes one row of n ternary codes (values in {-1, 0, +1}, n a multiple of 256) as TQ2_0 or
// TQ1_0, block b carrying the scale block_d[b] (stored as fp16, rounded to nearest even). Throws
// std::invalid_argument on a non-ternary code (naming its index) or a scale that is not finite
// as fp16.
void encode_ternary_row(uint32_t type_id, const int8_t* codes, const float* block_d, uint8_t* dst,
                        int64_t n);

// Encodes W[n_rows][k] ternary codes with one per-tensor scale as the inverse of decode_ternary:
// I2_S (scale as f32 in the trailer, trailer bytes 4..31 zero), TQ2_0 / TQ1_0 (every block's d =
// scale as fp16) or F32 / F16 / BF16 (the value t * scale rounded to the type). dst_bytes must be
// ggml_tensor_bytes(type_id, {k, n_rows}). Throws std::invalid_argument on a non-ternary code, a
// negative or non-finite scale (or one that overflows the storage type), a shape the type cannot
// hold, or a wrong dst_bytes. With scale 0 a float type cannot keep the codes (all decode to 0).
void encode_ternary(uint32_t type_id, const int8_t* codes, int64_t n_rows, int64_t k, float scale,
                    uint8_t* dst, size_t dst_bytes);

// Extracts the ternary codes and per-row scales of a weight tensor with ggml dims {k, n_rows}
// (ne0 = k, the input dim, contiguous) from its bytes:
//   I2_S         scale = the f32 in the trailer, the same for every row; code 3 is an error.
//   TQ2_0, TQ1_0 scale = the block d. Every block of a row holding a nonzero weight must carry the
//                same d; a row with no nonzero weight takes its first block's d. A TQ2_0 field
//                of 3 (value 2d) is an error.
//   F32, F16, BF16 (values t * scale with the scale folded in) scale = max |value| of the whole
//                tensor, for every row; each value must be exactly 0 or +-scale (no rounding).
//                An all-zero tensor gets scale 0.
// w_out is [n_rows][k], row_scale_out [n_rows]. `bytes` must equal ggml_tensor_bytes(type_id,
// {k, n_rows}); it is checked before anything is read. Throws std::invalid_argument naming
// tensor_name (plus the row, column and value where one is at fault) on any violation, and on a
// non-finite scale.
void decode_ternary(uint32_t type_id, const uint8_t* data, size_t bytes, int64_t n_rows, int64_t k,
                    std::string_view tensor_name, int8_t* w_out, float* row_scale_out);

}  // namespace bitnet::formats
