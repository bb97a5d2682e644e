#pragma once
// The router's alert rules (`alerts:` in router.yaml): each compares a control metric (see
// control_values.h), computed over a sliding window of the metric history, with a threshold; a
// rule whose condition holds for its `for:` duration fires, and resolves when it stops holding
// (Prometheus' semantics: inactive -> pending -> firing -> inactive). Firing rules are listed as
// JSON (GET /alerts), exported as gauges, and can be POSTed to an Alertmanager-compatible webhook
// (`/api/v2/alerts` body).
//
//   alerts:
//     default_rules: true          # the three rules below, unless a rule of the same name
//     overrides evaluation_interval: 5s webhook_url: http://127.0.0.1:9093/api/v2/alerts   #
//     optional resend_interval: 1m          # firing alerts are re-sent this often (Alertmanager
//     expects it) rules:
//       - name: SeekserveHighP99Latency
//         metric: p99_latency       # see control_values.h
//         comparison: ">"           # or "<"; default ">"
//         threshold: 500ms
//         window: 5m                # range the value is computed over
//         for: 5m                   # how long the condition must hold before firing
//         labels: {severity: warning}
//         annotations: {summary: "P99 latency above 500 ms"}
//
// Defaults (DeepSeek tuning guide): P99 latency > 500 ms, engine utilization > 95% sustained,
// request failure (5xx) rate > 1%. The same rules ship for Prometheus in
// deploy/prometheus/seekserve-rules.yml.
//
// Thread-safety: AlertEvaluator is not synchronised; the router's control loop owns it and
// publishes copies of its JSON and metrics text for HTTP handlers.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "router/control_values.h"
#include "router/metric_history.h"

namespace seekserve {

struct AlertRule {
  std::string name;
  ControlMetric metric = ControlMetric::kP99Latency;
  Comparison comparison = Comparison::kAbove;
  double threshold = 0;  // in the metric's unit
  ControlDuration window{std::chrono::minutes(5)};
  ControlDuration for_duration{0};
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct AlertsConfig {
  std::vector<AlertRule> rules;
  ControlDuration evaluation_interval{std::chrono::seconds(5)};
  std::string webhook_url;  // empty: no webhook
  ControlDuration resend_interval{std::chrono::minutes(1)};
};

std::vector<AlertRule> default_alert_rules();

// Reads the `alerts:` node (undefined or null: the defaults). Errors name the field.
Result<AlertsConfig> parse_alerts_config(const YAML::Node& node);

enum class AlertState { kInactive, kPending, kFiring };
const char* alert_state_name(AlertState state);

// A rule that changed between firing and not firing at an evaluation.
struct AlertTransition {
  std::string name;
  bool firing = false;  // true: fired, false: resolved
  std::optional<double> value;
};

class AlertEvaluator {
 public:
  explicit AlertEvaluator(AlertsConfig config);

  // Evaluates every rule at `now`; returns the rules that fired or resolved (also logged).
  std::vector<AlertTransition> evaluate(const MetricHistory& history, ControlTime now);

  AlertState state(const std::string& name) const;
  int firing_count() const;

  // {"alerts": [every rule with its state, value and times], "firing": [names]}
  nlohmann::json to_json() const;
  // Gauges for /metrics: seekserve_router_alert_firing{alertname}, ..._pending, ..._value.
  std::string render_metrics() const;

  // The Alertmanager /api/v2/alerts body of what is due at `now`: firing alerts not sent for a
  // resend interval (endsAt = now + 4 intervals, as Prometheus does) and resolved alerts not yet
  // sent (endsAt = resolution time). Empty array when nothing is due.
  nlohmann::json webhook_body(ControlTime now) const;
  // Records that webhook_body(now) was delivered.
  void mark_webhook_sent(ControlTime now);

  const AlertsConfig& config() const { return config_; }

 private:
  struct RuleState {
    AlertState state = AlertState::kInactive;
    std::optional<double> value;
    std::optional<ControlTime> active_since;  // condition true since (pending or firing)
    std::optional<ControlTime> fired_at;
    std::optional<ControlTime> resolved_at;  // last resolution
    std::optional<ControlTime> last_sent;    // webhook: firing state last delivered
    bool resolved_unsent = false;
    int64_t fired_total = 0;
  };
  bool due(const RuleState& s, ControlTime now) const;
  nlohmann::json alertmanager_alert(const AlertRule& rule, const RuleState& s,
                                    ControlTime now) const;

  AlertsConfig config_;
  std::vector<RuleState> states_;  // parallel to config_.rules
};

// POSTs `body` (JSON) to an http:// URL; ok on a 2xx answer.
Status post_json(const std::string& url, const nlohmann::json& body, ControlDuration timeout);

}  // namespace seekserve
