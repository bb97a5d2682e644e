#include "core/quant.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

std::vector<float> dequantize(DType type, const std::vector<uint8_t>& bytes, int64_t n) {
  EXPECT_EQ(dtype_bytes(type, static_cast<uint64_t>(n)), bytes.size());
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(type, bytes.data(), out.data(), n);
  return out;
}

std::vector<uint8_t> quantize(DType type, const std::vector<float>& values) {
  std::vector<uint8_t> out(*dtype_bytes(type, values.size()));
  quantize_row(type, values.data(), out.data(), static_cast<int64_t>(values.size()));
  return out;
}

TEST(Quant, SupportedTypes) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3, DType::kQ8_0,
                  DType::kQ4_0, DType::kQ4_K}) {
    EXPECT_TRUE(can_dequantize(t)) << dtype_name(t);
    EXPECT_EQ(can_quantize(t), t != DType::kQ4_K) << dtype_name(t);
  }
  EXPECT_FALSE(can_dequantize(DType::kI32));
  EXPECT_FALSE(can_quantize(DType::kBool));
}

TEST(Quant, PlainTypesDecodeKnownCodes) {
  // f16: 1.0, -2.0, 65504 (max), smallest subnormal 2^-24.
  EXPECT_EQ(dequantize(DType::kF16, {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00}, 4),
            (std::vector<float>{1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)}));
  // bf16: 1.0, -0.5.
  EXPECT_EQ(dequantize(DType::kBF16, {0x80, 0x3f, 0x00, 0xbf}, 2),
            (std::vector<float>{1.0f, -0.5f}));
  // e4m3: 1.0, -448, 2^-9.
  EXPECT_EQ(dequantize(DType::kF8E4M3, {0x38, 0xfe, 0x01}, 3),
            (std::vector<float>{1.0f, -448.0f, std::ldexp(1.0f, -9)}));
  std::vector<uint8_t> f32(8);
  float pair[2] = {3.25f, -1e-30f};
  std::memcpy(f32.data(), pair, 8);
  EXPECT_EQ(dequantize(DType::kF32, f32, 2), (std::vector<float>{3.25f, -1e-30f}));
}

TEST(Quant, PlainTypesEncodeRoundToNearestEven) {
  EXPECT_EQ(quantize(DType::kF16, {1.0f, -2.0f}), (std::vector<uint8_t>{0x00, 0x3c, 0x00, 0xc0}));
  // 1 + 2^-11 is halfway between f16 1.0 and its successor: ties to the even code 0x3c00.
  EXPECT_EQ(quantize(DType::kF16, {1.0f + std::ldexp(1.0f, -11)}),
            (std::vector<uint8_t>{0x00, 0x3c}));
  EXPECT_EQ(quantize(DType::kBF16, {1.0f}), (std::vector<uint8_t>{0x80, 0x3f}));
  EXPECT_EQ(quantize(DType::kF8E4M3, {1.0f, 1000.0f}), (std::vector<uint8_t>{0x38, 0x7e}));
}

TEST(Quant, Q8_0DecodesHandMadeBlock) {
  std::vector<uint8_t> block(34, 0);
  block[0] = 0x00;  // d = 0.5 (f16 0x3800)
  block[1] = 0x38;
  int8_t q[32] = {0, 1, -1, 127, -128, 10};
  std::memcpy(block.data() + 2, q, 32);
  std::vector<float> x = dequantize(DType::kQ8_0, block, 32);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[1], 0.5f);
  EXPECT_EQ(x[2], -0.5f);
  EXPECT_EQ(x[3], 63.5f);
  EXPECT_EQ(x[4], -64.0f);
  EXPECT_EQ(x[5], 5.0f);
  for (int j = 6; j < 32; ++j) EXPECT_EQ(x[j], 0.0f) << j;
}

