#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"

// Every path × every weight dtype against a scalar reference of the same arithmetic, on odd
// shapes, plus batch invariance (a row computed in a batch equals the row computed alone, bit for
// bit). Errors are judged relative to S = Σ_k |x_k · w_k| of each output, the scale of the
// rounding error of any summation order:
//   every path vs the reference of its own arithmetic:  1e-5 · S (f32 summation order; k ≤ 300)
//     f32 arithmetic: matmul_reference; int8 activations: matmul_reference_q8act; bf16 inputs
//     (vdpbf16ps, AMX): matmul_reference on the bf16-rounded x (and w).
//   paths whose inputs are rounded (x' = the int8 or bf16 activations, w' = bf16 weights) vs
//     matmul_reference:  R + 2e-5 · S, where R = Σ_k |x'_k·w'_k − x_k·w_k| bounds what the input
//     rounding alone can move the result.

namespace seekserve {
namespace {

struct TestWeights {
  std::vector<uint8_t> bytes;
  std::vector<float> scale_inv;
  WeightView view;
};

std::vector<float> random_floats(std::mt19937& rng, int64_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

void put_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}

// Random weights of every dtype, generated directly in the storage format.
TestWeights make_weights(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  TestWeights t;
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.004f, 0.03f);
  const int64_t n = rows * cols;
  switch (dtype) {
    case DType::kF32: {
      const std::vector<float> v = random_floats(rng, n, 0.1f);
      t.bytes.resize(n * 4);
      std::memcpy(t.bytes.data(), v.data(), n * 4);
      break;
    }
    case DType::kF16:
    case DType::kBF16: {
      const std::vector<float> v = random_floats(rng, n, 0.1f);
      t.bytes.resize(n * 2);
      for (int64_t i = 0; i < n; ++i) {
        put_u16(t.bytes.data() + 2 * i,
                dtype == DType::kF16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]));
      }
      break;
    }
    case DType::kF8E4M3: {
      t.bytes.resize(n);
      for (uint8_t& b : t.bytes) {
        do b = static_cast<uint8_t>(byte(rng));
        while ((b & 0x7F) == 0x7F);  // no NaN codes
      }
      const int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
      t.scale_inv.resize(sr * sc);
      for (float& s : t.scale_inv) s = scale(rng) * 0.05f;
      break;
    }
    case DType::kQ8_0:
    case DType::kQ4_0: {
      const int64_t block_bytes = dtype == DType::kQ8_0 ? 34 : 18;
      t.bytes.resize(n / 32 * block_bytes);
      for (int64_t b = 0; b < n / 32; ++b) {
        uint8_t* p = t.bytes.data() + b * block_bytes;
        put_u16(p, f32_to_f16(scale(rng)));
        for (int64_t j = 2; j < block_bytes; ++j) p[j] = static_cast<uint8_t>(byte(rng));
      }
      break;
    }
    default:
      ADD_FAILURE() << "no generator for " << dtype_name(dtype);
  }
  t.view = WeightView{dtype, t.bytes.data(), rows, cols,
                      t.scale_inv.empty() ? nullptr : t.scale_inv.data()};
  return t;
}

// S[i][j] = Σ_k |x[i][k]·w[j][k]|, in double.
std::vector<double> abs_sums(const std::vector<float>& x, int64_t m, const WeightView& w) {
  std::vector<double> s(m * w.rows);
  std::vector<float> row(w.cols);
  for (int64_t j = 0; j < w.rows; ++j) {
    weight_row_to_f32(w, j, row.data());
    for (int64_t i = 0; i < m; ++i) {
      double sum = 0;
      for (int64_t c = 0; c < w.cols; ++c) sum += std::fabs(double(x[i * w.cols + c]) * row[c]);
      s[i * w.rows + j] = sum;
    }
  }
  return s;
}

// Largest |got − want| / S over all outputs; fails the test above `tol`.
// With `extra`, output i may also be off by extra[i] (an absolute bound).
double check_close(const std::vector<float>& got, const std::vector<float>& want,
                   const std::vector<double>& s, double tol, const std::string& what,
                   const std::vector<double>* extra = nullptr) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    const double ratio = err / std::max(s[i], 1e-30);
    const double allowed = tol * s[i] + (extra ? (*extra)[i] : 0.0);
    if (!(err <= allowed)) {  // also catches NaN
      ADD_FAILURE() << what << ": output " << i << " got " << got[i] << " want " << want[i]
                    << " |err|/S = " << ratio << ", allowed " << allowed / std::max(s[i], 1e-30);
      return ratio;
    }
    worst = std::max(worst, ratio);
  }
  return worst;
}

