// Sampling cost per token over DeepSeek-V3's vocabulary (129,280 logits, the last 465 ids
// without a token): the fast Sampler against sample_reference() (the plain version: full mask
// pass, full penalty passes, a full sort), side by side on the same logits, for greedy and the
// usual random settings. Logits are normal(0, 3) with one clear favourite (a trained model's
// shape) or normal(0, 1) (a random-weight model's flat shape). Prints the median of 7 runs.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "engine/sampler.h"

namespace {

using seekserve::SamplingParams;

double now_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  constexpr int64_t kVocab = 129280, kInvalid = 465;
  std::vector<bool> valid(kVocab, true);
  for (int64_t i = kVocab - kInvalid; i < kVocab; ++i) valid[static_cast<size_t>(i)] = false;
  struct Case {
    const char* name;
    float temperature;
    int32_t top_k;
    float top_p;
    bool penalties;
  };
  const Case cases[] = {
      {"greedy", 0.0f, 0, 1.0f, false},        {"greedy + penalties", 0.0f, 0, 1.0f, true},
      {"t=1", 1.0f, 0, 1.0f, false},           {"t=0.7 top_p=0.9", 0.7f, 0, 0.9f, false},
      {"t=1 top_k=40", 1.0f, 40, 1.0f, false},
  };
  std::mt19937 gen(1234);
  const std::vector<int32_t> prompt(512, 17), output = {3, 4, 5, 3, 900, 77};
  std::printf("sampler_bench: %lld logits, %lld masked; microseconds per token (median of 7)\n",
              static_cast<long long>(kVocab), static_cast<long long>(kInvalid));
  std::printf("%-22s %-7s %12s %12s %8s\n", "case", "logits", "reference", "fast", "ratio");
  for (const char* shape : {"peaked", "flat"}) {
    const bool peaked = shape[0] == 'p';
    std::normal_distribution<float> normal(0.0f, peaked ? 3.0f : 1.0f);
    std::vector<float> base(kVocab);
    for (float& x : base) x = normal(gen);
    if (peaked) base[4242] += 12.0f;
    for (const Case& c : cases) {
      SamplingParams p;
      p.temperature = c.temperature;
      p.top_k = c.top_k;
      p.top_p = c.top_p;
      if (c.penalties) {
        p.repetition_penalty = 1.1f;
        p.presence_penalty = 0.3f;
      }
      seekserve::Sampler fast(p, valid);
      std::mt19937_64 rng(p.seed);
      const int reps = c.temperature == 0.0f ? 200 : 10;
      std::vector<double> ref_us, fast_us;
      std::vector<float> l;
      for (int run = 0; run < 7; ++run) {
        double t0 = now_us();
        for (int i = 0; i < reps; ++i) {
          l = base;
          seekserve::sample_reference(p, rng, valid, l, prompt, output);
        }
        double t1 = now_us();
        for (int i = 0; i < reps; ++i) {
          l = base;
          fast.sample(l, prompt, output);
        }
        double t2 = now_us();
        ref_us.push_back((t1 - t0) / reps);
        fast_us.push_back((t2 - t1) / reps);
      }
      const double r = median(ref_us), f = median(fast_us);
      std::printf("%-22s %-7s %12.1f %12.1f %7.1fx\n", c.name, shape, r, f, r / f);
    }
  }
  return 0;
}