TEST(Quant, Q4_0DecodesHandMadeBlock) {
  std::vector<uint8_t> block(18, 0x88);  // every nibble 8 -> 0
  block[0] = 0x00;                       // d = 2.0 (f16 0x4000)
  block[1] = 0x40;
  block[2] = 0x8f;   // x[0] = 2*(15-8) = 14, x[16] = 2*(8-8) = 0
  block[3] = 0x01;   // x[1] = 2*(1-8) = -14, x[17] = 2*(0-8) = -16
  block[17] = 0xf0;  // x[15] = 2*(0-8) = -16, x[31] = 2*(15-8) = 14
  std::vector<float> x = dequantize(DType::kQ4_0, block, 32);
  EXPECT_EQ(x[0], 14.0f);
  EXPECT_EQ(x[16], 0.0f);
  EXPECT_EQ(x[1], -14.0f);
  EXPECT_EQ(x[17], -16.0f);
  EXPECT_EQ(x[15], -16.0f);
  EXPECT_EQ(x[31], 14.0f);
  EXPECT_EQ(x[2], 0.0f);
  EXPECT_EQ(x[18], 0.0f);
}

// Sub-block scales and mins used by the hand-made Q4_K block, with the 12 packed bytes worked
// out by hand from the documented layout (s >= 4 take their top two bits from bytes 0..7).
constexpr int kQ4KScales[8] = {1, 2, 3, 4, 17, 33, 50, 63};
constexpr int kQ4KMins[8] = {5, 6, 7, 8, 20, 40, 60, 9};
constexpr uint8_t kQ4KPacked[12] = {0x41, 0x82, 0xc3, 0xc4, 0x45, 0x86,
                                    0xc7, 0x08, 0x41, 0x81, 0xc2, 0x9f};

std::vector<uint8_t> q4k_block() {
  std::vector<uint8_t> block(144, 0);
  block[0] = 0x00;  // d = 1.0
  block[1] = 0x3c;
  block[2] = 0x00;  // dmin = 0.5
  block[3] = 0x38;
  std::memcpy(block.data() + 4, kQ4KPacked, 12);
  for (int i = 0; i < 128; ++i) {
    block[16 + i] = static_cast<uint8_t>((i % 16) | ((15 - i % 16) << 4));
  }
  return block;
}

TEST(Quant, Q4_KDecodesHandMadeBlockAtKnownPositions) {
  std::vector<float> x = dequantize(DType::kQ4_K, q4k_block(), 256);
  // value = d * sc * q - dmin * m, worked out by hand.
  EXPECT_EQ(x[0], -2.5f);     // sub-block 0, low nibble of qs[0] = 0: 1*0 - 0.5*5
  EXPECT_EQ(x[32], 27.0f);    // sub-block 1, high nibble of qs[0] = 15: 2*15 - 0.5*6
  EXPECT_EQ(x[69], 11.5f);    // sub-block 2, low nibble of qs[37] = 5: 3*5 - 0.5*7
  EXPECT_EQ(x[101], 36.0f);   // sub-block 3, high nibble of qs[37] = 10: 4*10 - 0.5*8
  EXPECT_EQ(x[131], 41.0f);   // sub-block 4, low nibble of qs[67] = 3: 17*3 - 0.5*20
  EXPECT_EQ(x[163], 376.0f);  // sub-block 5, high nibble of qs[67] = 12: 33*12 - 0.5*40
  EXPECT_EQ(x[223], 720.0f);  // sub-block 6, low nibble of qs[127] = 15: 50*15 - 0.5*60
  EXPECT_EQ(x[255], -4.5f);   // sub-block 7, high nibble of qs[127] = 0: 63*0 - 0.5*9
}