// The same weights as bf16(dequantised), i.e. what the AMX path multiplies.
TestWeights widen_to_bf16(const WeightView& w) {
  TestWeights t;
  t.bytes.resize(w.rows * w.cols * 2);
  std::vector<float> row(w.cols);
  for (int64_t j = 0; j < w.rows; ++j) {
    weight_row_to_f32(w, j, row.data());
    for (int64_t c = 0; c < w.cols; ++c)
      put_u16(t.bytes.data() + (j * w.cols + c) * 2, f32_to_bf16(row[c]));
  }
  t.view = WeightView{DType::kBF16, t.bytes.data(), w.rows, w.cols, nullptr};
  return t;
}

// R[i][j] = Σ_k |x'[i][k]·w'[j][k] − x[i][k]·w[j][k]|, in double.
std::vector<double> rounding_bound(const std::vector<float>& x, const std::vector<float>& xr,
                                   int64_t m, const WeightView& w, const WeightView& wr) {
  std::vector<double> bound(m * w.rows);
  std::vector<float> row(w.cols), row_r(w.cols);
  for (int64_t j = 0; j < w.rows; ++j) {
    weight_row_to_f32(w, j, row.data());
    weight_row_to_f32(wr, j, row_r.data());
    for (int64_t i = 0; i < m; ++i) {
      double sum = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        const int64_t e = i * w.cols + c;
        sum += std::fabs(double(xr[e]) * row_r[c] - double(x[e]) * row[c]);
      }
      bound[i * w.rows + j] = sum;
    }
  }
  return bound;
}

// The activations the int8 paths actually multiply: d·q per 32-block.
std::vector<float> q8_activations(const std::vector<float>& x, int64_t m, int64_t k) {
  std::vector<float> out(m * k);
  std::vector<int8_t> q(k);
  std::vector<float> d(k / 32);
  for (int64_t i = 0; i < m; ++i) {
    quantize_activations_q8(x.data() + i * k, k, q.data(), d.data());
    for (int64_t c = 0; c < k; ++c) out[i * k + c] = d[c / 32] * q[c];
  }
  return out;
}

std::vector<float> round_to_bf16(std::vector<float> x) {
  for (float& v : x) v = bf16_to_f32(f32_to_bf16(v));
  return x;
}

const DType kAllDtypes[] = {DType::kF32,    DType::kF16,  DType::kBF16,
                            DType::kF8E4M3, DType::kQ8_0, DType::kQ4_0};
const int64_t kRowCounts[] = {1, 2, 7, 33};
const int64_t kColCounts[] = {1, 3, 17, 130};

std::vector<int64_t> k_values(DType dtype) {
  if (dtype == DType::kQ8_0 || dtype == DType::kQ4_0) return {32, 96, 288};  // 1, 3, 9 blocks
  return {1, 13, 130, 259};  // not multiples of 8, 16, 32 or 128
}

bool uses_q8_activations(IsaLevel path, DType dtype) {
  return (path == IsaLevel::kAvx2 || path == IsaLevel::kAvx512) &&
         (dtype == DType::kQ8_0 || dtype == DType::kQ4_0);
}

bool amx_widens(IsaLevel path, DType dtype) {
  return path == IsaLevel::kAmx && dtype != DType::kF32 && dtype != DType::kF16;
}

// Which arithmetic a (path, variant) runs for dtype, for choosing the reference.
enum class Arithmetic { kF32, kQ8Act, kBf16X, kBf16XW };

Arithmetic arithmetic_of(IsaLevel path, DType dtype, const MatmulVariant& v) {
  if (uses_q8_activations(path, dtype) && v.int8_activations) return Arithmetic::kQ8Act;
  if (amx_widens(path, dtype)) return Arithmetic::kBf16XW;
  if (path == IsaLevel::kAvx512 && dtype == DType::kBF16 && v.avx512_bf16 &&
      cpu_features().avx512_bf16) {
    return Arithmetic::kBf16X;
  }
  return Arithmetic::kF32;
}

