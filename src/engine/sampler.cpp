#include "engine/sampler.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/cpu_features.h"

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

VocabMask::VocabMask(std::vector<bool> valid) : valid_(std::move(valid)) {
  for (size_t i = 0; i < valid_.size(); ++i)
    if (!valid_[i]) invalid_.push_back(static_cast<int32_t>(i));
}

namespace {

// Index of the largest value, the lowest index among equal ones (std::max_element's answer for
// input without NaN), in one pass over 16 independent lanes, each keeping its first maximum.
int64_t argmax_lanes(std::span<const float> x, float* best, int32_t* at, int64_t done) {
  constexpr int64_t kLanes = 16;
  const int64_t n = static_cast<int64_t>(x.size());
  float m = best[0];
  int64_t r = at[0];
  for (int64_t j = 1; j < kLanes; ++j) {
    if (best[j] > m || (best[j] == m && at[j] < r)) {
      m = best[j];
      r = at[j];
    }
  }
  for (int64_t i = done; i < n; ++i) {  // the tail's indices are above every lane's
    if (x[i] > m) {
      m = x[i];
      r = i;
    }
  }
  return r;
}

}  // namespace

namespace sampler_detail {

int64_t argmax_portable(std::span<const float> x) {
  constexpr int64_t kLanes = 16;
  const int64_t n = static_cast<int64_t>(x.size());
  float best[kLanes];
  int32_t at[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) {
    best[j] = x[j];
    at[j] = static_cast<int32_t>(j);
  }
  int64_t i = kLanes;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const float v = x[i + j];
      const bool gt = v > best[j];
      best[j] = gt ? v : best[j];
      at[j] = gt ? static_cast<int32_t>(i + j) : at[j];
    }
  }
  return argmax_lanes(x, best, at, i);
}

__attribute__((target("avx512f"))) int64_t argmax_avx512(std::span<const float> x) {
  const int64_t n = static_cast<int64_t>(x.size());
  __m512 best = _mm512_loadu_ps(x.data());
  __m512i at = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i idx = at;
  const __m512i step = _mm512_set1_epi32(16);
  int64_t i = 16;
  for (; i + 16 <= n; i += 16) {
    idx = _mm512_add_epi32(idx, step);
    const __m512 v = _mm512_loadu_ps(x.data() + i);
    const __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, gt, v);
    at = _mm512_mask_mov_epi32(at, gt, idx);
  }
  alignas(64) float b[16];
  alignas(64) int32_t a[16];
  _mm512_store_ps(b, best);
  _mm512_store_si512(a, at);
  return argmax_lanes(x, b, a, i);
}

// e^t for t = (x - mx) · inv_t ≤ 0: t = n·ln2 + r (|r| ≤ ln2/2, ln2 in two parts), e^r by a
// degree-6 polynomial (Cephes' expf coefficients), times 2^n.
constexpr float kExpLow = -87.3365448f;  // below: 0 (e^t is under the smallest normal float)
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

float exp_weight(float x, float mx, float inv_t) {
  const float t = (x - mx) * inv_t;
  if (!(t >= kExpLow)) return 0.0f;  // -inf (masked) and NaN too
  const float n = std::nearbyint(t * kLog2e);
  float r = std::fma(n, -kLn2Hi, t);
  r = std::fma(n, -kLn2Lo, r);
  float p = std::fma(kP0, r, kP1);
  p = std::fma(p, r, kP2);
  p = std::fma(p, r, kP3);
  p = std::fma(p, r, kP4);
  p = std::fma(p, r, kP5);
  const float r2 = r * r;
  p = std::fma(p, r2, r + 1.0f);
  return std::ldexp(p, static_cast<int>(n));
}

void exp_weights_portable(std::span<const float> x, float mx, float inv_t, double* out) {
  for (size_t i = 0; i < x.size(); ++i) out[i] = exp_weight(x[i], mx, inv_t);
}

