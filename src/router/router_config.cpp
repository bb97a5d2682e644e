#include "router/router_config.h"

#include <cmath>
#include <set>

#include "router/balancing_policy.h"

namespace seekserve {
namespace {

Result<double> parse_number(const std::string& text, const std::string& field) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return invalid_argument("{}: '{}' is not a number", field, text);
  }
  if (used != text.size() || !std::isfinite(v))
    return invalid_argument("{}: '{}' is not a number", field, text);
  return v;
}

Result<int64_t> get_int(const YAML::Node& node, const std::string& field, int64_t min) {
  if (!node.IsScalar()) return invalid_argument("{}: expected an integer", field);
  const std::string text = node.Scalar();
  if (text.empty() || text.find_first_not_of("-+0123456789") != std::string::npos)
    return invalid_argument("{}: '{}' is not an integer", field, text);
  int64_t v = 0;
  try {
    v = std::stoll(text);
  } catch (const std::exception&) {
    return invalid_argument("{}: '{}' is not an integer", field, text);
  }
  if (v < min) return invalid_argument("{}: {} is below the minimum {}", field, v, min);
  return v;
}

Result<double> get_positive(const YAML::Node& node, const std::string& field, bool allow_zero) {
  if (!node.IsScalar()) return invalid_argument("{}: expected a number", field);
  SEEK_ASSIGN_OR_RETURN(double v, parse_number(node.Scalar(), field));
  if (v < 0 || (!allow_zero && v == 0))
    return invalid_argument("{}: {} must be {}", field, node.Scalar(),
                            allow_zero ? "zero or more" : "positive");
  return v;
}

Result<std::string> get_string(const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) return invalid_argument("{}: expected a string", field);
  return node.Scalar();
}

// Rejects keys of `map` not in `known`, naming the first one.
Status check_keys(const YAML::Node& map, const std::string& prefix,
                  const std::set<std::string>& known) {
  if (!map.IsMap()) return invalid_argument("{}: expected a map", prefix);
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (!known.contains(key))
      return invalid_argument("{}{}: unknown key", prefix.empty() ? "" : prefix + ".", key);
  }
  return Status::ok_status();
}

Status read_backends(const YAML::Node& node, RouterConfig& c) {
  if (!node.IsSequence()) return invalid_argument("backends: expected a list of URLs");
  c.backends.clear();
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string field = fmt::format("backends[{}]", i);
    const YAML::Node& b = node[i];
    BackendSpec spec;
    std::string url_text;
    if (b.IsScalar()) {
      url_text = b.Scalar();
    } else if (b.IsMap()) {
      SEEK_RETURN_IF_ERROR(check_keys(b, field, {"url", "weight"}));
      if (!b["url"]) return invalid_argument("{}.url: missing", field);
      SEEK_ASSIGN_OR_RETURN(url_text, get_string(b["url"], field + ".url"));
      if (b["weight"]) {
        SEEK_ASSIGN_OR_RETURN(int64_t w, get_int(b["weight"], field + ".weight", 1));
        if (w > 1000000) return invalid_argument("{}.weight: {} is above 1000000", field, w);
        spec.weight = static_cast<int>(w);
      }
    } else {
      return invalid_argument("{}: expected a URL or {{url, weight}}", field);
    }
    SEEK_ASSIGN_OR_RETURN(spec.url, parse_backend_url(url_text, field + ".url"));
    c.backends.push_back(spec);
  }
  return Status::ok_status();
}

