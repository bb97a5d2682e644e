// weighted: smooth weighted round-robin (the nginx algorithm). Each pick adds every candidate's
// weight to its running score, takes the highest score (lowest id on ties) and subtracts the
// total weight from it. Over any window of sum(weights) picks each backend gets exactly its
// weight's share, interleaved (weights 5,1,1 give a a b a c a a, not a a a a a b c).

#include <unordered_map>

#include "router/balancing_policy.h"

namespace seekserve {
namespace {

class WeightedPolicy final : public BalancingPolicy {
 public:
  const char* name() const override { return "weighted"; }
  size_t choose(std::span<const BackendLoad> candidates, const RouteRequest&) override {
    int64_t total = 0;
    size_t best = 0;
    int64_t best_score = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
      int64_t& score = score_[candidates[i].id];
      score += candidates[i].weight;
      total += candidates[i].weight;
      if (i == 0 || score > best_score) {
        best = i;
        best_score = score;
      }
    }
    score_[candidates[best].id] -= total;
    // Forget backends that are gone, so the map stays as small as the pool.
    if (score_.size() > 2 * candidates.size() + 16) {
      std::unordered_map<BackendId, int64_t> kept;
      for (const BackendLoad& b : candidates) kept[b.id] = score_[b.id];
      score_.swap(kept);
    }
    return best;
  }

 private:
  std::unordered_map<BackendId, int64_t> score_;
};

}  // namespace

std::unique_ptr<BalancingPolicy> make_weighted_policy() {
  return std::make_unique<WeightedPolicy>();
}

}  // namespace seekserve