TEST(Quant, Q4_KDecodesEveryElementPerTheLayout) {
  std::vector<uint8_t> block = q4k_block();
  // Two super-blocks: the second with d = 2 to show each block uses its own scale.
  std::vector<uint8_t> two = block;
  two.insert(two.end(), block.begin(), block.end());
  two[144 + 1] = 0x40;
  std::vector<float> x = dequantize(DType::kQ4_K, two, 512);
  for (int b = 0; b < 2; ++b) {
    float d = b == 0 ? 1.0f : 2.0f;
    for (int i = 0; i < 256; ++i) {
      int s = i / 32, j = i % 32;
      uint8_t byte = block[16 + 32 * (s / 2) + j];
      int q = (s % 2 == 0) ? (byte & 15) : (byte >> 4);
      float want = d * static_cast<float>(kQ4KScales[s] * q) - 0.5f * kQ4KMins[s];
      EXPECT_EQ(x[256 * b + i], want) << "block " << b << " element " << i;
    }
  }
}

TEST(Quant, Q8_0EncodesLikeTheReference) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 0.1f * static_cast<float>(j - 16);  // amax 1.6 at j = 0
  std::vector<uint8_t> q = quantize(DType::kQ8_0, x);
  uint16_t d16;
  std::memcpy(&d16, q.data(), 2);
  EXPECT_EQ(d16, f32_to_f16(std::fabs(x[0]) / 127.0f));
  const int8_t* codes = reinterpret_cast<const int8_t*>(q.data() + 2);
  EXPECT_EQ(codes[0], -127);
  EXPECT_EQ(codes[16], 0);
  EXPECT_EQ(codes[31], 119);  // 1.5 / (1.6 / 127) = 119.06
  // An all-zero block has d = 0 and decodes to zeros.
  std::vector<uint8_t> zero = quantize(DType::kQ8_0, std::vector<float>(32, 0.0f));
  EXPECT_EQ(zero, std::vector<uint8_t>(34, 0));
}

TEST(Quant, Q4_0EncodesLikeTheReference) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16 - 8);  // max magnitude -8: d = 1
  std::vector<uint8_t> q = quantize(DType::kQ4_0, x);
  EXPECT_EQ(q[0], 0x00);  // f16 1.0
  EXPECT_EQ(q[1], 0x3c);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(q[2 + j], j | (j << 4)) << j;
  EXPECT_EQ(dequantize(DType::kQ4_0, q, 32), x);

  // The extreme has the sign of d flipped so that it lands on code 0; a positive max gives a
  // negative d.
  std::vector<float> y(32, 0.0f);
  y[0] = 4.0f;
  y[1] = -2.5f;  // -2.5 / d = 5: code 13
  y[2] = 1.25f;  // 1.25 / d = -2.5, + 8.5 = 6.0: code 6 (llama.cpp rounds halves up here)
  std::vector<uint8_t> qy = quantize(DType::kQ4_0, y);
  EXPECT_EQ(f16_to_f32(static_cast<uint16_t>(qy[0] | (qy[1] << 8))), -0.5f);
  EXPECT_EQ(qy[2] & 15, 0);
  EXPECT_EQ(qy[3] & 15, 13);
  EXPECT_EQ(qy[4] & 15, 6);
  std::vector<float> back = dequantize(DType::kQ4_0, qy, 32);
  EXPECT_EQ(back[0], 4.0f);
  EXPECT_EQ(back[1], -2.5f);
  EXPECT_EQ(back[2], 1.0f);
}