Status read_config(const YAML::Node& root, RouterConfig& c) {
  if (root.IsNull()) return Status::ok_status();
  SEEK_RETURN_IF_ERROR(
      check_keys(root, "",
                 {"host", "port", "threads", "policy", "backends", "health_check", "ejection",
                  "retries", "prefix_affinity", "connect_timeout", "request_timeout",
                  "drain_timeout", "backend_keepalive", "busy_poll", "max_body_bytes", "log_level",
                  "replicas", "scaling_policy", "alerts"}));
  if (root["host"]) {
    SEEK_ASSIGN_OR_RETURN(c.host, get_string(root["host"], "host"));
  }
  if (root["port"]) {
    SEEK_ASSIGN_OR_RETURN(int64_t v, get_int(root["port"], "port", 0));
    if (v > 65535) return invalid_argument("port: {} is not 0..65535", v);
    c.port = static_cast<int>(v);
  }
  if (root["threads"]) {
    SEEK_ASSIGN_OR_RETURN(int64_t v, get_int(root["threads"], "threads", 0));
    if (v > 256) return invalid_argument("threads: {} is above 256", v);
    c.threads = static_cast<int>(v);
  }
  if (root["policy"]) {
    SEEK_ASSIGN_OR_RETURN(c.policy, get_string(root["policy"], "policy"));
  }
  if (root["backends"]) SEEK_RETURN_IF_ERROR(read_backends(root["backends"], c));
  if (const YAML::Node h = root["health_check"]) {
    SEEK_RETURN_IF_ERROR(
        check_keys(h, "health_check",
                   {"path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"}));
    if (h["path"]) {
      SEEK_ASSIGN_OR_RETURN(c.health.path, get_string(h["path"], "health_check.path"));
      if (!c.health.path.starts_with("/"))
        return invalid_argument("health_check.path: '{}' must start with /", c.health.path);
    }
    if (h["interval"]) {
      SEEK_ASSIGN_OR_RETURN(c.health.interval_s,
                            parse_duration(h["interval"], "health_check.interval"));
    }
    if (h["timeout"]) {
      SEEK_ASSIGN_OR_RETURN(c.health.timeout_s,
                            parse_duration(h["timeout"], "health_check.timeout"));
    }
    if (h["healthy_threshold"]) {
      SEEK_ASSIGN_OR_RETURN(int64_t v,
                            get_int(h["healthy_threshold"], "health_check.healthy_threshold", 1));
      c.health.healthy_threshold = static_cast<int>(v);
    }
    if (h["unhealthy_threshold"]) {
      SEEK_ASSIGN_OR_RETURN(
          int64_t v, get_int(h["unhealthy_threshold"], "health_check.unhealthy_threshold", 1));
      c.health.unhealthy_threshold = static_cast<int>(v);
    }
    if (c.health.interval_s <= 0)
      return invalid_argument("health_check.interval: must be positive");
    if (c.health.timeout_s <= 0) return invalid_argument("health_check.timeout: must be positive");
  }
  if (const YAML::Node e = root["ejection"]) {
    SEEK_RETURN_IF_ERROR(
        check_keys(e, "ejection", {"consecutive_failures", "base_time", "max_time"}));
    if (e["consecutive_failures"]) {
      SEEK_ASSIGN_OR_RETURN(int64_t v,
                            get_int(e["consecutive_failures"], "ejection.consecutive_failures", 0));
      c.ejection.consecutive_failures = static_cast<int>(v);
    }
    if (e["base_time"]) {
      SEEK_ASSIGN_OR_RETURN(c.ejection.base_time_s,
                            parse_duration(e["base_time"], "ejection.base_time"));
    }
    if (e["max_time"]) {
      SEEK_ASSIGN_OR_RETURN(c.ejection.max_time_s,
                            parse_duration(e["max_time"], "ejection.max_time"));
    }
  }
  if (const YAML::Node r = root["retries"]) {
    SEEK_RETURN_IF_ERROR(check_keys(r, "retries", {"max_retries", "backoff", "max_backoff"}));
    if (r["max_retries"]) {
      SEEK_ASSIGN_OR_RETURN(int64_t v, get_int(r["max_retries"], "retries.max_retries", 0));
      if (v > 10) return invalid_argument("retries.max_retries: {} is above 10", v);
      c.retries.max_retries = static_cast<int>(v);
    }
    if (r["backoff"]) {
      SEEK_ASSIGN_OR_RETURN(c.retries.backoff_s, parse_duration(r["backoff"], "retries.backoff"));
    }
    if (r["max_backoff"]) {
      SEEK_ASSIGN_OR_RETURN(c.retries.max_backoff_s,
                            parse_duration(r["max_backoff"], "retries.max_backoff"));
    }
  }
  if (const YAML::Node p = root["prefix_affinity"]) {
    SEEK_RETURN_IF_ERROR(
        check_keys(p, "prefix_affinity",
                   {"prefix_chars", "load_factor", "virtual_nodes", "tokenizer", "prefix_tokens"}));
    if (p["prefix_chars"]) {
      SEEK_ASSIGN_OR_RETURN(int64_t v,
                            get_int(p["prefix_chars"], "prefix_affinity.prefix_chars", 1));
      c.prefix_affinity.prefix_chars = static_cast<int>(std::min<int64_t>(v, 1 << 20));
    }
    if (p["load_factor"]) {
      SEEK_ASSIGN_OR_RETURN(c.prefix_affinity.load_factor,
                            get_positive(p["load_factor"], "prefix_affinity.load_factor", false));
      if (c.prefix_affinity.load_factor < 1)
        return invalid_argument("prefix_affinity.load_factor: {} must be at least 1",
                                c.prefix_affinity.load_factor);
    }
    if (p["virtual_nodes"]) {
      SEEK_ASSIGN_OR_RETURN(int64_t v,
                            get_int(p["virtual_nodes"], "prefix_affinity.virtual_nodes", 1));
      if (v > 4096) return invalid_argument("prefix_affinity.virtual_nodes: {} is above 4096", v);
      c.prefix_affinity.virtual_nodes = static_cast<int>(v);
    }
    if (p["tokenizer"]) {
      SEEK_ASSIGN_OR_RETURN(c.prefix_affinity.tokenizer,
                            get_string(p["tokenizer"], "prefix_affinity.tokenizer"));
      if (c.prefix_affinity.tokenizer.empty())
        return invalid_argument("prefix_affinity.tokenizer: empty (a model folder or GGUF file)");
    }
    if (p["prefix_tokens"]) {
      if (c.prefix_affinity.tokenizer.empty())
        return invalid_argument(
            "prefix_affinity.prefix_tokens: needs prefix_affinity.tokenizer (without one the "
            "first prefix_chars characters are hashed)");
      SEEK_ASSIGN_OR_RETURN(int64_t v,
                            get_int(p["prefix_tokens"], "prefix_affinity.prefix_tokens", 1));
      if (v > 65536) return invalid_argument("prefix_affinity.prefix_tokens: {} is above 65536", v);
      c.prefix_affinity.prefix_tokens = static_cast<int>(v);
    }
    // Enough text for prefix_tokens tokens (BPE tokens of real text average 3-5 bytes).
    if (!c.prefix_affinity.tokenizer.empty() && !p["prefix_chars"])
      c.prefix_affinity.prefix_chars = 16 * c.prefix_affinity.prefix_tokens;
  }
  if (root["connect_timeout"]) {
    SEEK_ASSIGN_OR_RETURN(c.connect_timeout_s,
                          parse_duration(root["connect_timeout"], "connect_timeout"));
  }
  if (root["busy_poll"]) {
    SEEK_ASSIGN_OR_RETURN(c.busy_poll_s, parse_duration(root["busy_poll"], "busy_poll"));
  }
  if (root["request_timeout"]) {
    SEEK_ASSIGN_OR_RETURN(c.request_timeout_s,
                          parse_duration(root["request_timeout"], "request_timeout"));
  }
  if (root["drain_timeout"]) {
    SEEK_ASSIGN_OR_RETURN(c.drain_timeout_s,
                          parse_duration(root["drain_timeout"], "drain_timeout"));
  }
  if (const YAML::Node k = root["backend_keepalive"]) {
    SEEK_RETURN_IF_ERROR(check_keys(k, "backend_keepalive", {"max_idle", "idle_timeout"}));
    if (k["max_idle"]) {
      SEEK_ASSIGN_OR_RETURN(int64_t v, get_int(k["max_idle"], "backend_keepalive.max_idle", 0));
      if (v > 1024) return invalid_argument("backend_keepalive.max_idle: {} is above 1024", v);
      c.backend_keepalive.max_idle = static_cast<int>(v);
    }
    if (k["idle_timeout"]) {
      SEEK_ASSIGN_OR_RETURN(c.backend_keepalive.idle_timeout_s,
                            parse_duration(k["idle_timeout"], "backend_keepalive.idle_timeout"));
    }
  }
  if (root["max_body_bytes"]) {
    SEEK_ASSIGN_OR_RETURN(c.max_body_bytes, get_int(root["max_body_bytes"], "max_body_bytes", 1));
  }
  if (root["log_level"]) {
    SEEK_ASSIGN_OR_RETURN(c.log_level, get_string(root["log_level"], "log_level"));
  }
  if (root["replicas"]) c.replicas = root["replicas"];
  if (root["scaling_policy"]) c.scaling_policy = root["scaling_policy"];
  if (root["alerts"]) c.alerts = root["alerts"];
  return Status::ok_status();
}

}  // namespace