// GCC 12's intrinsics headers trip -Wmaybe-uninitialized here (their _mm512_undefined_*
// self-initialisation, GCC bug 105593), as in the kernel files.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
__attribute__((target("avx512f"))) void exp_weights_avx512(std::span<const float> x, float mx,
                                                           float inv_t, double* out) {
  const int64_t n = static_cast<int64_t>(x.size());
  const __m512 vmx = _mm512_set1_ps(mx), vinv = _mm512_set1_ps(inv_t);
  const __m512 low = _mm512_set1_ps(kExpLow), log2e = _mm512_set1_ps(kLog2e);
  const __m512 hi = _mm512_set1_ps(-kLn2Hi), lo = _mm512_set1_ps(-kLn2Lo);
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x.data() + i), vmx), vinv);
    const __mmask16 ok = _mm512_cmp_ps_mask(t, low, _CMP_GE_OQ);
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(t, log2e),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(k, hi, t);
    r = _mm512_fmadd_ps(k, lo, r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kP0), r, _mm512_set1_ps(kP1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, one));
    const __m512 e = _mm512_maskz_scalef_ps(ok, p, k);
    _mm512_storeu_pd(out + i, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    const __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1));
    _mm512_storeu_pd(out + i + 8, _mm512_cvtps_pd(upper));
  }
  for (; i < n; ++i) out[i] = exp_weight(x[i], mx, inv_t);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace sampler_detail

namespace {

int64_t argmax(std::span<const float> x) {
  if (x.size() < 16) return std::max_element(x.begin(), x.end()) - x.begin();
  static const bool avx512 = cpu_features().avx512f;
  return avx512 ? sampler_detail::argmax_avx512(x) : sampler_detail::argmax_portable(x);
}

void exp_weights(std::span<const float> x, float mx, float inv_t, double* out) {
  static const bool avx512 = cpu_features().avx512f;
  if (avx512) {
    sampler_detail::exp_weights_avx512(x, mx, inv_t, out);
  } else {
    sampler_detail::exp_weights_portable(x, mx, inv_t, out);
  }
}

// Bands of extend_order(): probability ratios to the most likely id, exp(-z) for these z.
constexpr double kBandZ[] = {1, 3, 8, 20, 50, 150};
constexpr int kBands = static_cast<int>(std::size(kBandZ)) + 1;  // the last: everything > 0

}  // namespace

Sampler::Sampler(SamplingParams params, std::shared_ptr<const VocabMask> mask)
    : params_(std::move(params)), mask_(std::move(mask)), rng_(params_.seed) {}

Sampler::Sampler(SamplingParams params, std::vector<bool> valid)
    : Sampler(std::move(params), std::make_shared<const VocabMask>(std::move(valid))) {}

