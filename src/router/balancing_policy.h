#pragma once
// Balancing policies: which backend gets the next request. One small interface, one
// implementation per file (round_robin.cpp, least_connections.cpp, weighted.cpp,
// power_of_two.cpp, prefix_affinity.cpp), chosen by name from the configuration.
//
// Thread-safety: a policy is not thread-safe; BackendPool calls it under its own lock.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "router/router_config.h"

namespace seekserve {

using BackendId = uint64_t;

// What a policy may look at for one candidate backend.
struct BackendLoad {
  BackendId id = 0;
  int weight = 1;
  int64_t in_flight = 0;  // requests this router has open on the backend now
};

// What a policy may look at for the request.
struct RouteRequest {
  // The leading part of the prompt or of the messages (already cut to prefix_chars), for
  // prefix_affinity (which hashes it, or its first prefix_tokens token ids when it has a
  // tokenizer); empty when the request has none.
  std::string_view affinity_key;
};

class BalancingPolicy {
 public:
  virtual ~BalancingPolicy() = default;
  virtual const char* name() const = 0;
  // Index into `candidates` (never empty, ordered by backend id) of the backend to use.
  virtual size_t choose(std::span<const BackendLoad> candidates, const RouteRequest& request) = 0;
  // True when the policy reads RouteRequest::affinity_key (the proxy only parses the request
  // body for policies that need it).
  virtual bool wants_affinity_key() const { return false; }
};

bool is_balancing_policy_name(const std::string& name);
// "round_robin, least_connections, weighted, power_of_two, prefix_affinity"
std::string balancing_policy_names();
Result<std::unique_ptr<BalancingPolicy>> make_balancing_policy(const RouterConfig& config);

// One factory per policy file.
std::unique_ptr<BalancingPolicy> make_round_robin_policy();
std::unique_ptr<BalancingPolicy> make_least_connections_policy();
std::unique_ptr<BalancingPolicy> make_weighted_policy();
std::unique_ptr<BalancingPolicy> make_power_of_two_policy(uint64_t seed);
// Loads config.tokenizer when set: an error naming prefix_affinity.tokenizer when it cannot.
Result<std::unique_ptr<BalancingPolicy>> make_prefix_affinity_policy(
    const PrefixAffinityConfig& config);

}  // namespace seekserve
