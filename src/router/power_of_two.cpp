// power_of_two: two distinct backends drawn at random, the one with fewer requests in flight
// wins (a coin decides ties). Nearly as even as least_connections without every router
// herding onto the same least-loaded backend.

#include <random>

#include "router/balancing_policy.h"

namespace seekserve {
namespace {

class PowerOfTwoPolicy final : public BalancingPolicy {
 public:
  explicit PowerOfTwoPolicy(uint64_t seed) : rng_(seed) {}
  const char* name() const override { return "power_of_two"; }
  size_t choose(std::span<const BackendLoad> candidates, const RouteRequest&) override {
    const size_t n = candidates.size();
    if (n == 1) return 0;
    const size_t a = rng_() % n;
    size_t b = rng_() % (n - 1);
    if (b >= a) ++b;
    if (candidates[a].in_flight != candidates[b].in_flight)
      return candidates[a].in_flight < candidates[b].in_flight ? a : b;
    return (rng_() & 1) ? a : b;
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace

std::unique_ptr<BalancingPolicy> make_power_of_two_policy(uint64_t seed) {
  return std::make_unique<PowerOfTwoPolicy>(seed);
}

}  // namespace seekserve
