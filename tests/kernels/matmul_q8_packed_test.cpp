// Q8_0/Q4_0 weights packed in the 16-row-interleaved layout (WeightLayout::kRows16): the VNNI
// kernel equals matmul_reference_q8act bit for bit on random and odd shapes (so every row is the
// same in any batch), the layout reads back the same weights, and every other path still computes
// the reference of its own arithmetic on packed weights.

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/matmul_kernels.h"

namespace seekserve {
namespace {

struct QWeights {
  std::vector<uint8_t> bytes;
  WeightView view;
};

// Random Q8_0/Q4_0 weights, every byte value possible (Q8_0 includes -128).
QWeights make_q_weights(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  QWeights w;
  const int64_t block_bytes = dtype == DType::kQ8_0 ? 34 : 18;
  w.bytes.resize(rows * cols / 32 * block_bytes);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.004f, 0.03f);
  for (size_t b = 0; b < w.bytes.size() / block_bytes; ++b) {
    uint8_t* p = w.bytes.data() + b * block_bytes;
    const uint16_t d = f32_to_f16(scale(rng));
    std::memcpy(p, &d, 2);
    for (int64_t j = 2; j < block_bytes; ++j) p[j] = static_cast<uint8_t>(byte(rng));
  }
  w.view = WeightView{dtype, w.bytes.data(), rows, cols, nullptr};
  return w;
}

QWeights packed_copy(const QWeights& w) {
  QWeights p = w;
  p.view.data = p.bytes.data();
  pack_weight_rows16(p.view, p.bytes.data(), 0, rows16_groups(p.view));
  p.view.layout = WeightLayout::kRows16;
  return p;
}

std::vector<float> random_x(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

bool has_vnni() {
  return max_isa_level(cpu_features()) >= IsaLevel::kAvx512 && cpu_features().avx512_vnni;
}

const DType kQTypes[] = {DType::kQ8_0, DType::kQ4_0};

TEST(PackedQ8Test, LayoutReadsBackTheSameWeights) {
  std::mt19937 rng(21);
  for (DType dtype : kQTypes) {
    for (int64_t n : {16, 47, 130}) {
      const QWeights w = make_q_weights(dtype, n, 96, rng);
      const QWeights p = packed_copy(w);
      SCOPED_TRACE(fmt::format("{} n={}", dtype_name(dtype), n));
      ASSERT_EQ(p.bytes.size(), w.bytes.size());
      const int64_t n16 = n / 16 * 16, row_bytes = w.bytes.size() / n;
      EXPECT_NE(0, std::memcmp(p.bytes.data(), w.bytes.data(), n16 * row_bytes)) << "not packed";
      // Rows past the last whole group keep the file's bytes.
      EXPECT_EQ(0, std::memcmp(p.bytes.data() + n16 * row_bytes, w.bytes.data() + n16 * row_bytes,
                               (n - n16) * row_bytes));
      std::vector<float> a(96), b(96);
      for (int64_t r = 0; r < n; ++r) {
        weight_row_to_f32(w.view, r, a.data());
        weight_row_to_f32(p.view, r, b.data());
        ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << "row " << r;
      }
    }
  }
}

// The kernel the engine runs on packed weights: bit for bit matmul_reference_q8act (of the
// unpacked weights) for every m, tile and leftover, and one row alone equals it in any batch.
TEST(PackedQ8Test, VnniKernelEqualsReferenceBitForBit) {
  if (!has_vnni()) GTEST_SKIP() << "CPU lacks AVX-512 VNNI";
  ThreadPool pool(3);
  std::mt19937 rng(22);
  for (DType dtype : kQTypes) {
    for (int64_t n : {16, 33, 47, 130}) {      // whole groups, and 1, 15, 2 rows past them
      for (int64_t k : {32, 96, 288, 1536}) {  // 1, 3, 9, 48 blocks
        const QWeights w = make_q_weights(dtype, n, k, rng);
        const QWeights p = packed_copy(w);
        for (int64_t m : {1, 3, 4, 16, 17, 32}) {
          SCOPED_TRACE(fmt::format("{} m={} n={} k={}", dtype_name(dtype), m, n, k));
          const std::vector<float> x = random_x(rng, m * k);
          std::vector<float> y(m * n, -1.0f), ref(m * n), auto_path(m * n, -1.0f);
          ASSERT_TRUE(matmul_on_path(pool, IsaLevel::kAvx512, x.data(), m, p.view, y.data()).ok());
          matmul_reference_q8act(x.data(), m, w.view, ref.data());
          ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * 4));
          if (active_isa_level() == IsaLevel::kAvx512) {
            ASSERT_TRUE(matmul(pool, x.data(), m, p.view, auto_path.data()).ok());
            ASSERT_EQ(0, std::memcmp(auto_path.data(), ref.data(), y.size() * 4));
          }
          if (m > 1) {  // the last row alone
            std::vector<float> alone(n);
            ASSERT_TRUE(matmul_on_path(pool, IsaLevel::kAvx512, x.data() + (m - 1) * k, 1, p.view,
                                       alone.data())
                            .ok());
            ASSERT_EQ(0, std::memcmp(alone.data(), y.data() + (m - 1) * n, n * 4));
          }
        }
      }
    }
  }
}

