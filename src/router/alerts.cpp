#include "router/alerts.h"

#include <cmath>

#include <httplib.h>

#include "core/log.h"

namespace seekserve {

namespace {

using std::chrono::minutes;

std::string format_value(ControlMetric metric, double v) {
  switch (metric) {
    case ControlMetric::kP99Latency:
      return fmt::format("{:.0f}ms", v * 1000);
    case ControlMetric::kRequestQueueLength:
      return fmt::format("{:g}", v);
    default:
      return fmt::format("{:.2f}%", v * 100);
  }
}

nlohmann::json time_or_null(const std::optional<ControlTime>& t) {
  return t ? nlohmann::json(format_rfc3339(*t)) : nlohmann::json(nullptr);
}

Result<AlertRule> parse_rule(const YAML::Node& node, const std::string& field) {
  SEEK_RETURN_IF_ERROR(yaml_check_keys(
      node, field,
      {"name", "metric", "comparison", "threshold", "window", "for", "labels", "annotations"}));
  AlertRule rule;
  SEEK_ASSIGN_OR_RETURN(rule.name, yaml_scalar(node["name"], field + ".name"));
  if (rule.name.empty()) return invalid_argument("{}.name: empty", field);
  SEEK_ASSIGN_OR_RETURN(std::string metric, yaml_scalar(node["metric"], field + ".metric"));
  Result<ControlMetric> m = parse_control_metric(metric);
  if (!m.ok()) return m.status().with_context(field + ".metric");
  rule.metric = *m;
  if (node["comparison"]) {
    SEEK_ASSIGN_OR_RETURN(std::string c, yaml_scalar(node["comparison"], field + ".comparison"));
    Result<Comparison> cmp = parse_comparison(c);
    if (!cmp.ok()) return cmp.status().with_context(field + ".comparison");
    rule.comparison = *cmp;
  }
  SEEK_ASSIGN_OR_RETURN(std::string t, yaml_scalar(node["threshold"], field + ".threshold"));
  Result<double> threshold = parse_threshold(t, rule.metric);
  if (!threshold.ok()) return threshold.status().with_context(field + ".threshold");
  rule.threshold = *threshold;
  if (node["window"]) {
    SEEK_ASSIGN_OR_RETURN(rule.window, yaml_duration(node["window"], field + ".window"));
    if (control_metric_is_windowed(rule.metric) && rule.window.count() <= 0)
      return invalid_argument("{}.window: {} needs a window above 0", field,
                              control_metric_name(rule.metric));
  }
  if (node["for"]) {
    SEEK_ASSIGN_OR_RETURN(rule.for_duration, yaml_duration(node["for"], field + ".for"));
  }
  SEEK_ASSIGN_OR_RETURN(rule.labels, yaml_string_map(node["labels"], field + ".labels"));
  SEEK_ASSIGN_OR_RETURN(rule.annotations,
                        yaml_string_map(node["annotations"], field + ".annotations"));
  if (rule.labels.count("alertname"))
    return invalid_argument("{}.labels.alertname: set by the rule's name", field);
  return rule;
}

}  // namespace

std::vector<AlertRule> default_alert_rules() {
  std::vector<AlertRule> rules(3);
  rules[0].name = "SeekserveHighP99Latency";
  rules[0].metric = ControlMetric::kP99Latency;
  rules[0].threshold = 0.5;
  rules[0].window = minutes(5);
  rules[0].for_duration = minutes(5);
  rules[0].labels = {{"severity", "warning"}};
  rules[0].annotations = {{"summary", "P99 request latency above 500 ms"}};
  rules[1].name = "SeekserveEngineSaturated";
  rules[1].metric = ControlMetric::kEngineUtilization;
  rules[1].threshold = 0.95;
  rules[1].window = minutes(5);
  rules[1].for_duration = minutes(10);
  rules[1].labels = {{"severity", "warning"}};
  rules[1].annotations = {{"summary", "Engine utilization above 95% sustained: add capacity"}};
  rules[2].name = "SeekserveHighErrorRate";
  rules[2].metric = ControlMetric::kErrorRate;
  rules[2].threshold = 0.01;
  rules[2].window = minutes(5);
  rules[2].for_duration = minutes(5);
  rules[2].labels = {{"severity", "critical"}};
  rules[2].annotations = {{"summary", "More than 1% of requests fail (5xx)"}};
  return rules;
}

Result<AlertsConfig> parse_alerts_config(const YAML::Node& node) {
  AlertsConfig config;
  bool defaults = true;
  std::vector<AlertRule> user_rules;
  if (node.IsDefined() && !node.IsNull()) {
    SEEK_RETURN_IF_ERROR(yaml_check_keys(
        node, "alerts",
        {"default_rules", "evaluation_interval", "webhook_url", "resend_interval", "rules"}));
    if (node["default_rules"]) {
      SEEK_ASSIGN_OR_RETURN(defaults, yaml_bool(node["default_rules"], "alerts.default_rules"));
    }
    if (node["evaluation_interval"]) {
      SEEK_ASSIGN_OR_RETURN(
          config.evaluation_interval,
          yaml_duration(node["evaluation_interval"], "alerts.evaluation_interval"));
      if (config.evaluation_interval.count() <= 0)
        return invalid_argument("alerts.evaluation_interval: must be above 0");
    }
    if (node["resend_interval"]) {
      SEEK_ASSIGN_OR_RETURN(config.resend_interval,
                            yaml_duration(node["resend_interval"], "alerts.resend_interval"));
      if (config.resend_interval.count() <= 0)
        return invalid_argument("alerts.resend_interval: must be above 0");
    }
    if (node["webhook_url"]) {
      SEEK_ASSIGN_OR_RETURN(config.webhook_url,
                            yaml_scalar(node["webhook_url"], "alerts.webhook_url"));
      if (config.webhook_url.rfind("http://", 0) != 0)
        return invalid_argument("alerts.webhook_url: expected an http:// URL, got '{}'",
                                config.webhook_url);
    }
    const YAML::Node& rules = node["rules"];
    if (rules.IsDefined() && !rules.IsNull()) {
      if (!rules.IsSequence()) return invalid_argument("alerts.rules: expected a list of rules");
      for (size_t i = 0; i < rules.size(); ++i) {
        SEEK_ASSIGN_OR_RETURN(AlertRule rule,
                              parse_rule(rules[i], fmt::format("alerts.rules[{}]", i)));
        for (const AlertRule& other : user_rules)
          if (other.name == rule.name)
            return invalid_argument("alerts.rules[{}].name: '{}' used twice", i, rule.name);
        user_rules.push_back(std::move(rule));
      }
    }
  }
  if (defaults) {
    for (AlertRule& d : default_alert_rules()) {
      bool overridden = false;
      for (const AlertRule& u : user_rules) overridden |= u.name == d.name;
      if (!overridden) config.rules.push_back(std::move(d));
    }
  }
  for (AlertRule& u : user_rules) config.rules.push_back(std::move(u));
  return config;
}

const char* alert_state_name(AlertState state) {
  switch (state) {
    case AlertState::kInactive:
      return "inactive";
    case AlertState::kPending:
      return "pending";
    case AlertState::kFiring:
      return "firing";
  }
  return "unknown";
}

AlertEvaluator::AlertEvaluator(AlertsConfig config)
    : config_(std::move(config)), states_(config_.rules.size()) {}

std::vector<AlertTransition> AlertEvaluator::evaluate(const MetricHistory& history,
                                                      ControlTime now) {
  std::vector<AlertTransition> out;
  for (size_t i = 0; i < config_.rules.size(); ++i) {
    const AlertRule& rule = config_.rules[i];
    RuleState& s = states_[i];
    s.value = history.value(rule.metric, now, rule.window);
    bool condition = s.value && compare(rule.comparison, *s.value, rule.threshold);
    if (condition) {
      if (s.state == AlertState::kInactive) {
        s.state = AlertState::kPending;
        s.active_since = now;
      }
      if (s.state == AlertState::kPending && now - *s.active_since >= rule.for_duration) {
        s.state = AlertState::kFiring;
        s.fired_at = now;
        s.last_sent.reset();
        s.resolved_unsent = false;
        ++s.fired_total;
        log_warn("alert {} firing: {} = {} {} {} (window {}, for {})", rule.name,
                 control_metric_name(rule.metric), format_value(rule.metric, *s.value),
                 comparison_symbol(rule.comparison), format_value(rule.metric, rule.threshold),
                 format_duration(rule.window), format_duration(rule.for_duration));
        out.push_back({rule.name, true, s.value});
      }
    } else {
      if (s.state == AlertState::kFiring) {
        s.resolved_at = now;
        s.resolved_unsent = true;
        log_info("alert {} resolved: {} = {}", rule.name, control_metric_name(rule.metric),
                 s.value ? format_value(rule.metric, *s.value) : std::string("no data"));
        out.push_back({rule.name, false, s.value});
      }
      s.state = AlertState::kInactive;
      s.active_since.reset();
    }
  }
  return out;
}

AlertState AlertEvaluator::state(const std::string& name) const {
  for (size_t i = 0; i < config_.rules.size(); ++i)
    if (config_.rules[i].name == name) return states_[i].state;
  return AlertState::kInactive;
}

int AlertEvaluator::firing_count() const {
  int n = 0;
  for (const RuleState& s : states_) n += s.state == AlertState::kFiring;
  return n;
}

nlohmann::json AlertEvaluator::to_json() const {
  nlohmann::json alerts = nlohmann::json::array();
  nlohmann::json firing = nlohmann::json::array();
  for (size_t i = 0; i < config_.rules.size(); ++i) {
    const AlertRule& r = config_.rules[i];
    const RuleState& s = states_[i];
    alerts.push_back({
        {"name", r.name},
        {"state", alert_state_name(s.state)},
        {"metric", control_metric_name(r.metric)},
        {"comparison", comparison_symbol(r.comparison)},
        {"threshold", r.threshold},
        {"value", s.value ? nlohmann::json(*s.value) : nlohmann::json(nullptr)},
        {"window", format_duration(r.window)},
        {"for", format_duration(r.for_duration)},
        {"active_since", time_or_null(s.active_since)},
        {"fired_at", time_or_null(s.state == AlertState::kFiring ? s.fired_at : std::nullopt)},
        {"last_resolved_at", time_or_null(s.resolved_at)},
        {"fired_total", s.fired_total},
        {"labels", r.labels},
        {"annotations", r.annotations},
    });
    if (s.state == AlertState::kFiring) firing.push_back(r.name);
  }
  return {{"alerts", alerts}, {"firing", firing}};
}

std::string AlertEvaluator::render_metrics() const {
  std::string out;
  out +=
      "# HELP seekserve_router_alert_firing 1 while the router's alert rule is firing.\n"
      "# TYPE seekserve_router_alert_firing gauge\n";
  for (size_t i = 0; i < config_.rules.size(); ++i)
    out += fmt::format("seekserve_router_alert_firing{{alertname=\"{}\"}} {}\n",
                       prom_escape_label_value(config_.rules[i].name),
                       states_[i].state == AlertState::kFiring ? 1 : 0);
  out +=
      "# HELP seekserve_router_alert_pending 1 while the rule's condition holds but not yet for "
      "its for: duration.\n"
      "# TYPE seekserve_router_alert_pending gauge\n";
  for (size_t i = 0; i < config_.rules.size(); ++i)
    out += fmt::format("seekserve_router_alert_pending{{alertname=\"{}\"}} {}\n",
                       prom_escape_label_value(config_.rules[i].name),
                       states_[i].state == AlertState::kPending ? 1 : 0);
  out +=
      "# HELP seekserve_router_alert_value The value the rule last compared with its threshold "
      "(absent without data).\n"
      "# TYPE seekserve_router_alert_value gauge\n";
  for (size_t i = 0; i < config_.rules.size(); ++i)
    if (states_[i].value && std::isfinite(*states_[i].value))
      out += fmt::format("seekserve_router_alert_value{{alertname=\"{}\"}} {}\n",
                         prom_escape_label_value(config_.rules[i].name), *states_[i].value);
  return out;
}

bool AlertEvaluator::due(const RuleState& s, ControlTime now) const {
  if (s.state == AlertState::kFiring)
    return !s.last_sent || now - *s.last_sent >= config_.resend_interval;
  return s.resolved_unsent;
}

nlohmann::json AlertEvaluator::alertmanager_alert(const AlertRule& rule, const RuleState& s,
                                                  ControlTime now) const {
  nlohmann::json labels = rule.labels;
  labels["alertname"] = rule.name;
  nlohmann::json annotations = rule.annotations;
  if (s.value) annotations["value"] = format_value(rule.metric, *s.value);
  bool firing = s.state == AlertState::kFiring;
  ControlTime ends = firing
                         ? now + 4 * std::max(config_.resend_interval, config_.evaluation_interval)
                         : *s.resolved_at;
  return {{"labels", labels},
          {"annotations", annotations},
          {"startsAt", format_rfc3339(s.fired_at.value_or(now))},
          {"endsAt", format_rfc3339(ends)},
          {"generatorURL", "http://seekserve-route/alerts"}};
}

nlohmann::json AlertEvaluator::webhook_body(ControlTime now) const {
  nlohmann::json body = nlohmann::json::array();
  for (size_t i = 0; i < config_.rules.size(); ++i)
    if (due(states_[i], now)) body.push_back(alertmanager_alert(config_.rules[i], states_[i], now));
  return body;
}

void AlertEvaluator::mark_webhook_sent(ControlTime now) {
  for (RuleState& s : states_) {
    if (!due(s, now)) continue;
    if (s.state == AlertState::kFiring)
      s.last_sent = now;
    else
      s.resolved_unsent = false;
  }
}

Status post_json(const std::string& url, const nlohmann::json& body, ControlDuration timeout) {
  if (url.rfind("http://", 0) != 0) return invalid_argument("expected an http:// URL: {}", url);
  size_t path_start = url.find('/', 7);
  std::string origin = path_start == std::string::npos ? url : url.substr(0, path_start);
  std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
  httplib::Client client(origin);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
  client.set_connection_timeout(secs.count(), usecs.count());
  client.set_read_timeout(secs.count(), usecs.count());
  client.set_write_timeout(secs.count(), usecs.count());
  httplib::Result r = client.Post(path, body.dump(), "application/json");
  if (!r) return io_error("POST {}: {}", url, httplib::to_string(r.error()));
  if (r->status < 200 || r->status >= 300)
    return io_error("POST {}: HTTP {} {}", url, r->status, r->body.substr(0, 200));
  return Status::ok_status();
}

}  // namespace seekserve
