#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace seekserve {

double yarn_get_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double mla_softmax_scale(const ModelConfig& c) {
  double scale = 1.0 / std::sqrt(static_cast<double>(c.qk_nope_head_dim + c.qk_rope_head_dim));
  if (c.rope_scaling.type == RopeScaling::Type::kYarn && c.rope_scaling.mscale_all_dim != 0.0) {
    const double m = yarn_get_mscale(c.rope_scaling.factor, c.rope_scaling.mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

Rope::Rope(const ModelConfig& c, int64_t dim, RopePairing pairing,
           std::span<const float> freq_factors)
    : dim_(dim), pairing_(pairing) {
  const double base = c.rope_theta;
  const double d = static_cast<double>(dim);
  inv_freq_.resize(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    inv_freq_[static_cast<size_t>(i)] = std::pow(base, -2.0 * static_cast<double>(i) / d);
  }
  if (!freq_factors.empty()) {
    for (size_t i = 0; i < inv_freq_.size() && i < freq_factors.size(); ++i)
      inv_freq_[i] /= freq_factors[i];
    return;
  }
  const RopeScaling& s = c.rope_scaling;
  switch (s.type) {
    case RopeScaling::Type::kNone:
      break;
    case RopeScaling::Type::kLinear:
      for (double& f : inv_freq_) f /= s.factor;
      break;
    case RopeScaling::Type::kYarn: {
      const double l = static_cast<double>(s.original_max_position_embeddings);
      auto corr = [&](double rotations) {
        return d * std::log(l / (2.0 * std::numbers::pi * rotations)) / (2.0 * std::log(base));
      };
      double low = std::max(std::floor(corr(s.beta_fast)), 0.0);
      double high = std::min(std::ceil(corr(s.beta_slow)), d - 1.0);
      if (low == high) high += 0.001;
      for (size_t i = 0; i < inv_freq_.size(); ++i) {
        const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
        inv_freq_[i] = inv_freq_[i] * ((1.0 - ramp) + ramp / s.factor);
      }
      const double mscale_all_dim = s.mscale_all_dim;
      attention_factor_ =
          yarn_get_mscale(s.factor, s.mscale) / yarn_get_mscale(s.factor, mscale_all_dim);
      break;
    }
    case RopeScaling::Type::kLlama3: {
      const double l = static_cast<double>(s.original_max_position_embeddings);
      const double low_wavelen = l / s.low_freq_factor;
      const double high_wavelen = l / s.high_freq_factor;
      for (double& f : inv_freq_) {
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_wavelen) {
          f /= s.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth =
              (l / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          f = (1.0 - smooth) * f / s.factor + smooth * f;
        }
      }
      break;
    }
  }
}

void Rope::apply(float* x, int64_t pos) const {
  const int64_t half = dim_ / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * inv_freq_[static_cast<size_t>(i)];
    const double c = std::cos(angle) * attention_factor_;
    const double s = std::sin(angle) * attention_factor_;
    const int64_t a = pairing_ == RopePairing::kAdjacent ? 2 * i : i;
    const int64_t b = pairing_ == RopePairing::kAdjacent ? 2 * i + 1 : i + half;
    const double xa = x[a], xb = x[b];
    x[a] = static_cast<float>(xa * c - xb * s);
    x[b] = static_cast<float>(xb * c + xa * s);
  }
}

}  // namespace seekserve
