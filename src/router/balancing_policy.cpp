#include "router/balancing_policy.h"

#include <random>

namespace seekserve {

namespace {
constexpr const char* kNames[] = {"round_robin", "least_connections", "weighted", "power_of_two",
                                  "prefix_affinity"};
}

bool is_balancing_policy_name(const std::string& name) {
  for (const char* n : kNames)
    if (name == n) return true;
  return false;
}

std::string balancing_policy_names() {
  std::string out;
  for (const char* n : kNames) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

Result<std::unique_ptr<BalancingPolicy>> make_balancing_policy(const RouterConfig& config) {
  const std::string& n = config.policy;
  if (n == "round_robin") return make_round_robin_policy();
  if (n == "least_connections") return make_least_connections_policy();
  if (n == "weighted") return make_weighted_policy();
  if (n == "power_of_two") return make_power_of_two_policy(std::random_device{}());
  if (n == "prefix_affinity") return make_prefix_affinity_policy(config.prefix_affinity);
  return invalid_argument("policy: unknown policy '{}' (known: {})", n, balancing_policy_names());
}

}  // namespace seekserve
