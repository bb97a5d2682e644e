#include "router/control_values.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>

namespace seekserve {

namespace {

std::optional<double> parse_number(std::string_view s) {
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<ControlMetric> parse_control_metric(std::string_view name) {
  if (name == "engine_utilization" || name == "gpu_utilization")
    return ControlMetric::kEngineUtilization;
  if (name == "request_queue_length") return ControlMetric::kRequestQueueLength;
  if (name == "p99_latency") return ControlMetric::kP99Latency;
  if (name == "error_rate") return ControlMetric::kErrorRate;
  if (name == "kv_cache_usage") return ControlMetric::kKvCacheUsage;
  return invalid_argument(
      "unknown metric '{}' (expected gpu_utilization, engine_utilization, request_queue_length, "
      "p99_latency, error_rate or kv_cache_usage)",
      name);
}

const char* control_metric_name(ControlMetric metric) {
  switch (metric) {
    case ControlMetric::kEngineUtilization:
      return "engine_utilization";
    case ControlMetric::kRequestQueueLength:
      return "request_queue_length";
    case ControlMetric::kP99Latency:
      return "p99_latency";
    case ControlMetric::kErrorRate:
      return "error_rate";
    case ControlMetric::kKvCacheUsage:
      return "kv_cache_usage";
  }
  return "unknown";
}

bool control_metric_is_windowed(ControlMetric metric) {
  return metric == ControlMetric::kP99Latency || metric == ControlMetric::kErrorRate;
}

Result<Comparison> parse_comparison(std::string_view text) {
  if (text == ">" || text == "above") return Comparison::kAbove;
  if (text == "<" || text == "below") return Comparison::kBelow;
  return invalid_argument("unknown comparison '{}' (expected '>', '<', above or below)", text);
}

bool compare(Comparison comparison, double value, double threshold) {
  return comparison == Comparison::kAbove ? value > threshold : value < threshold;
}

const char* comparison_symbol(Comparison comparison) {
  return comparison == Comparison::kAbove ? ">" : "<";
}

Result<ControlDuration> parse_duration(std::string_view text) {
  std::string_view s = trim(text);
  if (s.empty()) return invalid_argument("empty duration");
  if (std::optional<double> plain = parse_number(s)) {
    if (*plain < 0) return invalid_argument("negative duration '{}'", text);
    return ControlDuration(static_cast<int64_t>(std::llround(*plain * 1000)));
  }
  // A sequence of <number><unit>, units from largest to smallest: "1h30m", "1m30s", "500ms".
  double total_ms = 0;
  size_t pos = 0;
  int last_rank = 100;
  while (pos < s.size()) {
    size_t num_end = pos;
    while (num_end < s.size() && ((s[num_end] >= '0' && s[num_end] <= '9') || s[num_end] == '.'))
      ++num_end;
    std::optional<double> n = parse_number(s.substr(pos, num_end - pos));
    if (!n)
      return invalid_argument("malformed duration '{}' (expected e.g. 300s, 5m, 500ms)", text);
    size_t unit_end = num_end;
    while (unit_end < s.size() && s[unit_end] >= 'a' && s[unit_end] <= 'z') ++unit_end;
    std::string_view unit = s.substr(num_end, unit_end - num_end);
    double scale = 0;
    int rank = 0;
    if (unit == "h") {
      scale = 3600e3, rank = 4;
    } else if (unit == "m") {
      scale = 60e3, rank = 3;
    } else if (unit == "s") {
      scale = 1e3, rank = 2;
    } else if (unit == "ms") {
      scale = 1, rank = 1;
    } else {
      return invalid_argument("malformed duration '{}' (expected e.g. 300s, 5m, 500ms)", text);
    }
    if (rank >= last_rank)
      return invalid_argument("malformed duration '{}' (units must go from h to ms)", text);
    last_rank = rank;
    total_ms += *n * scale;
    pos = unit_end;
  }
  return ControlDuration(static_cast<int64_t>(std::llround(total_ms)));
}

Result<double> parse_threshold(std::string_view text, ControlMetric metric) {
  std::string_view s = trim(text);
  if (!s.empty() && s.front() == '-') return invalid_argument("negative threshold '{}'", text);
  switch (metric) {
    case ControlMetric::kEngineUtilization:
    case ControlMetric::kErrorRate:
    case ControlMetric::kKvCacheUsage: {
      if (!s.empty() && s.back() == '%') {
        std::optional<double> v = parse_number(trim(s.substr(0, s.size() - 1)));
        if (!v) return invalid_argument("malformed percentage '{}'", text);
        if (*v < 0 || *v > 100) return invalid_argument("percentage '{}' outside 0%..100%", text);
        return *v / 100.0;
      }
      std::optional<double> v = parse_number(s);
      if (!v) return invalid_argument("malformed threshold '{}' (expected e.g. 85% or 0.85)", text);
      if (*v < 0 || *v > 1)
        return invalid_argument("threshold '{}' for {} must be a fraction 0..1 or a percentage",
                                text, control_metric_name(metric));
      return *v;
    }
    case ControlMetric::kP99Latency: {
      if (std::optional<double> v = parse_number(s)) return *v;  // plain seconds
      Result<ControlDuration> d = parse_duration(s);
      if (!d.ok())
        return invalid_argument("malformed latency threshold '{}' (expected e.g. 500ms)", text);
      return static_cast<double>(d->count()) / 1000.0;
    }
    case ControlMetric::kRequestQueueLength: {
      std::optional<double> v = parse_number(s);
      if (!v) return invalid_argument("malformed threshold '{}' (expected a count)", text);
      return *v;
    }
  }
  return invalid_argument("unknown metric");
}

std::string format_duration(ControlDuration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms >= 3600000) out += fmt::format("{}h", ms / 3600000), ms %= 3600000;
  if (ms >= 60000) out += fmt::format("{}m", ms / 60000), ms %= 60000;
  if (ms >= 1000) out += fmt::format("{}s", ms / 1000), ms %= 1000;
  if (ms > 0) out += fmt::format("{}ms", ms);
  return out;
}

std::string format_rfc3339(ControlTime t) {
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

Result<std::string> yaml_scalar(const YAML::Node& node, const std::string& field) {
  if (!node.IsDefined() || node.IsNull()) return invalid_argument("{}: missing", field);
  if (!node.IsScalar()) return invalid_argument("{}: expected a single value", field);
  return node.Scalar();
}

Result<ControlDuration> yaml_duration(const YAML::Node& node, const std::string& field) {
  SEEK_ASSIGN_OR_RETURN(std::string s, yaml_scalar(node, field));
  Result<ControlDuration> d = parse_duration(s);
  if (!d.ok()) return d.status().with_context(field);
  return d;
}

Result<double> yaml_number(const YAML::Node& node, const std::string& field) {
  SEEK_ASSIGN_OR_RETURN(std::string s, yaml_scalar(node, field));
  std::optional<double> v = parse_number(trim(s));
  if (!v) return invalid_argument("{}: expected a number, got '{}'", field, s);
  return *v;
}

Result<int64_t> yaml_integer(const YAML::Node& node, const std::string& field) {
  SEEK_ASSIGN_OR_RETURN(std::string s, yaml_scalar(node, field));
  std::string_view t = trim(s);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size())
    return invalid_argument("{}: expected an integer, got '{}'", field, s);
  return v;
}

Result<bool> yaml_bool(const YAML::Node& node, const std::string& field) {
  SEEK_ASSIGN_OR_RETURN(std::string s, yaml_scalar(node, field));
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  return invalid_argument("{}: expected true or false, got '{}'", field, s);
}

Result<std::map<std::string, std::string>> yaml_string_map(const YAML::Node& node,
                                                           const std::string& field) {
  std::map<std::string, std::string> out;
  if (!node.IsDefined() || node.IsNull()) return out;
  if (!node.IsMap()) return invalid_argument("{}: expected a map of names to values", field);
  for (const auto& kv : node) {
    std::string key = kv.first.Scalar();
    SEEK_ASSIGN_OR_RETURN(std::string value, yaml_scalar(kv.second, field + "." + key));
    out[key] = value;
  }
  return out;
}

Status yaml_check_keys(const YAML::Node& node, const std::string& field,
                       std::initializer_list<std::string_view> allowed) {
  if (!node.IsMap()) return invalid_argument("{}: expected a map", field);
  for (const auto& kv : node) {
    const std::string& key = kv.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return invalid_argument("{}.{}: unknown key", field, key);
  }
  return Status::ok_status();
}

}  // namespace seekserve
