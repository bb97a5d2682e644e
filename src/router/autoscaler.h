#pragma once
// The autoscaler: `scaling_policy:` in router.yaml, read as written in the issue:
//
//   scaling_policy:
//     min_replicas: 1            # default: replicas.min (or 1)
//     max_replicas: 4            # default: replicas.max (or min_replicas)
//     evaluation_interval: 10s   # how often the router scrapes and decides
//     rate_window: 1m            # range p99_latency and error_rate are computed over
//     admin_api_key_file: /etc/seekserve/admin.key  # the replicas' admin key, for scale_batch
//     scaling_rules:
//       - metric: gpu_utilization        # alias of engine_utilization
//       (seekserve_engine_busy_ratio)
//         threshold: 85%
//         action: add_instance
//         cooldown: 300s                 # no second addition inside it
//       - metric: request_queue_length   # waiting requests summed over replicas
//         threshold: 50
//         action: scale_batch            # raise every replica's max_num_seqs at run time
//         step: 16                       # by this much (default 16)
//         max_num_seqs: 256              # never above this (default 256)
//       - metric: gpu_utilization
//         threshold: 30%
//         action: remove_instance        # "below the threshold for `window`"
//         window: 5m
//
// A rule compares its metric with its threshold: above for add_instance and scale_batch, below for
// remove_instance (override with `comparison:`), and must have held at every scrape round in the
// last `window` (default 0: the latest round; remove_instance defaults to 5m). Additions wait
// `cooldown` after the previous addition; removals wait `cooldown` after any scaling event
// (so a fresh replica is not removed before it can take load); scale_batch waits its cooldown
// after its own last action. At most one addition or removal per evaluation, additions first;
// nothing beyond min_replicas..max_replicas.
//
// Autoscaler::evaluate is a pure function of the metric history, the clock passed in and its own
// cooldown state: tests drive it with synthetic time. Every decision is logged with the metric
// values that caused it and counted for /metrics.
//
// Thread-safety: none; owned by the router's control loop.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/status.h"
#include "router/control_values.h"
#include "router/metric_history.h"

namespace seekserve {

enum class ScaleAction { kAddInstance, kRemoveInstance, kScaleBatch };
Result<ScaleAction> parse_scale_action(std::string_view name);
const char* scale_action_name(ScaleAction action);

struct ScalingRule {
  ControlMetric metric = ControlMetric::kEngineUtilization;
  std::string metric_name;  // as written (gpu_utilization stays gpu_utilization in logs)
  Comparison comparison = Comparison::kAbove;
  double threshold = 0;
  ScaleAction action = ScaleAction::kAddInstance;
  ControlDuration cooldown{std::chrono::seconds(300)};
  ControlDuration window{0};
  int64_t step = 16;           // scale_batch only
  int64_t max_num_seqs = 256;  // scale_batch only
};

struct ScalingPolicy {
  std::vector<ScalingRule> rules;
  int64_t min_replicas = 1;
  int64_t max_replicas = 1;
  ControlDuration evaluation_interval{std::chrono::seconds(10)};
  ControlDuration rate_window{std::chrono::minutes(1)};
  // Sent as "Authorization: Bearer KEY" to /admin/scheduler (replicas started with --api-key or an
  // `admin` key in --api-key-file refuse scale_batch without it). Read from admin_api_key_file,
  // so the key is not written in router.yaml: the first word of its first line that is neither
  // blank nor a '#' comment (so a line of serve's --api-key-file, "KEY admin", works as it is).
  // Empty: no header.
  std::string admin_api_key;
};

// Reads `scaling_policy:`. `replicas_min`/`replicas_max` come from the `replicas:` section (the
// bounds of what the router may start); nullopt when there is none, and then add_instance and
// remove_instance rules are an error (nothing to add or remove). Errors name the field.
Result<ScalingPolicy> parse_scaling_policy(const YAML::Node& node,
                                           std::optional<int64_t> replicas_min,
                                           std::optional<int64_t> replicas_max);

struct ScalingDecision {
  ScaleAction action = ScaleAction::kAddInstance;
  size_t rule_index = 0;
  double value = 0;           // the rule's metric at the decision
  int64_t replicas_from = 0;  // add/remove: replica count before and after
  int64_t replicas_to = 0;
  int64_t step = 0, max_num_seqs = 0;  // scale_batch
  std::string reason;                  // one line: rule, values, every metric at the time
};

class Autoscaler {
 public:
  explicit Autoscaler(ScalingPolicy policy);

  // Decides at `now` with `replicas` replicas running or starting (not draining).
  std::vector<ScalingDecision> evaluate(const MetricHistory& history, ControlTime now,
                                        int64_t replicas);

  // seekserve_router_scaling_decisions_total{action,metric}, seekserve_router_replicas_desired.
  std::string render_metrics() const;
  const ScalingPolicy& policy() const { return policy_; }

 private:
  ScalingPolicy policy_;
  std::optional<ControlTime> last_add_, last_remove_;
  std::vector<std::optional<ControlTime>> last_batch_;                // per rule
  std::map<std::pair<std::string, std::string>, int64_t> decisions_;  // (action, metric) -> count
  int64_t desired_ = 0;
};

// The key in an admin_api_key_file (see ScalingPolicy::admin_api_key); kInvalidArgument naming
// `field` when the file cannot be read or holds no key.
Result<std::string> read_admin_api_key(const std::string& path, const std::string& field);

// scale_batch on one replica: reads GET {base_url}/admin/scheduler's max_num_seqs and POSTs
// {"max_num_seqs": min(current + step, ceiling)} when that is higher, both with `admin_api_key`
// as a bearer token when it is not empty. Returns (before, after); an error (401/403 included)
// names the URL and the HTTP status.
Result<std::pair<int64_t, int64_t>> raise_max_num_seqs(const std::string& base_url, int64_t step,
                                                       int64_t ceiling,
                                                       const std::string& admin_api_key);

}  // namespace seekserve
