#pragma once
// The vocabulary the router's control sections (`alerts:`, `scaling_policy:`, `replicas:`)
// share: the metrics they watch, and how thresholds and durations are written in YAML.
//
//   durations   "300s", "5m", "500ms", "1h", "1m30s", or a plain number of seconds
//   thresholds  ratio metrics: "85%" or a fraction "0.85"; p99_latency: "500ms", "0.5s" or
//               seconds; request_queue_length: a count. Never negative.

#include <chrono>
#include <map>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "core/status.h"

namespace seekserve {

using ControlClock = std::chrono::system_clock;
using ControlTime = ControlClock::time_point;
using ControlDuration = std::chrono::milliseconds;

// What alerts and scaling rules can watch, computed from the replicas' /metrics.
enum class ControlMetric {
  kEngineUtilization,   // mean seekserve_engine_busy_ratio over replicas (0..1)
  kRequestQueueLength,  // sum of seekserve_num_requests_waiting over replicas
  kP99Latency,          // P99 of seekserve_e2e_request_latency_seconds over a window (seconds)
  kErrorRate,           // 5xx share of seekserve_requests_total over a window (0..1)
  kKvCacheUsage,        // mean seekserve_kv_cache_usage_ratio over replicas (0..1)
};

// Accepts the canonical names and the alias gpu_utilization (= engine_utilization).
Result<ControlMetric> parse_control_metric(std::string_view name);
const char* control_metric_name(ControlMetric metric);
// True for metrics computed from counters over a window (p99_latency, error_rate).
bool control_metric_is_windowed(ControlMetric metric);

enum class Comparison { kAbove, kBelow };                    // value > threshold, value < threshold
Result<Comparison> parse_comparison(std::string_view text);  // ">", "<", "above", "below"
bool compare(Comparison comparison, double value, double threshold);
const char* comparison_symbol(Comparison comparison);

Result<ControlDuration> parse_duration(std::string_view text);
// A threshold for `metric`, in the metric's unit (ratio 0..1, seconds, count).
Result<double> parse_threshold(std::string_view text, ControlMetric metric);

// "1m30s" style rendering of a duration, for logs and JSON.
std::string format_duration(ControlDuration d);
// RFC 3339 UTC with milliseconds, e.g. 2026-11-29T09:00:00.000Z (Alertmanager's format).
std::string format_rfc3339(ControlTime t);

// YAML helpers that name the field in errors ("scaling_policy.scaling_rules[0].threshold: ...").
Result<std::string> yaml_scalar(const YAML::Node& node, const std::string& field);
Result<ControlDuration> yaml_duration(const YAML::Node& node, const std::string& field);
Result<double> yaml_number(const YAML::Node& node, const std::string& field);
Result<int64_t> yaml_integer(const YAML::Node& node, const std::string& field);
Result<bool> yaml_bool(const YAML::Node& node, const std::string& field);
Result<std::map<std::string, std::string>> yaml_string_map(const YAML::Node& node,
                                                           const std::string& field);
// Error unless every key of map `node` is in `allowed` (catches typos such as `treshold:`).
Status yaml_check_keys(const YAML::Node& node, const std::string& field,
                       std::initializer_list<std::string_view> allowed);

}  // namespace seekserve
