#include "engine/sampler.h"

#include <cmath>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "core/cpu_features.h"

namespace seekserve {
namespace {

std::vector<float> logits_of(std::initializer_list<float> v) {
  return std::vector<float>(v);
}

TEST(Sampler, GreedyPicksTheArgmaxAndSkipsMaskedIds) {
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler s(p, {true, true, false, true});
  auto l = logits_of({1.0f, 2.0f, 9.0f, 3.0f});
  EXPECT_EQ(s.sample(l, {}, {}), 3);  // id 2 has no token: never sampled
  Sampler all(p, {true, true, true, true});
  l = logits_of({5.0f, 5.0f, 1.0f, 0.0f});
  EXPECT_EQ(all.sample(l, {}, {}), 0);  // ties go to the lower id
}

TEST(Sampler, SameSeedSameTokensOtherSeedOtherTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  std::vector<bool> valid(64, true);
  auto draw = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p, valid);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) {
      std::vector<float> l(64);
      for (int j = 0; j < 64; ++j) l[j] = std::sin(static_cast<float>(j * 7 + i));
      out.push_back(s.sample(l, {}, {}));
    }
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, TopKTopPAndMinPLimitTheCandidates) {
  std::vector<bool> valid(5, true);
  auto seen = [&](SamplingParams p) {
    std::map<int32_t, int> counts;
    for (uint64_t seed = 0; seed < 400; ++seed) {
      p.seed = seed;
      Sampler s(p, valid);
      auto l = logits_of({4.0f, 3.0f, 2.0f, 1.0f, 0.0f});
      counts[s.sample(l, {}, {})]++;
    }
    return counts;
  };
  SamplingParams p;
  p.top_k = 2;
  auto c = seen(p);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(c.count(0) && c.count(1));
  p = {};
  // softmax of 4,3,2,1,0: 0.636, 0.234, 0.086, 0.032, 0.012: top_p 0.8 keeps the first two.
  p.top_p = 0.8f;
  c = seen(p);
  EXPECT_EQ(c.size(), 2u);
  p = {};
  p.min_p = 0.1f;  // keep p >= 0.0636: the first three
  c = seen(p);
  EXPECT_EQ(c.size(), 3u);
  EXPECT_FALSE(c.count(3));
}

TEST(Sampler, PenaltiesFollowOpenAIAndHFDefinitions) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.frequency_penalty = 1.5f;
  Sampler freq(p, std::vector<bool>(3, true));
  auto l = logits_of({3.0f, 2.0f, 0.0f});
  const std::vector<int32_t> out = {0, 0};
  EXPECT_EQ(freq.sample(l, {}, out), 1);  // 3 - 2*1.5 = 0 < 2
  EXPECT_FLOAT_EQ(l[0], 0.0f);

  p = {};
  p.temperature = 0.0f;
  p.presence_penalty = 0.5f;
  Sampler pres(p, std::vector<bool>(3, true));
  l = logits_of({3.0f, 2.8f, 0.0f});
  EXPECT_EQ(pres.sample(l, {}, out), 1);  // 3 - 0.5 = 2.5 < 2.8 (once, whatever the count)
  EXPECT_FLOAT_EQ(l[0], 2.5f);

  p = {};
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  Sampler rep(p, std::vector<bool>(3, true));
  l = logits_of({3.0f, 2.0f, -1.0f});
  const std::vector<int32_t> prompt = {0, 2};
  EXPECT_EQ(rep.sample(l, prompt, {}), 1);  // 3 / 2 = 1.5 < 2; the prompt counts too
  EXPECT_FLOAT_EQ(l[0], 1.5f);
  EXPECT_FLOAT_EQ(l[2], -2.0f);  // negative logits are multiplied
}

TEST(Sampler, ArgmaxPathsAgreeWithMaxElement) {
  std::mt19937 gen(5);
  for (size_t n : {16u, 17u, 31u, 100u, 129280u}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(n);
      for (float& v : x) v = static_cast<float>(gen() % 50) - 60.0f;  // many ties
      if (trial % 3 == 0) x[gen() % n] = -INFINITY;
      const int64_t want = std::max_element(x.begin(), x.end()) - x.begin();
      EXPECT_EQ(sampler_detail::argmax_portable(x), want) << n;
      if (cpu_features().avx512f) {
        EXPECT_EQ(sampler_detail::argmax_avx512(x), want) << n;
      }
    }
  }
}

// A draw's weights e^((x - mx) / T): close to std::exp (a few float ulp), exactly 0 for masked
// (-inf) and underflowing arguments, and bit for bit the same on every path (vector body and
// tail alike), so a seeded draw does not depend on the CPU's features.
TEST(Sampler, ExpWeightsMatchStdExpAndEveryPathBitForBit) {
  std::mt19937 gen(11);
  std::uniform_real_distribution<float> spread(-100.0f, 0.0f);
  for (size_t n : {1u, 15u, 16u, 17u, 1000u, 129280u}) {
    std::vector<float> x(n);
    for (float& v : x) v = spread(gen);
    x[0] = 0.0f;
    if (n > 3) {
      x[1] = -INFINITY;
      x[2] = -87.33f;
      x[3] = -87.34f;
    }
    for (float inv_t : {1.0f, 1.0f / 0.7f, 0.5f, 100.0f}) {
      std::vector<double> portable(n), vec(n);
      sampler_detail::exp_weights_portable(x, 0.0f, inv_t, portable.data());
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(portable[i], sampler_detail::exp_weight(x[i], 0.0f, inv_t)) << i;
        const float t = x[i] * inv_t;
        if (!(t >= -87.3365448f)) {
          ASSERT_EQ(portable[i], 0.0) << "x " << x[i] << " t " << t;
          continue;
        }
        const double want = std::exp(static_cast<double>(t));
        ASSERT_NEAR(portable[i], want, want * 4e-7) << "t " << t;
      }
      if (cpu_features().avx512f) {
        sampler_detail::exp_weights_avx512(x, 0.0f, inv_t, vec.data());
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(vec[i], portable[i]) << "n " << n << " i " << i;
      }
    }
  }
}