// Runs every dtype and shape on one path and checks it against its reference; returns a summary
// of the worst error ratios.
void check_path(IsaLevel path, const MatmulVariant& variant, const std::string& name) {
  ThreadPool pool(3);
  std::mt19937 rng(1234);
  for (DType dtype : kAllDtypes) {
    double worst_same = 0, worst_f32 = 0;
    for (int64_t k : k_values(dtype)) {
      for (int64_t n : kColCounts) {
        const TestWeights w = make_weights(dtype, n, k, rng);
        for (int64_t m : kRowCounts) {
          const std::string what =
              fmt::format("{} {} m={} n={} k={}", name, dtype_name(dtype), m, n, k);
          SCOPED_TRACE(what);
          const std::vector<float> x = random_floats(rng, m * k);
          std::vector<float> y(m * n, -1.0f);
          const Status st = matmul_on_path(pool, path, x.data(), m, w.view, y.data(), variant);
          ASSERT_TRUE(st.ok()) << st.to_string();
          const std::vector<double> s = abs_sums(x, m, w.view);
          std::vector<float> ref(m * n), same(m * n);
          matmul_reference(x.data(), m, w.view, ref.data());
          switch (arithmetic_of(path, dtype, variant)) {
            case Arithmetic::kF32:
              if (path == IsaLevel::kScalar) {
                ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * 4))
                    << "the scalar path must be the reference, bit for bit";
              }
              worst_f32 = std::max(worst_f32, check_close(y, ref, s, 1e-5, what));
              break;
            case Arithmetic::kQ8Act: {
              matmul_reference_q8act(x.data(), m, w.view, same.data());
              worst_same = std::max(worst_same, check_close(y, same, s, 1e-5, what + " vs q8act"));
              const std::vector<double> r =
                  rounding_bound(x, q8_activations(x, m, k), m, w.view, w.view);
              worst_f32 = std::max(worst_f32, check_close(y, ref, s, 2e-5, what, &r));
              break;
            }
            case Arithmetic::kBf16X: {
              const std::vector<float> xb = round_to_bf16(x);
              matmul_reference(xb.data(), m, w.view, same.data());
              worst_same = std::max(worst_same, check_close(y, same, s, 1e-5, what + " vs bf16 x"));
              const std::vector<double> r = rounding_bound(x, xb, m, w.view, w.view);
              worst_f32 = std::max(worst_f32, check_close(y, ref, s, 2e-5, what, &r));
              break;
            }
            case Arithmetic::kBf16XW: {
              const std::vector<float> xb = round_to_bf16(x);
              const TestWeights wb = widen_to_bf16(w.view);
              matmul_reference(xb.data(), m, wb.view, same.data());
              worst_same =
                  std::max(worst_same, check_close(y, same, s, 1e-5, what + " vs bf16 x, w"));
              const std::vector<double> r = rounding_bound(x, xb, m, w.view, wb.view);
              worst_f32 = std::max(worst_f32, check_close(y, ref, s, 2e-5, what, &r));
              break;
            }
          }
          if (::testing::Test::HasFailure()) return;
        }
      }
    }
    const bool own = arithmetic_of(path, dtype, variant) != Arithmetic::kF32;
    std::printf(
        "  %-24s %-5s worst |err|/S vs matmul_reference %.2e%s\n", name.c_str(),
        std::string(dtype_name(dtype)).c_str(), worst_f32,
        own ? fmt::format(", vs its own arithmetic's reference {:.2e}", worst_same).c_str() : "");
  }
}

