#include "engine/sampler.h"

#include <cmath>
#include <map>

#include <gtest/gtest.h>

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