// The fast sampler against the plain reference (full mask pass, full penalty passes, a full
// sort): the same tokens at every step, and the same logits left behind, over DeepSeek-V3's
// vocabulary shape (129,280 rows, the last 465 without a token) and a small one, for peaked,
// flat and tied logits, every truncation, and penalties over a growing output.
TEST(Sampler, FastPathDrawsExactlyWhatTheReferenceDraws) {
  struct Config {
    const char* name;
    SamplingParams p;
  };
  auto make = [](float t, int32_t k, float top_p, float min_p, bool penalties) {
    SamplingParams p;
    p.temperature = t;
    p.top_k = k;
    p.top_p = top_p;
    p.min_p = min_p;
    if (penalties) {
      p.repetition_penalty = 1.3f;
      p.presence_penalty = 0.5f;
      p.frequency_penalty = 0.3f;
    }
    return p;
  };
  const std::vector<Config> configs = {
      {"greedy", make(0.0f, 0, 1.0f, 0.0f, false)},
      {"greedy+penalties", make(0.0f, 0, 1.0f, 0.0f, true)},
      {"t=1", make(1.0f, 0, 1.0f, 0.0f, false)},
      {"t=0.7 top_p=0.9", make(0.7f, 0, 0.9f, 0.0f, false)},
      {"top_k=40", make(1.0f, 40, 1.0f, 0.0f, false)},
      {"min_p=0.05", make(1.3f, 0, 1.0f, 0.05f, false)},
      {"all+penalties", make(0.9f, 100, 0.5f, 0.1f, true)},
      {"t=1.5 top_p=0.95+penalties", make(1.5f, 0, 0.95f, 0.0f, true)},
  };
  enum class Shape { kPeaked, kFlat, kTied };
  SamplerScratch shared;  // odd seeds draw with one scratch shared by every sampler, as the engine
  auto run = [&](int64_t n_vocab, int64_t n_invalid, Shape shape, const Config& c, uint64_t seed,
                 int steps) {
    std::vector<bool> valid(static_cast<size_t>(n_vocab), true);
    for (int64_t i = n_vocab - n_invalid; i < n_vocab; ++i) valid[static_cast<size_t>(i)] = false;
    valid[7] = false;  // one hole in the middle too
    SamplingParams p = c.p;
    p.seed = seed;
    Sampler fast(p, valid);
    std::mt19937_64 ref_rng(seed);
    std::mt19937 gen(static_cast<uint32_t>(seed * 7919 + static_cast<uint64_t>(shape)));
    std::normal_distribution<float> normal(0.0f, shape == Shape::kPeaked ? 3.0f : 1.0f);
    const std::vector<int32_t> prompt = {1, 5, 9, 5, 200};
    std::vector<int32_t> output;
    for (int step = 0; step < steps; ++step) {
      std::vector<float> logits(static_cast<size_t>(n_vocab));
      for (float& x : logits) {
        x = normal(gen);
        if (shape == Shape::kTied) x = std::round(x * 2.0f) / 2.0f;
      }
      if (shape == Shape::kPeaked) logits[gen() % static_cast<uint32_t>(n_vocab)] += 12.0f;
      std::vector<float> ref_logits = logits;
      const int32_t a = fast.sample(logits, prompt, output, seed % 2 ? &shared : nullptr);
      const int32_t b = sample_reference(p, ref_rng, valid, ref_logits, prompt, output);
      ASSERT_EQ(a, b) << c.name << " vocab " << n_vocab << " seed " << seed << " step " << step;
      ASSERT_TRUE(valid[static_cast<size_t>(a)]) << c.name;
      ASSERT_EQ(logits, ref_logits) << c.name << ": the penalised logits differ";
      output.push_back(a);
    }
  };
  for (const Config& c : configs) {
    for (Shape shape : {Shape::kPeaked, Shape::kFlat, Shape::kTied}) {
      run(129280, 465, shape, c, 11, 4);
      for (uint64_t seed = 0; seed < 40; ++seed) run(997, 20, shape, c, seed, 6);
    }
  }
}

TEST(Sampler, ValidateNamesTheField) {
  SamplingParams p;
  p.temperature = 3.0f;
  EXPECT_NE(p.validate().message().find("temperature"), std::string::npos);
  p = {};
  p.top_p = 0.0f;
  EXPECT_NE(p.validate().message().find("top_p"), std::string::npos);
  p = {};
  p.presence_penalty = -2.5f;
  EXPECT_NE(p.validate().message().find("presence_penalty"), std::string::npos);
  p = {};
  p.stop = {""};
  EXPECT_NE(p.validate().message().find("stop"), std::string::npos);
  p = {};
  p.temperature = NAN;
  EXPECT_FALSE(p.validate().ok());
  EXPECT_TRUE(SamplingParams{}.validate().ok());
}

}  // namespace
}  // namespace seekserve
