#include "core/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"

namespace seekserve {
namespace {

constexpr int kQ8Block = 32;
constexpr int kQ4Block = 32;
constexpr int kQ4KBlock = 256;

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

void store_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, sizeof(v));
}

// Truncates a float that should already lie in [lo, hi] to int, clamping first: inf/NaN inputs
// (NaN gives 0) must not reach the undefined behaviour of an out-of-range cast.
int clamp_to_int(float v, int lo, int hi) {
  if (!(v >= static_cast<float>(lo))) return std::isnan(v) ? 0 : lo;
  if (v > static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

void check_row(DType type, int64_t n) {
  SEEK_CHECK(n >= 0, "row length must not be negative");
  SEEK_CHECK(static_cast<uint64_t>(n) % dtype_info(type).block_elements == 0,
             "row length must be a whole number of blocks");
}

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K super-block.
void q4k_scale_min(const uint8_t* scales, int s, int* sc, int* m) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *m = scales[s + 4] & 63;
  } else {
    *sc = (scales[s + 4] & 15) | ((scales[s - 4] >> 6) << 4);
    *m = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQ8Block; ++b, src += 34, dst += kQ8Block) {
    float d = f16_to_f32(load_u16(src));
    const int8_t* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < kQ8Block; ++j) dst[j] = d * static_cast<float>(q[j]);
  }
}

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQ4Block; ++b, src += 18, dst += kQ4Block) {
    float d = f16_to_f32(load_u16(src));
    const uint8_t* qs = src + 2;
    for (int j = 0; j < kQ4Block / 2; ++j) {
      dst[j] = d * static_cast<float>((qs[j] & 15) - 8);
      dst[j + kQ4Block / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

void dequantize_q4_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQ4KBlock; ++b, src += 144, dst += kQ4KBlock) {
    float d = f16_to_f32(load_u16(src));
    float dmin = f16_to_f32(load_u16(src + 2));
    const uint8_t* scales = src + 4;
    const uint8_t* qs = src + 16;
    for (int pair = 0; pair < 4; ++pair) {
      int sc_lo, m_lo, sc_hi, m_hi;
      q4k_scale_min(scales, 2 * pair, &sc_lo, &m_lo);
      q4k_scale_min(scales, 2 * pair + 1, &sc_hi, &m_hi);
      float d_lo = d * static_cast<float>(sc_lo), min_lo = dmin * static_cast<float>(m_lo);
      float d_hi = d * static_cast<float>(sc_hi), min_hi = dmin * static_cast<float>(m_hi);
      const uint8_t* q = qs + 32 * pair;
      float* out = dst + 64 * pair;
      for (int j = 0; j < 32; ++j) {
        out[j] = d_lo * static_cast<float>(q[j] & 15) - min_lo;
        out[j + 32] = d_hi * static_cast<float>(q[j] >> 4) - min_hi;
      }
    }
  }
}

void quantize_q8_0(const float* src, uint8_t* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQ8Block; ++b, src += kQ8Block, dst += 34) {
    float amax = 0.0f;
    for (int j = 0; j < kQ8Block; ++j) amax = std::fmax(amax, std::fabs(src[j]));
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(dst, f32_to_f16(d));
    int8_t* q = reinterpret_cast<int8_t*>(dst + 2);
    for (int j = 0; j < kQ8Block; ++j) {
      q[j] = static_cast<int8_t>(clamp_to_int(std::round(src[j] * id), -127, 127));
    }
  }
}

void quantize_q4_0(const float* src, uint8_t* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQ4Block; ++b, src += kQ4Block, dst += 18) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQ4Block; ++j) {
      if (std::fabs(src[j]) > amax) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    float d = max / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(dst, f32_to_f16(d));
    uint8_t* qs = dst + 2;
    for (int j = 0; j < kQ4Block / 2; ++j) {
      // floor(v + 8.5) for the non-negative range, as llama.cpp's truncating cast does.
      int lo = clamp_to_int(src[j] * id + 8.5f, 0, 15);
      int hi = clamp_to_int(src[j + kQ4Block / 2] * id + 8.5f, 0, 15);
      qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

}  // namespace

bool can_dequantize(DType type) {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kF8E4M3:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_K:
      return true;
    default:
      return false;
  }
}

bool can_quantize(DType type) {
  return can_dequantize(type) && type != DType::kQ4_K;
}

void dequantize_row(DType type, const uint8_t* src, float* dst, int64_t n) {
  SEEK_CHECK(can_dequantize(type), "dequantize_row: unsupported type");
  check_row(type, n);
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load_u16(src + 2 * i));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(src + 2 * i));
      break;
    case DType::kF8E4M3:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp8_e4m3_to_f32(src[i]);
      break;
    case DType::kQ8_0:
      dequantize_q8_0(src, dst, n);
      break;
    case DType::kQ4_0:
      dequantize_q4_0(src, dst, n);
      break;
    case DType::kQ4_K:
      dequantize_q4_k(src, dst, n);
      break;
    default:
      break;
  }
}

void quantize_row(DType type, const float* src, uint8_t* dst, int64_t n) {
  SEEK_CHECK(can_quantize(type), "quantize_row: unsupported type");
  check_row(type, n);
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) store_u16(dst + 2 * i, f32_to_f16(src[i]));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) store_u16(dst + 2 * i, f32_to_bf16(src[i]));
      break;
    case DType::kF8E4M3:
      for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_fp8_e4m3(src[i]);
      break;
    case DType::kQ8_0:
      quantize_q8_0(src, dst, n);
      break;
    case DType::kQ4_0:
      quantize_q4_0(src, dst, n);
      break;
    default:
      break;
  }
}

void quantize_fp8_blocks(const float* src, int64_t rows, int64_t cols, uint8_t* dst,
                         float* scale_inv) {
  SEEK_CHECK(rows >= 0 && cols >= 0, "fp8 blocks: non-negative shape");
  const int64_t block_rows = (rows + kFp8BlockSize - 1) / kFp8BlockSize;
  const int64_t block_cols = (cols + kFp8BlockSize - 1) / kFp8BlockSize;
  for (int64_t bi = 0; bi < block_rows; ++bi) {
    const int64_t r0 = bi * kFp8BlockSize, r1 = std::min(rows, r0 + kFp8BlockSize);
    for (int64_t bj = 0; bj < block_cols; ++bj) {
      const int64_t c0 = bj * kFp8BlockSize, c1 = std::min(cols, c0 + kFp8BlockSize);
      float amax = 0.0f;
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t j = c0; j < c1; ++j) amax = std::max(amax, std::fabs(src[i * cols + j]));
      SEEK_CHECK(std::isfinite(amax), "fp8 blocks: finite input values");
      float scale = amax / 448.0f;
      if (!(scale > 0.0f)) scale = 1.0f;  // all zeros (or amax / 448 underflows): codes are 0
      scale_inv[bi * block_cols + bj] = scale;
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t j = c0; j < c1; ++j)
          dst[i * cols + j] = f32_to_fp8_e4m3(src[i * cols + j] / scale);
    }
  }
}

}  // namespace seekserve