Result<double> parse_duration(const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) return invalid_argument("{}: expected a duration like 5s or 250ms", field);
  std::string text = node.Scalar();
  double mult = 1;
  if (text.ends_with("ms")) {
    mult = 1e-3;
    text.resize(text.size() - 2);
  } else if (text.ends_with("s")) {
    text.pop_back();
  } else if (text.ends_with("m")) {
    mult = 60;
    text.pop_back();
  } else if (text.ends_with("h")) {
    mult = 3600;
    text.pop_back();
  }
  auto v = parse_number(text, field);
  if (!v.ok())
    return invalid_argument("{}: '{}' is not a duration like 5s or 250ms", field, node.Scalar());
  if (*v < 0) return invalid_argument("{}: {} is negative", field, node.Scalar());
  return *v * mult;
}

Status validate_router_config(const RouterConfig& c) {
  if (c.port < 0 || c.port > 65535) return invalid_argument("port: {} is not 0..65535", c.port);
  if (!is_balancing_policy_name(c.policy))
    return invalid_argument("policy: unknown policy '{}' (known: {})", c.policy,
                            balancing_policy_names());
  if (c.backends.empty() && (!c.replicas || c.replicas.IsNull()))
    return invalid_argument("backends: none given (a list of http://host:port URLs)");
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
      c.log_level != "error")
    return invalid_argument("log_level: '{}' is not debug, info, warn or error", c.log_level);
  if (c.connect_timeout_s <= 0) return invalid_argument("connect_timeout: must be positive");
  if (c.request_timeout_s <= 0) return invalid_argument("request_timeout: must be positive");
  if (c.busy_poll_s < 0 || c.busy_poll_s > 1)
    return invalid_argument("busy_poll: {}s is not 0s..1s", c.busy_poll_s);
  if (c.ejection.max_time_s < c.ejection.base_time_s)
    return invalid_argument("ejection.max_time: {}s is below ejection.base_time {}s",
                            c.ejection.max_time_s, c.ejection.base_time_s);
  return Status::ok_status();
}

Result<RouterConfig> parse_router_config(const std::string& yaml_text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return invalid_argument("{}: malformed YAML at line {}, column {}: {}", origin, e.mark.line + 1,
                            e.mark.column + 1, e.msg);
  }
  RouterConfig c;
  Status s = read_config(root, c);
  if (!s.ok()) return s.with_context(origin);
  return c;
}

Result<RouterConfig> load_router_config(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return not_found("--config {}: cannot open it", path);
  std::string text;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return parse_router_config(text, path);
}

}  // namespace seekserve