// Row i of an m-row product equals that row computed alone, bit for bit, for every dtype.
void check_batch_invariance(IsaLevel path, const MatmulVariant& variant) {
  ThreadPool pool(2);
  std::mt19937 rng(99);
  const int64_t m = 37, n = 45;
  for (DType dtype : kAllDtypes) {
    const int64_t k = (dtype == DType::kQ8_0 || dtype == DType::kQ4_0) ? 160 : 203;
    SCOPED_TRACE(fmt::format("{} {}", isa_level_name(path), dtype_name(dtype)));
    const TestWeights w = make_weights(dtype, n, k, rng);
    const std::vector<float> x = random_floats(rng, m * k);
    std::vector<float> y(m * n);
    ASSERT_TRUE(matmul_on_path(pool, path, x.data(), m, w.view, y.data(), variant).ok());
    for (int64_t i = 0; i < m; ++i) {
      std::vector<float> alone(n);
      ASSERT_TRUE(
          matmul_on_path(pool, path, x.data() + i * k, 1, w.view, alone.data(), variant).ok());
      ASSERT_EQ(0, std::memcmp(alone.data(), y.data() + i * n, n * 4)) << "row " << i;
    }
    // And a sub-batch starting at an odd row.
    std::vector<float> part(5 * n);
    ASSERT_TRUE(
        matmul_on_path(pool, path, x.data() + 11 * k, 5, w.view, part.data(), variant).ok());
    ASSERT_EQ(0, std::memcmp(part.data(), y.data() + 11 * n, part.size() * 4));
  }
}

bool cpu_has(IsaLevel level) {
  return max_isa_level(cpu_features()) >= level;
}

TEST(MatmulTest, ReferenceAgreesWithDouble) {
  std::mt19937 rng(7);
  for (DType dtype : kAllDtypes) {
    const int64_t m = 3, n = 17, k = dtype == DType::kQ8_0 || dtype == DType::kQ4_0 ? 288 : 259;
    const TestWeights w = make_weights(dtype, n, k, rng);
    const std::vector<float> x = random_floats(rng, m * k);
    std::vector<float> y(m * n), exact(m * n);
    matmul_reference(x.data(), m, w.view, y.data());
    std::vector<float> row(k);
    for (int64_t j = 0; j < n; ++j) {
      // Independent dequantisation: fp8 via its table times the block scale, the block formats
      // from the bytes as MODELS.md §6 lays them out.
      const uint8_t* bytes = w.bytes.data();
      for (int64_t c = 0; c < k; ++c) {
        double v = 0;
        switch (dtype) {
          case DType::kF32: {
            float f;
            std::memcpy(&f, bytes + (j * k + c) * 4, 4);
            v = f;
            break;
          }
          case DType::kF16:
          case DType::kBF16: {
            uint16_t h;
            std::memcpy(&h, bytes + (j * k + c) * 2, 2);
            v = dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
            break;
          }
          case DType::kF8E4M3:
            v = double(fp8_e4m3_to_f32(bytes[j * k + c])) *
                w.scale_inv[(j / 128) * ((k + 127) / 128) + c / 128];
            break;
          case DType::kQ8_0: {
            const uint8_t* b = bytes + (j * k + c) / 32 * 34;
            uint16_t d;
            std::memcpy(&d, b, 2);
            v = double(f16_to_f32(d)) * static_cast<int8_t>(b[2 + c % 32]);
            break;
          }
          case DType::kQ4_0: {
            const uint8_t* b = bytes + (j * k + c) / 32 * 18;
            uint16_t d;
            std::memcpy(&d, b, 2);
            const int e = c % 32;
            const int q = e < 16 ? (b[2 + e] & 15) : (b[2 + e - 16] >> 4);
            v = double(f16_to_f32(d)) * (q - 8);
            break;
          }
          default:
            break;
        }
        row[c] = static_cast<float>(v);
      }
      for (int64_t i = 0; i < m; ++i) {
        double sum = 0;
        for (int64_t c = 0; c < k; ++c) sum += double(x[i * k + c]) * row[c];
        exact[i * n + j] = static_cast<float>(sum);
      }
    }
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    check_close(y, exact, abs_sums(x, m, w.view), 1e-5, "reference vs double");
  }
}

TEST(MatmulTest, ScalarPath) {
  check_path(IsaLevel::kScalar, {}, "scalar");
}

