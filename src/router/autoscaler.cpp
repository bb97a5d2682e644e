#include "router/autoscaler.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/log.h"

namespace seekserve {

namespace {

std::string describe(ControlMetric metric, std::optional<double> v) {
  if (!v) return "n/a";
  switch (metric) {
    case ControlMetric::kP99Latency:
      return fmt::format("{:.0f}ms", *v * 1000);
    case ControlMetric::kRequestQueueLength:
      return fmt::format("{:g}", *v);
    default:
      return fmt::format("{:.1f}%", *v * 100);
  }
}

// Every metric at `now`, for the decision log.
std::string all_metrics(const MetricHistory& h, ControlTime now, ControlDuration rate_window) {
  std::string out;
  for (ControlMetric m :
       {ControlMetric::kEngineUtilization, ControlMetric::kRequestQueueLength,
        ControlMetric::kKvCacheUsage, ControlMetric::kP99Latency, ControlMetric::kErrorRate}) {
    if (!out.empty()) out += ' ';
    ControlDuration w = control_metric_is_windowed(m) ? rate_window : ControlDuration(0);
    out += fmt::format("{}={}", control_metric_name(m), describe(m, h.value(m, now, w)));
  }
  return out;
}

Result<ScalingRule> parse_rule(const YAML::Node& node, const std::string& field) {
  SEEK_RETURN_IF_ERROR(yaml_check_keys(node, field,
                                       {"metric", "threshold", "action", "cooldown", "window",
                                        "comparison", "step", "max_num_seqs"}));
  ScalingRule rule;
  SEEK_ASSIGN_OR_RETURN(rule.metric_name, yaml_scalar(node["metric"], field + ".metric"));
  Result<ControlMetric> m = parse_control_metric(rule.metric_name);
  if (!m.ok()) return m.status().with_context(field + ".metric");
  rule.metric = *m;
  SEEK_ASSIGN_OR_RETURN(std::string action, yaml_scalar(node["action"], field + ".action"));
  Result<ScaleAction> a = parse_scale_action(action);
  if (!a.ok()) return a.status().with_context(field + ".action");
  rule.action = *a;
  SEEK_ASSIGN_OR_RETURN(std::string threshold,
                        yaml_scalar(node["threshold"], field + ".threshold"));
  Result<double> t = parse_threshold(threshold, rule.metric);
  if (!t.ok()) return t.status().with_context(field + ".threshold");
  rule.threshold = *t;
  rule.comparison =
      rule.action == ScaleAction::kRemoveInstance ? Comparison::kBelow : Comparison::kAbove;
  if (node["comparison"]) {
    SEEK_ASSIGN_OR_RETURN(std::string c, yaml_scalar(node["comparison"], field + ".comparison"));
    Result<Comparison> cmp = parse_comparison(c);
    if (!cmp.ok()) return cmp.status().with_context(field + ".comparison");
    rule.comparison = *cmp;
  }
  if (rule.action == ScaleAction::kScaleBatch) rule.cooldown = std::chrono::seconds(60);
  if (node["cooldown"]) {
    SEEK_ASSIGN_OR_RETURN(rule.cooldown, yaml_duration(node["cooldown"], field + ".cooldown"));
  }
  if (rule.action == ScaleAction::kRemoveInstance) rule.window = std::chrono::minutes(5);
  if (node["window"]) {
    SEEK_ASSIGN_OR_RETURN(rule.window, yaml_duration(node["window"], field + ".window"));
  }
  if (node["step"] || node["max_num_seqs"]) {
    if (rule.action != ScaleAction::kScaleBatch)
      return invalid_argument("{}: step and max_num_seqs apply to scale_batch only", field);
  }
  if (node["step"]) {
    SEEK_ASSIGN_OR_RETURN(rule.step, yaml_integer(node["step"], field + ".step"));
    if (rule.step <= 0) return invalid_argument("{}.step: must be above 0", field);
  }
  if (node["max_num_seqs"]) {
    SEEK_ASSIGN_OR_RETURN(rule.max_num_seqs,
                          yaml_integer(node["max_num_seqs"], field + ".max_num_seqs"));
    if (rule.max_num_seqs <= 0) return invalid_argument("{}.max_num_seqs: must be above 0", field);
  }
  return rule;
}

}  // namespace

Result<ScaleAction> parse_scale_action(std::string_view name) {
  if (name == "add_instance") return ScaleAction::kAddInstance;
  if (name == "remove_instance") return ScaleAction::kRemoveInstance;
  if (name == "scale_batch") return ScaleAction::kScaleBatch;
  return invalid_argument(
      "unknown action '{}' (expected add_instance, remove_instance or scale_batch)", name);
}

const char* scale_action_name(ScaleAction action) {
  switch (action) {
    case ScaleAction::kAddInstance:
      return "add_instance";
    case ScaleAction::kRemoveInstance:
      return "remove_instance";
    case ScaleAction::kScaleBatch:
      return "scale_batch";
  }
  return "unknown";
}

Result<ScalingPolicy> parse_scaling_policy(const YAML::Node& node,
                                           std::optional<int64_t> replicas_min,
                                           std::optional<int64_t> replicas_max) {
  const std::string f = "scaling_policy";
  ScalingPolicy p;
  SEEK_RETURN_IF_ERROR(
      yaml_check_keys(node, f,
                      {"scaling_rules", "min_replicas", "max_replicas", "evaluation_interval",
                       "rate_window", "admin_api_key_file"}));
  p.min_replicas = replicas_min.value_or(1);
  p.max_replicas = replicas_max.value_or(p.min_replicas);
  if (node["min_replicas"]) {
    SEEK_ASSIGN_OR_RETURN(p.min_replicas, yaml_integer(node["min_replicas"], f + ".min_replicas"));
    if (p.min_replicas < 1) return invalid_argument("{}.min_replicas: must be at least 1", f);
    if (replicas_min && p.min_replicas < *replicas_min)
      return invalid_argument("{}.min_replicas: {} is below replicas.min {}", f, p.min_replicas,
                              *replicas_min);
  }
  if (node["max_replicas"]) {
    SEEK_ASSIGN_OR_RETURN(p.max_replicas, yaml_integer(node["max_replicas"], f + ".max_replicas"));
    if (replicas_max && p.max_replicas > *replicas_max)
      return invalid_argument("{}.max_replicas: {} is above replicas.max {}", f, p.max_replicas,
                              *replicas_max);
  } else if (!replicas_max) {
    p.max_replicas = std::max(p.max_replicas, p.min_replicas);
  }
  if (p.max_replicas < p.min_replicas)
    return invalid_argument("{}.max_replicas: {} is below min_replicas {}", f, p.max_replicas,
                            p.min_replicas);
  if (node["evaluation_interval"]) {
    SEEK_ASSIGN_OR_RETURN(p.evaluation_interval,
                          yaml_duration(node["evaluation_interval"], f + ".evaluation_interval"));
    if (p.evaluation_interval.count() <= 0)
      return invalid_argument("{}.evaluation_interval: must be above 0", f);
  }
  if (node["rate_window"]) {
    SEEK_ASSIGN_OR_RETURN(p.rate_window, yaml_duration(node["rate_window"], f + ".rate_window"));
    if (p.rate_window.count() <= 0) return invalid_argument("{}.rate_window: must be above 0", f);
  }
  if (node["admin_api_key_file"]) {
    const std::string field = f + ".admin_api_key_file";
    SEEK_ASSIGN_OR_RETURN(std::string path, yaml_scalar(node["admin_api_key_file"], field));
    SEEK_ASSIGN_OR_RETURN(p.admin_api_key, read_admin_api_key(path, field));
  }
  const YAML::Node& rules = node["scaling_rules"];
  if (!rules.IsDefined() || rules.IsNull()) return invalid_argument("{}.scaling_rules: missing", f);
  if (!rules.IsSequence()) return invalid_argument("{}.scaling_rules: expected a list of rules", f);
  for (size_t i = 0; i < rules.size(); ++i) {
    std::string field = fmt::format("{}.scaling_rules[{}]", f, i);
    SEEK_ASSIGN_OR_RETURN(ScalingRule rule, parse_rule(rules[i], field));
    if (rule.action != ScaleAction::kScaleBatch && !replicas_min)
      return invalid_argument("{}.action: {} needs a replicas: section (the router starts them)",
                              field, scale_action_name(rule.action));
    p.rules.push_back(std::move(rule));
  }
  return p;
}

Autoscaler::Autoscaler(ScalingPolicy policy)
    : policy_(std::move(policy)),
      last_batch_(policy_.rules.size()),
      desired_(policy_.min_replicas) {}

std::vector<ScalingDecision> Autoscaler::evaluate(const MetricHistory& history, ControlTime now,
                                                  int64_t replicas) {
  std::vector<ScalingDecision> out;
  desired_ = replicas;
  bool changed_count = false;
  // Additions first: when one rule wants more and another fewer, serving load wins.
  for (ScaleAction pass :
       {ScaleAction::kAddInstance, ScaleAction::kRemoveInstance, ScaleAction::kScaleBatch}) {
    for (size_t i = 0; i < policy_.rules.size(); ++i) {
      const ScalingRule& rule = policy_.rules[i];
      if (rule.action != pass) continue;
      if (rule.action != ScaleAction::kScaleBatch && changed_count) continue;
      if (rule.action == ScaleAction::kAddInstance) {
        if (replicas >= policy_.max_replicas) continue;
        if (last_add_ && now - *last_add_ < rule.cooldown) continue;
      } else if (rule.action == ScaleAction::kRemoveInstance) {
        if (replicas <= policy_.min_replicas) continue;
        std::optional<ControlTime> last = last_add_;
        if (last_remove_ && (!last || *last_remove_ > *last)) last = last_remove_;
        if (last && now - *last < rule.cooldown) continue;
      } else if (last_batch_[i] && now - *last_batch_[i] < rule.cooldown) {
        continue;
      }
      bool holds =
          history.held(rule.metric, now, rule.window, policy_.rate_window,
                       [&rule](double v) { return compare(rule.comparison, v, rule.threshold); });
      if (!holds) continue;
      ControlDuration per_round =
          control_metric_is_windowed(rule.metric) ? policy_.rate_window : ControlDuration(0);
      ScalingDecision d;
      d.action = rule.action;
      d.rule_index = i;
      d.value = history.value(rule.metric, now, per_round).value_or(0);
      d.replicas_from = replicas;
      d.replicas_to = replicas;
      if (rule.action == ScaleAction::kAddInstance) {
        d.replicas_to = replicas + 1;
        last_add_ = now;
        changed_count = true;
      } else if (rule.action == ScaleAction::kRemoveInstance) {
        d.replicas_to = replicas - 1;
        last_remove_ = now;
        changed_count = true;
      } else {
        d.step = rule.step;
        d.max_num_seqs = rule.max_num_seqs;
        last_batch_[i] = now;
      }
      d.reason = fmt::format(
          "{}: rule {} {} {} {} {}{} (replicas {} -> {}); metrics: {}",
          scale_action_name(rule.action), i, rule.metric_name, describe(rule.metric, d.value),
          comparison_symbol(rule.comparison), describe(rule.metric, rule.threshold),
          rule.window.count() > 0 ? fmt::format(" for {}", format_duration(rule.window)) : "",
          d.replicas_from, d.replicas_to, all_metrics(history, now, policy_.rate_window));
      log_info("autoscaler {}", d.reason);
      ++decisions_[{scale_action_name(rule.action), control_metric_name(rule.metric)}];
      desired_ = d.replicas_to;
      out.push_back(std::move(d));
    }
  }
  return out;
}

std::string Autoscaler::render_metrics() const {
  std::string out =
      "# HELP seekserve_router_scaling_decisions_total Autoscaler decisions by action and the "
      "metric that caused them.\n"
      "# TYPE seekserve_router_scaling_decisions_total counter\n";
  for (const ScalingRule& r : policy_.rules) {
    auto it = decisions_.find({scale_action_name(r.action), control_metric_name(r.metric)});
    out +=
        fmt::format("seekserve_router_scaling_decisions_total{{action=\"{}\",metric=\"{}\"}} {}\n",
                    scale_action_name(r.action), control_metric_name(r.metric),
                    it == decisions_.end() ? 0 : it->second);
  }
  out += fmt::format(
      "# HELP seekserve_router_replicas_desired Replicas the autoscaler last asked for.\n"
      "# TYPE seekserve_router_replicas_desired gauge\n"
      "seekserve_router_replicas_desired {}\n"
      "# HELP seekserve_router_replicas_min Autoscaler lower bound.\n"
      "# TYPE seekserve_router_replicas_min gauge\nseekserve_router_replicas_min {}\n"
      "# HELP seekserve_router_replicas_max Autoscaler upper bound.\n"
      "# TYPE seekserve_router_replicas_max gauge\nseekserve_router_replicas_max {}\n",
      desired_, policy_.min_replicas, policy_.max_replicas);
  return out;
}

Result<std::string> read_admin_api_key(const std::string& path, const std::string& field) {
  std::ifstream in(path);
  if (!in) return invalid_argument("{}: cannot read '{}': {}", field, path, std::strerror(errno));
  std::string line;
  while (std::getline(in, line)) {
    const size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#') continue;
    const size_t end = line.find_first_of(" \t\r", start);
    return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }
  if (in.bad()) return invalid_argument("{}: cannot read '{}'", field, path);
  return invalid_argument("{}: '{}' holds no key (one line: KEY)", field, path);
}

Result<std::pair<int64_t, int64_t>> raise_max_num_seqs(const std::string& base_url, int64_t step,
                                                       int64_t ceiling,
                                                       const std::string& admin_api_key) {
  httplib::Client client(base_url);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  if (!admin_api_key.empty()) client.set_bearer_token_auth(admin_api_key);
  httplib::Result r = client.Get("/admin/scheduler");
  if (!r) return io_error("GET {}/admin/scheduler: {}", base_url, httplib::to_string(r.error()));
  if (r->status != 200)
    return io_error("GET {}/admin/scheduler: HTTP {} {}", base_url, r->status,
                    r->body.substr(0, 200));
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("max_num_seqs") || !j["max_num_seqs"].is_number_integer())
    return io_error("GET {}/admin/scheduler: no integer max_num_seqs in {}", base_url,
                    r->body.substr(0, 200));
  int64_t before = j["max_num_seqs"].get<int64_t>();
  // A seekserve replica reports the most it accepts (--max-num-seqs-limit): asking for more
  // would be refused with a 400, so the step stops there.
  if (j.contains("max_num_seqs_limit") && j["max_num_seqs_limit"].is_number_integer())
    ceiling = std::min(ceiling, j["max_num_seqs_limit"].get<int64_t>());
  int64_t after = std::min(before + step, ceiling);
  if (after <= before) return std::make_pair(before, before);
  nlohmann::json body = {{"max_num_seqs", after}};
  httplib::Result p = client.Post("/admin/scheduler", body.dump(), "application/json");
  if (!p) return io_error("POST {}/admin/scheduler: {}", base_url, httplib::to_string(p.error()));
  if (p->status != 200)
    return io_error("POST {}/admin/scheduler: HTTP {} {}", base_url, p->status,
                    p->body.substr(0, 200));
  return std::make_pair(before, after);
}

}  // namespace seekserve
