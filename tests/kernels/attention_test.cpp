#include "kernels/attention.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Shapes of MLA (576-wide slots, 16 heads) and GQA (128 of a 512-wide slot, 6 heads), plus odd
// lengths for the tails.
struct Shape {
  int64_t nq, n, len, ld;
};
constexpr Shape kShapes[] = {{16, 16, 576, 576}, {6, 16, 128, 512}, {5, 7, 37, 41}, {1, 1, 3, 3}};

TEST(AttentionTest, Avx512ScoresMatchTheReference) {
  if (max_isa_level(cpu_features()) < IsaLevel::kAvx512) GTEST_SKIP() << "no AVX-512";
  for (const Shape& s : kShapes) {
    const auto q = random_values(static_cast<size_t>(s.nq * s.ld), 1);
    const auto rows = random_values(static_cast<size_t>(s.n * s.ld), 2);
    std::vector<float> ref(static_cast<size_t>(s.nq * s.n)), fast(ref.size());
    attention_scores_on_path(IsaLevel::kScalar, q.data(), s.nq, s.ld, rows.data(), s.n, s.ld, s.len,
                             0.125f, ref.data(), s.n);
    attention_scores_on_path(IsaLevel::kAvx512, q.data(), s.nq, s.ld, rows.data(), s.n, s.ld, s.len,
                             0.125f, fast.data(), s.n);
    for (size_t i = 0; i < ref.size(); ++i) {
      // Both sum len products in f32 in different orders: a few ulps of Σ|q·k|.
      EXPECT_NEAR(fast[i], ref[i], 1e-6 * s.len) << "shape len " << s.len << " i " << i;
    }
  }
}

TEST(AttentionTest, Avx512AccumulateIsBitIdenticalToTheReference) {
  if (max_isa_level(cpu_features()) < IsaLevel::kAvx512) GTEST_SKIP() << "no AVX-512";
  for (const Shape& s : kShapes) {
    const auto p = random_values(static_cast<size_t>(s.nq * s.n), 3);
    const auto rows = random_values(static_cast<size_t>(s.n * s.ld), 4);
    auto ref = random_values(static_cast<size_t>(s.nq * s.ld), 5);
    auto fast = ref;
    attention_accumulate_on_path(IsaLevel::kScalar, p.data(), s.nq, s.n, rows.data(), s.n, s.ld,
                                 s.len, ref.data(), s.ld);
    attention_accumulate_on_path(IsaLevel::kAvx512, p.data(), s.nq, s.n, rows.data(), s.n, s.ld,
                                 s.len, fast.data(), s.ld);
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(fast[i], ref[i]) << "i " << i;
  }
}

TEST(AttentionTest, AHeadsResultDoesNotDependOnItsGroup) {
  const Shape s = kShapes[0];
  const auto q = random_values(static_cast<size_t>(s.nq * s.ld), 6);
  const auto rows = random_values(static_cast<size_t>(s.n * s.ld), 7);
  std::vector<float> all(static_cast<size_t>(s.nq * s.n)), one(static_cast<size_t>(s.n));
  attention_scores(q.data(), s.nq, s.ld, rows.data(), s.n, s.ld, s.len, 1.0f, all.data(), s.n);
  for (int64_t h = 0; h < s.nq; ++h) {
    attention_scores(q.data() + h * s.ld, 1, s.ld, rows.data(), s.n, s.ld, s.len, 1.0f, one.data(),
                     s.n);
    for (int64_t j = 0; j < s.n; ++j) ASSERT_EQ(one[j], all[h * s.n + j]);
  }
}

}  // namespace
}  // namespace seekserve