TEST(MatmulTest, Avx2Path) {
  if (!cpu_has(IsaLevel::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA+F16C";
  check_path(IsaLevel::kAvx2, {}, "avx2");
}

TEST(MatmulTest, Avx512Path) {
  if (!cpu_has(IsaLevel::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512 F/BW/VL/DQ";
  if (!cpu_features().avx512_bf16) std::printf("  (no AVX512_BF16: BF16 runs the f32 kernel)\n");
  if (!cpu_features().avx512_vnni) std::printf("  (no AVX512_VNNI: Q8_0/Q4_0 run maddubs)\n");
  if (!cpu_features().avx512_vbmi) std::printf("  (no AVX512_VBMI: FP8 runs the f16 kernel)\n");
  check_path(IsaLevel::kAvx512, {}, "avx512");
}

TEST(MatmulTest, Avx512PathWithoutBf16VnniAndVbmi) {
  if (!cpu_has(IsaLevel::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512 F/BW/VL/DQ";
  MatmulVariant plain;
  plain.avx512_bf16 = false;
  plain.avx512_vnni = false;
  plain.fp8_vbmi = false;
  check_path(IsaLevel::kAvx512, plain, "avx512 (no bf16/vnni/vbmi)");
}

// Q8_0/Q4_0 with f32 activations (MatmulOptions::exact_activations) run the reference arithmetic.
TEST(MatmulTest, F32ActivationsForBlockQuantisedWeights) {
  MatmulVariant exact;
  exact.int8_activations = false;
  if (cpu_has(IsaLevel::kAvx2)) check_path(IsaLevel::kAvx2, exact, "avx2 (f32 activations)");
  if (cpu_has(IsaLevel::kAvx512)) check_path(IsaLevel::kAvx512, exact, "avx512 (f32 activations)");
  if (cpu_has(IsaLevel::kAvx512)) check_batch_invariance(IsaLevel::kAvx512, exact);
}

// The VBMI FP8 kernel on shapes around its 64-column chunks, 128-column scale blocks, 4-row
// tiles and 128-row scale blocks, on weights that hold every finite E4M3 code in every row (when
// k >= 254) and activations spread over 2^±8; then the NaN codes, which must give NaN exactly
// where the reference does (in the first chunk, a middle block and the masked tail chunk, and
// just after a row whose tail chunk is masked). Its products are the reference's, so it is held
// to the f32 tolerance.
TEST(MatmulTest, Fp8VbmiKernelEveryCodeAndOddShapes) {
  if (!cpu_has(IsaLevel::kAvx512) || !cpu_features().avx512_vbmi) {
    GTEST_SKIP() << "CPU lacks AVX512_VBMI";
  }
  ThreadPool pool(3);
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> scale(0.004f, 0.03f), octave(-8.0f, 8.0f);
  std::vector<uint8_t> finite_codes;
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) != 0x7F) finite_codes.push_back(static_cast<uint8_t>(c));
  }
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1},    {19, 63},   {130, 65},
                                                {45, 129}, {200, 259}, {7, 300}};
  for (int64_t m : {1, 3, 16, 17}) {
    for (const auto& [n, k] : shapes) {
      const std::string what = fmt::format("fp8 vbmi m={} n={} k={}", m, n, k);
      SCOPED_TRACE(what);
      std::vector<uint8_t> bytes(n * k);
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t c = 0; c < k; ++c) bytes[j * k + c] = finite_codes[(j * 37 + c) % 254];
      }
      std::vector<float> scales(((n + 127) / 128) * ((k + 127) / 128));
      for (float& f : scales) f = scale(rng);
      const WeightView w{DType::kF8E4M3, bytes.data(), n, k, scales.data()};
      std::vector<float> x = random_floats(rng, m * k);
      for (float& v : x) v = std::ldexp(v, static_cast<int>(octave(rng)));
      std::vector<float> y(m * n), ref(m * n);
      ASSERT_TRUE(matmul_on_path(pool, IsaLevel::kAvx512, x.data(), m, w, y.data()).ok());
      matmul_reference(x.data(), m, w, ref.data());
      check_close(y, ref, abs_sums(x, m, w), 1e-5, what);
      if (::testing::Test::HasFailure()) return;
    }
  }
  const int64_t m = 5, n = 9, k = 259;
  std::vector<uint8_t> bytes(n * k);
  for (int64_t e = 0; e < n * k; ++e) bytes[e] = finite_codes[(e * 101) % 254];
  bytes[2 * k + 0] = 0x7F;  // row 1's tail chunk reads these bytes, masked off
  bytes[5 * k + 258] = 0xFF;
  bytes[7 * k + 130] = 0x7F;
  std::vector<float> scales(3, 0.01f);
  const WeightView w{DType::kF8E4M3, bytes.data(), n, k, scales.data()};
  const std::vector<float> x = random_floats(rng, m * k);
  std::vector<float> y(m * n), ref(m * n);
  ASSERT_TRUE(matmul_on_path(pool, IsaLevel::kAvx512, x.data(), m, w, y.data()).ok());
  matmul_reference(x.data(), m, w, ref.data());
  const std::vector<double> s = abs_sums(x, m, w);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t e = i * n + j;
      const bool nan_row = j == 2 || j == 5 || j == 7;
      ASSERT_EQ(std::isnan(ref[e]), nan_row) << "reference, row " << j;
      if (nan_row) {
        EXPECT_TRUE(std::isnan(y[e])) << "x row " << i << ", w row " << j << ": " << y[e];
      } else {
        EXPECT_LE(std::fabs(y[e] - ref[e]), 1e-5 * s[e]) << "x row " << i << ", w row " << j;
      }
    }
  }
}

