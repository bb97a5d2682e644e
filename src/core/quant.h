#pragma once
// Scalar reference (de)quantisation of one row of values: the oracle every fast kernel is tested
// against. Block layouts (all little-endian, f16 = IEEE half):
//   Q8_0: 32 values in 34 bytes = f16 d, i8 q[32]; x[j] = d * q[j]
//   Q4_0: 32 values in 18 bytes = f16 d, u8 qs[16];
//         x[j] = d * ((qs[j] & 15) - 8), x[j + 16] = d * ((qs[j] >> 4) - 8) for j < 16
//   Q4_K: 256 values in 144 bytes = f16 d, f16 dmin, u8 scales[12], u8 qs[128]; eight sub-blocks
//         of 32 with 6-bit scale sc[s] and 6-bit min m[s] packed in `scales`:
//           s < 4:  sc[s] = scales[s] & 63,  m[s] = scales[s + 4] & 63
//           s >= 4: sc[s] = (scales[s + 4] & 15) | ((scales[s - 4] >> 6) << 4)
//                   m[s]  = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4)
//         Sub-blocks 2k and 2k+1 share qs[32k .. 32k+31]: 2k the low nibbles, 2k+1 the high ones.
//         x = d * sc[s] * q - dmin * m[s].
// Plain types (F32, F16, BF16, F8E4M3) are one value per element.

#include <cstdint>

#include "core/dtype.h"

namespace seekserve {

// Types dequantize_row / quantize_row accept.
bool can_dequantize(DType type);  // F32, F16, BF16, F8E4M3, Q8_0, Q4_0, Q4_K
bool can_quantize(DType type);    // F32, F16, BF16, F8E4M3, Q8_0, Q4_0

// Decodes n values from `src` (dtype_bytes(type, n) bytes) into dst[n] f32.
// Preconditions (checked, abort on violation: they are bugs, not bad input): can_dequantize(type),
// n >= 0 and a whole number of blocks.
void dequantize_row(DType type, const uint8_t* src, float* dst, int64_t n);

// Encodes src[n] f32 into `dst` (dtype_bytes(type, n) bytes). Rounding follows llama.cpp's
// reference quantisers so files we write decode the same everywhere:
//   Q8_0: d = amax / 127, q = round-half-away(x / d).
//   Q4_0: d = max / -8 where max is the signed value of largest magnitude,
//         q = min(15, floor(x / d + 8.5)) (so the extreme maps to code 0 exactly).
// F16/BF16/F8E4M3 round to nearest even (F8E4M3 saturates at +-448).
// Preconditions as for dequantize_row, with can_quantize(type).
void quantize_row(DType type, const float* src, uint8_t* dst, int64_t n);

// DeepSeek's FP8 weight format: the side of the square blocks that share one scale.
inline constexpr int64_t kFp8BlockSize = 128;

// Quantises a [rows, cols] f32 matrix to FP8 E4M3 with one f32 multiplier per 128x128 block
// (edge blocks partial), as DeepSeek ships it: W[i][j] ~ fp8[i][j] * scale_inv[i/128][j/128].
//   scale_inv = amax(|block|) / 448; q = f32_to_fp8_e4m3(x / scale_inv) (round to nearest even,
//   saturating at +-448). A block of zeros (amax 0, or amax / 448 underflowing to 0) gets
//   scale_inv 1, so its codes decode to exactly 0; a non-finite value is a caller bug (checked).
// dst: [rows, cols] bytes; scale_inv: [ceil(rows/128), ceil(cols/128)] f32.
void quantize_fp8_blocks(const float* src, int64_t rows, int64_t cols, uint8_t* dst,
                         float* scale_inv);

}  // namespace seekserve