namespace {

// Appends the next band of candidates (valid ids with a non-zero probability) to w.order,
// sorted by logit (descending, ties: lower id first); false when none are left.
bool extend_order(SamplerScratch& w, std::span<const float> logits) {
  if (w.band >= kBands) return false;
  const double lower = w.band < kBands - 1 ? std::exp(-kBandZ[w.band]) : 0.0;
  const double upper = w.band == 0 ? INFINITY : std::exp(-kBandZ[w.band - 1]);
  ++w.band;
  const size_t first = w.order.size();
  const int64_t n = static_cast<int64_t>(logits.size());
  for (int64_t i = 0; i < n; ++i) {
    const double e = w.e[static_cast<size_t>(i)];
    if (e < upper && (w.band == kBands ? e > lower : e >= lower))
      w.order.push_back(static_cast<int32_t>(i));
  }
  std::sort(w.order.begin() + static_cast<std::ptrdiff_t>(first), w.order.end(),
            [&](int32_t a, int32_t b) {
              return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
            });
  for (size_t i = first; i < w.order.size(); ++i) w.p.push_back(w.e[w.order[i]] / w.sum);
  return w.order.size() > first || extend_order(w, logits);
}

}  // namespace

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> output, SamplerScratch* scratch) {
  SamplerScratch& w = scratch ? *scratch : own_;
  const int64_t n = static_cast<int64_t>(logits.size());
  for (int32_t id : mask_->invalid_ids()) {
    if (id >= n) break;
    logits[id] = -INFINITY;
  }
  for (int64_t i = mask_->size(); i < n; ++i) logits[i] = -INFINITY;
  auto in_range = [n](int32_t id) { return id >= 0 && id < n; };
  if (params_.repetition_penalty != 1.0f) {  // once per distinct id of the sequence
    if (static_cast<int64_t>(w.seen.size()) < n) w.seen.assign(static_cast<size_t>(n), 0);
    for (auto ids : {prompt, output}) {
      for (int32_t id : ids) {
        if (!in_range(id) || w.seen[id]) continue;
        w.seen[id] = 1;
        logits[id] = logits[id] > 0 ? logits[id] / params_.repetition_penalty
                                    : logits[id] * params_.repetition_penalty;
      }
    }
    for (auto ids : {prompt, output})
      for (int32_t id : ids)
        if (in_range(id)) w.seen[id] = 0;
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    if (static_cast<int64_t>(w.count.size()) < n) w.count.assign(static_cast<size_t>(n), 0);
    for (int32_t id : output)
      if (in_range(id)) ++w.count[id];
    for (int32_t id : output) {
      if (!in_range(id) || w.count[id] == 0) continue;
      logits[id] -= params_.presence_penalty + params_.frequency_penalty * w.count[id];
      w.count[id] = 0;
    }
  }
  if (params_.temperature == 0.0f) return static_cast<int32_t>(argmax(logits));

  // Candidates in sampling order (logit descending, ties: lower id), as far as needed.
  w.order.clear();
  w.p.clear();
  const double mx = logits[static_cast<size_t>(argmax(logits))];
  if (!(mx > -INFINITY)) return static_cast<int32_t>(argmax(logits));  // nothing to draw from
  bool whole = false;  // w.order holds every candidate
  double total = 0.0;  // sum of p over all candidates when nothing is cut
  if (params_.top_k > 0 && params_.top_k < n) {
    const int64_t keep = params_.top_k;
    w.order.resize(static_cast<size_t>(n));
    std::iota(w.order.begin(), w.order.end(), 0);
    std::partial_sort(w.order.begin(), w.order.begin() + keep, w.order.end(),
                      [&](int32_t a, int32_t b) {
                        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                      });
    w.order.resize(static_cast<size_t>(keep));
    double sum = 0.0;
    for (int32_t id : w.order) {
      w.p.push_back(std::exp((logits[id] - mx) / params_.temperature));
      sum += w.p.back();
    }
    for (double& x : w.p) x /= sum;
    for (double x : w.p) total += x;
    whole = true;
    w.band = kBands;
  } else {
    if (static_cast<int64_t>(w.e.size()) < n) w.e.resize(static_cast<size_t>(n));
    exp_weights(logits, static_cast<float>(mx), 1.0f / params_.temperature, w.e.data());
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += w.e[i];
    w.sum = sum;
    for (int64_t i = 0; i < n; ++i) total += w.e[i] / sum;
    w.band = 0;
    if (params_.top_p >= 1.0f && params_.min_p <= 0.0f) {
      // Nothing cuts the distribution: the draw walks it in id order, no sorting at all.
      std::uniform_real_distribution<double> uniform(0.0, total);
      double u = uniform(rng_);
      int64_t last = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double p = w.e[i] / sum;
        if (!(p > 0.0)) continue;
        last = i;
        u -= p;
        if (u <= 0.0) return static_cast<int32_t>(i);
      }
      return static_cast<int32_t>(last);  // rounding left a sliver: the last candidate
    }
  }
  // w.p[i] for i < w.order.size(); false past the last candidate.
  auto have = [&](size_t i) { return i < w.order.size() || (!whole && extend_order(w, logits)); };
  size_t cut = SIZE_MAX;  // SIZE_MAX: no cut
  if (params_.top_p < 1.0f) {
    double acc = 0.0;
    for (size_t i = 0; have(i); ++i) {
      acc += w.p[i];
      if (acc >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f && have(0)) {
    const double floor = params_.min_p * w.p[0];
    size_t i = 1;
    while (i < cut && have(i) && w.p[i] >= floor) ++i;
    cut = i;
  }
  if (cut != SIZE_MAX) {
    total = 0.0;
    for (size_t i = 0; i < cut; ++i) total += w.p[i];
  }
  std::uniform_real_distribution<double> uniform(0.0, total);
  double u = uniform(rng_);
  size_t i = 0;
  for (; i < cut && have(i); ++i) {
    u -= w.p[i];
    if (u <= 0.0) return w.order[i];
  }
  return w.order[i - 1];  // rounding left a sliver: the last candidate walked
}

int32_t sample_reference(const SamplingParams& params, std::mt19937_64& rng,
                         const std::vector<bool>& valid, std::span<float> logits,
                         std::span<const int32_t> prompt, std::span<const int32_t> output) {
  const int64_t n = static_cast<int64_t>(logits.size());
  for (int64_t i = 0; i < n; ++i) {
    if (i >= static_cast<int64_t>(valid.size()) || !valid[static_cast<size_t>(i)])
      logits[i] = -INFINITY;
  }
  if (params.repetition_penalty != 1.0f) {
    std::vector<bool> seen(static_cast<size_t>(n), false);
    for (auto ids : {prompt, output})
      for (int32_t id : ids)
        if (id >= 0 && id < n) seen[id] = true;
    for (int64_t i = 0; i < n; ++i) {
      if (!seen[i]) continue;
      logits[i] = logits[i] > 0 ? logits[i] / params.repetition_penalty
                                : logits[i] * params.repetition_penalty;
    }
  }
  if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {
    std::vector<int32_t> count(static_cast<size_t>(n), 0);
    for (int32_t id : output)
      if (id >= 0 && id < n) ++count[id];
    for (int64_t i = 0; i < n; ++i) {
      if (count[i] > 0) logits[i] -= params.presence_penalty + params.frequency_penalty * count[i];
    }
  }
  if (params.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  if (!(params.top_k > 0 && params.top_k < n) && params.top_p >= 1.0f && params.min_p <= 0.0f) {
    // Nothing cuts the distribution: the draw walks it in id order.
    const double mx = *std::max_element(logits.begin(), logits.end());
    std::vector<double> p(static_cast<size_t>(n));
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      p[i] =
          sampler_detail::exp_weight(logits[i], static_cast<float>(mx), 1.0f / params.temperature);
      sum += p[i];
    }
    double total = 0.0;
    for (double& x : p) {
      x /= sum;
      total += x;
    }
    std::uniform_real_distribution<double> uniform(0.0, total);
    double u = uniform(rng);
    int64_t last = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!(p[i] > 0.0)) continue;
      last = i;
      u -= p[i];
      if (u <= 0.0) return static_cast<int32_t>(i);
    }
    return static_cast<int32_t>(last);
  }
  // Candidates sorted by logit (ties: lower id first): top-k, top-p and min-p cut from the top.
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  int64_t keep = n;
  if (params.top_k > 0 && params.top_k < n) keep = params.top_k;
  std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  idx.resize(static_cast<size_t>(keep));
  const double mx = logits[idx[0]];
  std::vector<double> p(idx.size());
  double sum = 0.0;
  const bool top_k = params.top_k > 0 && params.top_k < n;
  for (size_t i = 0; i < idx.size(); ++i) {
    p[i] = top_k ? std::exp((logits[idx[i]] - mx) / params.temperature)
                 : sampler_detail::exp_weight(logits[idx[i]], static_cast<float>(mx),
                                              1.0f / params.temperature);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  size_t cut = p.size();
  if (params.top_p < 1.0f) {
    double acc = 0.0;
    for (size_t i = 0; i < p.size(); ++i) {
      acc += p[i];
      if (acc >= params.top_p) {
        cut = i + 1;
        break;
      }
    }
  }
  if (params.min_p > 0.0f) {
    const double floor = params.min_p * p[0];
    size_t i = 1;
    while (i < cut && p[i] >= floor) ++i;
    cut = i;
  }
  double total = 0.0;
  for (size_t i = 0; i < cut; ++i) total += p[i];
  std::uniform_real_distribution<double> uniform(0.0, total);
  double u = uniform(rng);
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