// Where the CPU has VBMI, the kernel for CPUs without it is still the one the variant selects
// (and BatchInvariantOnEveryPath / Avx512PathWithoutBf16AndVnni cover it too).
TEST(MatmulTest, Fp8KernelWithoutVbmi) {
  if (!cpu_has(IsaLevel::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512 F/BW/VL/DQ";
  MatmulVariant no_vbmi;
  no_vbmi.fp8_vbmi = false;
  check_path(IsaLevel::kAvx512, no_vbmi, "avx512 (fp8 without vbmi)");
  check_batch_invariance(IsaLevel::kAvx512, no_vbmi);
}
TEST(MatmulTest, Avx512VnniEqualsMaddubsBitForBit) {
  if (!cpu_has(IsaLevel::kAvx512) || !cpu_features().avx512_vnni) {
    GTEST_SKIP() << "CPU lacks AVX512_VNNI";
  }
  ThreadPool pool(2);
  std::mt19937 rng(5);
  MatmulVariant plain;
  plain.avx512_vnni = false;
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0}) {
    // Even and odd block counts; a 4x4-tile batch and one with leftover rows.
    for (const auto& [m, k] : {std::pair<int64_t, int64_t>{7, 320}, {16, 288}}) {
      const TestWeights w = make_weights(dtype, 33, k, rng);
      const std::vector<float> x = random_floats(rng, m * k);
      std::vector<float> a(m * 33), b(m * 33);
      ASSERT_TRUE(matmul_on_path(pool, IsaLevel::kAvx512, x.data(), m, w.view, a.data()).ok());
      ASSERT_TRUE(
          matmul_on_path(pool, IsaLevel::kAvx512, x.data(), m, w.view, b.data(), plain).ok());
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4))
          << dtype_name(dtype) << " m=" << m;
    }
  }
}

TEST(MatmulTest, AmxEmulatedTiles) {
  if (!cpu_has(IsaLevel::kAvx512) || !cpu_features().avx512_bf16) {
    GTEST_SKIP() << "emulated AMX needs AVX-512 with AVX512_BF16";
  }
  MatmulVariant emulated;
  emulated.amx_emulated = true;
  check_path(IsaLevel::kAmx, emulated, "amx (emulated tiles)");
}

TEST(MatmulTest, AmxPath) {
  if (!cpu_has(IsaLevel::kAmx)) GTEST_SKIP() << "CPU lacks AMX-TILE/AMX-BF16";
  ASSERT_TRUE(request_amx_permission().ok()) << request_amx_permission().to_string();
  check_path(IsaLevel::kAmx, {}, "amx");
}

TEST(MatmulTest, BatchInvariantOnEveryPath) {
  check_batch_invariance(IsaLevel::kScalar, {});
  if (cpu_has(IsaLevel::kAvx2)) check_batch_invariance(IsaLevel::kAvx2, {});
  if (cpu_has(IsaLevel::kAvx512)) {
    check_batch_invariance(IsaLevel::kAvx512, {});
    MatmulVariant plain;
    plain.avx512_bf16 = false;
    plain.avx512_vnni = false;
    plain.fp8_vbmi = false;
    check_batch_invariance(IsaLevel::kAvx512, plain);
  }
  if (cpu_has(IsaLevel::kAvx512) && cpu_features().avx512_bf16) {
    MatmulVariant emulated;
    emulated.amx_emulated = true;
    check_batch_invariance(IsaLevel::kAmx, emulated);
  }
  if (cpu_has(IsaLevel::kAmx) && request_amx_permission().ok()) {
    check_batch_invariance(IsaLevel::kAmx, {});
  } else {
    std::printf("  real AMX not checked: the CPU has none\n");
  }
}

