// prefix_affinity: consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018).
// The request's leading text is hashed onto a ring holding `virtual_nodes` points per backend;
// the backend owning the first point at or after the hash gets the request, so requests sharing
// a prefix meet the same replica's prefix cache, and a backend joining or leaving moves only its
// share of the keys. Load bound: a backend may hold at most
// ceil(load_factor × (in-flight total + 1) / n) requests; a full one is skipped and the walk
// goes on along the ring, so one hot prefix spills over instead of overloading its replica.
// Requests without a key (no prompt) go to the least loaded backend.

#include <algorithm>
#include <cmath>
#include <vector>

#include "router/balancing_policy.h"

namespace seekserve {
namespace {

// 64-bit FNV-1a, then a finaliser (splitmix64) so nearby keys spread over the ring.
uint64_t hash_bytes(std::string_view s, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

class PrefixAffinityPolicy final : public BalancingPolicy {
 public:
  explicit PrefixAffinityPolicy(const PrefixAffinityConfig& c) : config_(c) {}
  const char* name() const override { return "prefix_affinity"; }
  bool wants_affinity_key() const override { return true; }

  size_t choose(std::span<const BackendLoad> candidates, const RouteRequest& request) override {
    const size_t n = candidates.size();
    int64_t total = 0;
    for (const BackendLoad& b : candidates) total += b.in_flight;
    if (request.affinity_key.empty()) {
      size_t best = 0;
      for (size_t i = 1; i < n; ++i)
        if (candidates[i].in_flight < candidates[best].in_flight) best = i;
      return best;
    }
    rebuild_ring(candidates);
    const auto cap = static_cast<int64_t>(
        std::ceil(config_.load_factor * static_cast<double>(total + 1) / static_cast<double>(n)));
    const uint64_t h = hash_bytes(request.affinity_key, 0);
    auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(h, BackendId{0}));
    for (size_t step = 0; step < ring_.size(); ++step, ++it) {
      if (it == ring_.end()) it = ring_.begin();
      const size_t idx = index_of(candidates, it->second);
      if (candidates[idx].in_flight < cap) return idx;
    }
    return 0;  // unreachable: the least loaded backend is always under the cap
  }

 private:
  static size_t index_of(std::span<const BackendLoad> candidates, BackendId id) {
    for (size_t i = 0; i < candidates.size(); ++i)
      if (candidates[i].id == id) return i;
    return 0;
  }

  void rebuild_ring(std::span<const BackendLoad> candidates) {
    std::vector<BackendId> ids;
    ids.reserve(candidates.size());
    for (const BackendLoad& b : candidates) ids.push_back(b.id);
    if (ids == ring_ids_) return;
    ring_ids_ = ids;
    ring_.clear();
    for (BackendId id : ids) {
      for (int v = 0; v < config_.virtual_nodes; ++v) {
        const std::string point = fmt::format("{}#{}", id, v);
        ring_.emplace_back(hash_bytes(point, 0x5eed), id);
      }
    }
    std::sort(ring_.begin(), ring_.end());
  }

  PrefixAffinityConfig config_;
  std::vector<BackendId> ring_ids_;
  std::vector<std::pair<uint64_t, BackendId>> ring_;  // sorted (point, backend)
};

}  // namespace

std::unique_ptr<BalancingPolicy> make_prefix_affinity_policy(const PrefixAffinityConfig& config) {
  return std::make_unique<PrefixAffinityPolicy>(config);
}

}  // namespace seekserve