// Packed weights on every other path (no VNNI kernel there): the scalar path is matmul_reference
// of the unpacked weights bit for bit, int8 activations are matmul_reference_q8act bit for bit,
// f32 activations are matmul_reference bit for bit; kAmx (emulated where no AMX) runs the VNNI
// kernel instead of widening the packed bytes.
TEST(PackedQ8Test, EveryOtherPathComputesItsReference) {
  ThreadPool pool(2);
  std::mt19937 rng(23);
  const IsaLevel cpu = max_isa_level(cpu_features());
  for (DType dtype : kQTypes) {
    const int64_t m = 5, n = 37, k = 160;
    const QWeights w = make_q_weights(dtype, n, k, rng);
    const QWeights p = packed_copy(w);
    const std::vector<float> x = random_x(rng, m * k);
    std::vector<float> ref_f32(m * n), ref_q8(m * n), y(m * n);
    matmul_reference(x.data(), m, w.view, ref_f32.data());
    matmul_reference_q8act(x.data(), m, w.view, ref_q8.data());
    auto run = [&](IsaLevel path, const MatmulVariant& v, const std::vector<float>& want,
                   const std::string& what) {
      SCOPED_TRACE(fmt::format("{} {}", dtype_name(dtype), what));
      std::fill(y.begin(), y.end(), -1.0f);
      const Status st = matmul_on_path(pool, path, x.data(), m, p.view, y.data(), v);
      ASSERT_TRUE(st.ok()) << st.to_string();
      EXPECT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * 4));
    };
    std::vector<float> ref_alone(m * n);
    matmul_reference(x.data(), m, p.view, ref_alone.data());
    EXPECT_EQ(0, std::memcmp(ref_alone.data(), ref_f32.data(), y.size() * 4));
    run(IsaLevel::kScalar, {}, ref_f32, "scalar");
    MatmulVariant f32_act;
    f32_act.int8_activations = false;
    MatmulVariant no_vnni;
    no_vnni.avx512_vnni = false;
    if (cpu >= IsaLevel::kAvx2) {
      run(IsaLevel::kAvx2, {}, ref_q8, "avx2");
      run(IsaLevel::kAvx2, f32_act, ref_f32, "avx2 f32 activations");
    }
    if (cpu >= IsaLevel::kAvx512) {
      run(IsaLevel::kAvx512, no_vnni, ref_q8, "avx512 without vnni");
      run(IsaLevel::kAvx512, f32_act, ref_f32, "avx512 f32 activations");
      if (cpu_features().avx512_bf16 && has_vnni()) {
        MatmulVariant emulated;
        emulated.amx_emulated = true;
        run(IsaLevel::kAmx, emulated, ref_q8, "amx (emulated)");
      }
    }
  }
}

// The AVX-512 activation quantiser the kAvx512 path runs: the same int8 values and scales as
// quantize_activations_q8 bit for bit (ties, zeros, huge and tiny blocks), and the block sums.
TEST(PackedQ8Test, VectorisedActivationQuantiserEqualsTheScalarOne) {
  if (max_isa_level(cpu_features()) < IsaLevel::kAvx512) GTEST_SKIP() << "CPU lacks AVX-512";
  std::mt19937 rng(25);
  const int64_t k = 32 * 40;
  std::vector<float> x = random_x(rng, k);
  for (int64_t t = 0; t < 32; ++t) x[t] = 0.0f;                  // an all-zero block
  for (int64_t t = 0; t < 32; ++t) x[32 + t] = (t - 16) * 0.5f;  // exact halves: ties
  for (int64_t t = 0; t < 32; ++t) x[64 + t] *= 1e30f;           // huge
  for (int64_t t = 0; t < 32; ++t) x[96 + t] *= 1e-38f;          // subnormal-ish
  x[128] = -3.0f;                                                // a negative maximum
  std::vector<int8_t> q(k), qv(k);
  std::vector<float> d(k / 32), dv(k / 32);
  std::vector<int32_t> sums(k / 32);
  quantize_activations_q8(x.data(), k, q.data(), d.data());
  matmul_detail::quantize_activations_q8_avx512(x.data(), k, qv.data(), dv.data(), sums.data(),
                                                128);
  EXPECT_EQ(0, std::memcmp(q.data(), qv.data(), k));
  EXPECT_EQ(0, std::memcmp(d.data(), dv.data(), d.size() * 4));
  for (int64_t b = 0; b < k / 32; ++b) {
    int32_t sum = 0;
    for (int64_t t = 0; t < 32; ++t) sum += q[b * 32 + t];
    EXPECT_EQ(sums[b], -128 * sum) << "block " << b;
  }
}

TEST(PackedQ8Test, PackingPaysOnlyForQuantisedMatricesOfWholeGroups) {
  std::mt19937 rng(24);
  const QWeights small = make_q_weights(DType::kQ8_0, 15, 64, rng);
  EXPECT_FALSE(rows16_packing_pays(small.view));  // no whole group
  const QWeights w = make_q_weights(DType::kQ8_0, 32, 64, rng);
  EXPECT_EQ(rows16_packing_pays(w.view), has_vnni() && active_isa_level() == IsaLevel::kAvx512);
  EXPECT_FALSE(rows16_packing_pays(packed_copy(w).view));  // already packed
  std::vector<uint16_t> bf16(32 * 64);
  WeightView b{DType::kBF16, bf16.data(), 32, 64, nullptr};
  EXPECT_FALSE(rows16_packing_pays(b));
  b.layout = WeightLayout::kRows16;
  EXPECT_EQ(validate_weight(b).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace seekserve
