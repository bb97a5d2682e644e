// round_robin: each backend in turn, in id order. The cursor is a backend id, not an index, so
// a backend leaving or joining (or being skipped on a retry) does not reset the rotation.

#include "router/balancing_policy.h"

namespace seekserve {
namespace {

class RoundRobinPolicy final : public BalancingPolicy {
 public:
  const char* name() const override { return "round_robin"; }
  size_t choose(std::span<const BackendLoad> candidates, const RouteRequest&) override {
    // The first candidate after the last one chosen, wrapping around.
    size_t pick = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].id > last_) {
        pick = i;
        break;
      }
    }
    last_ = candidates[pick].id;
    return pick;
  }

 private:
  BackendId last_ = 0;  // ids start at 1
};

}  // namespace

std::unique_ptr<BalancingPolicy> make_round_robin_policy() {
  return std::make_unique<RoundRobinPolicy>();
}

}  // namespace seekserve
