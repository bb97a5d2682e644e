// least_connections: the backend with the fewest requests in flight through this router. Ties
// go round-robin (after the last one chosen), so equally idle backends share the work instead of
// the lowest id taking every sequential request.

#include "router/balancing_policy.h"

namespace seekserve {
namespace {

class LeastConnectionsPolicy final : public BalancingPolicy {
 public:
  const char* name() const override { return "least_connections"; }
  size_t choose(std::span<const BackendLoad> candidates, const RouteRequest&) override {
    int64_t least = candidates[0].in_flight;
    for (const BackendLoad& b : candidates) least = std::min(least, b.in_flight);
    size_t first_tie = candidates.size();
    size_t pick = candidates.size();
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].in_flight != least) continue;
      if (first_tie == candidates.size()) first_tie = i;
      if (candidates[i].id > last_) {
        pick = i;
        break;
      }
    }
    if (pick == candidates.size()) pick = first_tie;
    last_ = candidates[pick].id;
    return pick;
  }

 private:
  BackendId last_ = 0;
};

}  // namespace

std::unique_ptr<BalancingPolicy> make_least_connections_policy() {
  return std::make_unique<LeastConnectionsPolicy>();
}

}  // namespace seekserve