TEST(MatmulTest, DispatchChoosesByLevelRowsAndDtype) {
  EXPECT_EQ(choose_matmul_path(IsaLevel::kScalar, DType::kBF16, 512), IsaLevel::kScalar);
  EXPECT_EQ(choose_matmul_path(IsaLevel::kAvx2, DType::kQ8_0, 512), IsaLevel::kAvx2);
  EXPECT_EQ(choose_matmul_path(IsaLevel::kAvx512, DType::kBF16, 512), IsaLevel::kAvx512);
  EXPECT_EQ(choose_matmul_path(IsaLevel::kAmx, DType::kBF16, 1), IsaLevel::kAvx512);
  EXPECT_EQ(choose_matmul_path(IsaLevel::kAmx, DType::kBF16, 64), IsaLevel::kAmx);
  EXPECT_EQ(choose_matmul_path(IsaLevel::kAmx, DType::kF8E4M3, 64), IsaLevel::kAmx);
  EXPECT_EQ(choose_matmul_path(IsaLevel::kAmx, DType::kQ8_0, 64), IsaLevel::kAmx);
  EXPECT_EQ(choose_matmul_path(IsaLevel::kAmx, DType::kF32, 64), IsaLevel::kAvx512);
  MatmulOptions invariant;
  invariant.batch_invariant = true;
  EXPECT_EQ(choose_matmul_path(IsaLevel::kAmx, DType::kBF16, 1, invariant), IsaLevel::kAmx);
}

TEST(MatmulTest, EnvironmentForcesTheScalarPath) {
  ThreadPool pool(2);
  std::mt19937 rng(3);
  const TestWeights w = make_weights(DType::kBF16, 17, 259, rng);
  const std::vector<float> x = random_floats(rng, 2 * 259);
  std::vector<float> y(2 * 17), ref(2 * 17);
  matmul_reference(x.data(), 2, w.view, ref.data());
  ASSERT_EQ(setenv("SEEKSERVE_ISA", "scalar", 1), 0);
  const Status st = matmul(pool, x.data(), 2, w.view, y.data());
  ASSERT_EQ(unsetenv("SEEKSERVE_ISA"), 0);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * 4));
}

TEST(MatmulTest, RejectsBadWeightsAndMissingIsa) {
  ThreadPool pool(1);
  std::vector<uint8_t> bytes(34 * 4);
  const float x[40] = {};
  float y[4];
  WeightView q{DType::kQ8_0, bytes.data(), 4, 40, nullptr};  // 40 is not a multiple of 32
  EXPECT_EQ(matmul(pool, x, 1, q, y).code(), StatusCode::kInvalidArgument);
  WeightView fp8{DType::kF8E4M3, bytes.data(), 4, 32, nullptr};  // no scale_inv
  EXPECT_EQ(matmul(pool, x, 1, fp8, y).code(), StatusCode::kInvalidArgument);
  WeightView q4k{DType::kQ4_K, bytes.data(), 1, 256, nullptr};
  EXPECT_EQ(matmul(pool, x, 1, q4k, y).code(), StatusCode::kUnimplemented);
  if (!cpu_has(IsaLevel::kAmx)) {
    WeightView bf16{DType::kBF16, bytes.data(), 2, 16, nullptr};
    EXPECT_EQ(matmul_on_path(pool, IsaLevel::kAmx, x, 1, bf16, y).code(),
              StatusCode::kUnimplemented);
  }
}

TEST(MatmulTest, EmptyAndZeroK) {
  ThreadPool pool(2);
  std::vector<uint16_t> none;
  WeightView w{DType::kBF16, none.data(), 3, 0, nullptr};
  float y[6] = {1, 1, 1, 1, 1, 1};
  ASSERT_TRUE(matmul(pool, nullptr, 2, w, y).ok());
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace seekserve
