#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace seekserve {

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f && temperature <= 2.0f))
    return invalid_argument("temperature: {} not in [0, 2]", temperature);
  if (top_k < 0) return invalid_argument("top_k: {} must be >= 0", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return invalid_argument("top_p: {} not in (0, 1]", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return invalid_argument("min_p: {} not in [0, 1]", min_p);
  if (!(repetition_penalty > 0.0f && repetition_penalty <= 10.0f)) {
    return invalid_argument("repetition_penalty: {} not in (0, 10]", repetition_penalty);
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return invalid_argument("presence_penalty: {} not in [-2, 2]", presence_penalty);
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return invalid_argument("frequency_penalty: {} not in [-2, 2]", frequency_penalty);
  }
  for (const std::string& s : stop) {
    if (s.empty()) return invalid_argument("stop: empty stop string");
  }
  return Status::ok_status();
}

Sampler::Sampler(SamplingParams params, std::vector<bool> valid)
    : params_(std::move(params)), valid_(std::move(valid)), rng_(params_.seed) {}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> output) {
  const int64_t n = static_cast<int64_t>(logits.size());
  for (int64_t i = 0; i < n; ++i) {
    if (i >= static_cast<int64_t>(valid_.size()) || !valid_[static_cast<size_t>(i)])
      logits[i] = -INFINITY;
  }
  if (params_.repetition_penalty != 1.0f) {
    std::vector<bool> seen(static_cast<size_t>(n), false);
    for (auto ids : {prompt, output})
      for (int32_t id : ids)
        if (id >= 0 && id < n) seen[id] = true;
    for (int64_t i = 0; i < n; ++i) {
      if (!seen[i]) continue;
      logits[i] = logits[i] > 0 ? logits[i] / params_.repetition_penalty
                                : logits[i] * params_.repetition_penalty;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    count_.assign(static_cast<size_t>(n), 0);
    for (int32_t id : output)
      if (id >= 0 && id < n) ++count_[id];
    for (int64_t i = 0; i < n; ++i) {
      if (count_[i] > 0)
        logits[i] -= params_.presence_penalty + params_.frequency_penalty * count_[i];
    }
  }
  if (params_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Candidates sorted by logit (ties: lower id first).
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  int64_t keep = n;
  if (params_.top_k > 0 && params_.top_k < n) keep = params_.top_k;
  std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  idx.resize(static_cast<size_t>(keep));
  const double mx = logits[idx[0]];
  std::vector<double> p(idx.size());
  double sum = 0.0;
  for (size_t i = 0; i < idx.size(); ++i) {
    p[i] = std::exp((logits[idx[i]] - mx) / params_.temperature);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  size_t cut = p.size();
  if (params_.top_p < 1.0f) {
    double acc = 0.0;
    for (size_t i = 0; i < p.size(); ++i) {
      acc += p[i];
      if (acc >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {
    const double floor = params_.min_p * p[0];
    size_t i = 1;
    while (i < cut && p[i] >= floor) ++i;
    cut = i;
  }
  double total = 0.0;
  for (size_t i = 0; i < cut; ++i) total += p[i];
  std::uniform_real_distribution<double> uniform(0.0, total);
  double u = uniform(rng_);
  for (size_t i = 0; i < cut; ++i) {
    u -= p[i];
    if (u <= 0.0) return idx[i];
  }
  return idx[cut - 1];
}

LogprobTable logprob_table(std::span<const float> logits, const std::vector<bool>& valid,
                           int32_t k) {
  LogprobTable t;
  const size_t n = logits.size();
  auto ok = [&](size_t i) { return i < valid.size() && valid[i]; };
  float mx = -INFINITY;
  for (size_t i = 0; i < n; ++i)
    if (ok(i)) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (size_t i = 0; i < n; ++i)
    if (ok(i)) sum += std::exp(static_cast<double>(logits[i]) - mx);
  t.log_z = static_cast<double>(mx) + std::log(sum);
  if (k <= 0) return t;
  std::vector<int32_t> idx;
  idx.reserve(n);
  for (size_t i = 0; i < n; ++i)
    if (ok(i)) idx.push_back(static_cast<int32_t>(i));
  const size_t keep = std::min(idx.size(), static_cast<size_t>(k));
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(keep), idx.end(),
                    [&](int32_t a, int32_t b) {
                      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                    });
  for (size_t i = 0; i < keep; ++i)
    t.top.push_back({idx[i], static_cast<float>(logits[idx[i]] - t.log_z)});
  return t;
}

}  // namespace seekserve