TEST(Quant, QuantizeDequantizeErrorIsWithinHalfAStep) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t n = 32 * 64;
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  x[5] = 40.0f;  // one outlier block

  // Q8_0: step d = amax/127; error <= d/2 plus the f16 rounding of d times 127.
  std::vector<float> q8 = dequantize(DType::kQ8_0, quantize(DType::kQ8_0, x), n);
  // Q4_0: step |d| = amax/8; error <= |d|/2 except values near +8|d| clamped to code 15 (<= |d|).
  std::vector<float> q4 = dequantize(DType::kQ4_0, quantize(DType::kQ4_0, x), n);
  double sq8 = 0, sq4 = 0, sx = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    for (int j = 0; j < 32; ++j) {
      int64_t i = 32 * b + j;
      EXPECT_LE(std::fabs(q8[i] - x[i]), amax / 127.0f * (0.5f + 127.0f / 2048.0f) + 1e-6f) << i;
      EXPECT_LE(std::fabs(q4[i] - x[i]), amax / 8.0f * (1.0f + 8.0f / 2048.0f) + 1e-6f) << i;
      sq8 += (q8[i] - x[i]) * (q8[i] - x[i]);
      sq4 += (q4[i] - x[i]) * (q4[i] - x[i]);
      sx += x[i] * x[i];
    }
  }
  // Relative RMS error: a uniform quantiser on ~N(0,1) blocks of 32 gives ~0.5% (8-bit), ~9%
  // (4-bit); these bounds fail if scales or rounding go wrong.
  EXPECT_LT(std::sqrt(sq8 / sx), 0.01);
  EXPECT_LT(std::sqrt(sq4 / sx), 0.12);

  std::vector<float> h = dequantize(DType::kF16, quantize(DType::kF16, x), n);
  std::vector<float> bf = dequantize(DType::kBF16, quantize(DType::kBF16, x), n);
  std::vector<float> f8 = dequantize(DType::kF8E4M3, quantize(DType::kF8E4M3, x), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_LE(std::fabs(h[i] - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -11) + 1e-7f) << i;
    EXPECT_LE(std::fabs(bf[i] - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -8) + 1e-30f) << i;
    EXPECT_LE(std::fabs(f8[i] - x[i]), std::fabs(x[i]) * (1.0f / 16.0f) + std::ldexp(1.0f, -10))
        << i;
  }
}

TEST(Quant, NonFiniteInputsDoNotCrash) {
  std::vector<float> x(32, 1.0f);
  x[3] = INFINITY;
  x[4] = NAN;
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    std::vector<uint8_t> q = quantize(t, x);
    std::vector<float> back = dequantize(t, q, 32);
    EXPECT_EQ(back.size(), 32u);
  }
}

TEST(Quant, Fp8BlocksScaleByBlockAmaxAndStayWithinOneStep) {
  // 200 x 300: partial edge blocks in both directions; one block all zeros; one with a huge
  // value so its neighbours' scales must not be affected.
  const int64_t rows = 200, cols = 300;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  uint64_t state = 7;
  for (float& v : x) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<float>(static_cast<int64_t>(state >> 40) - (1 << 23)) /
        static_cast<float>(1 << 23);
  }
  for (int64_t i = 128; i < rows; ++i)
    for (int64_t j = 0; j < 128; ++j) x[static_cast<size_t>(i * cols + j)] = 0.0f;
  x[5 * cols + 260] = 1e6f;
  std::vector<uint8_t> q(x.size());
  std::vector<float> scale(2 * 3);
  quantize_fp8_blocks(x.data(), rows, cols, q.data(), scale.data());
  EXPECT_EQ(scale[3], 1.0f);  // block (1, 0): zeros
  EXPECT_FLOAT_EQ(scale[2], 1e6f / 448.0f);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const size_t k = static_cast<size_t>(i * cols + j);
      const float s = scale[static_cast<size_t>((i / 128) * 3 + j / 128)];
      const float back = fp8_e4m3_to_f32(q[k]) * s;
      // E4M3 has 3 mantissa bits: relative half-step 2^-4 for normals; subnormals (below
      // 2^-6 * s) have an absolute step of 2^-9 * s.
      EXPECT_LE(std::fabs(back - x[k]), std::fabs(x[k]) / 16.0f + std::ldexp(s, -10) + 1e-30f)
          << i << "," << j;
    }
  }
  EXPECT_EQ(fp8_e4m3_to_f32(q[5 * cols + 260]), 448.0f);
}

}  // namespace
}  // namespace seekserve
