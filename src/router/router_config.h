#pragma once
// `seekserve route` configuration: one struct with defaults, filled from a YAML file, then
// overridden by flags (src/tools/route.cpp). Every value is checked here; a bad one is a
// one-line error naming its field (exit code 2).
//
// YAML (every key optional except `backends`; durations are seconds as a number or a string
// with a unit: "250ms", "5s", "2m"):
//   host: 127.0.0.1            port: 8080          threads: 0 (= one per core)
//   policy: round_robin        # round_robin | least_connections | weighted | power_of_two |
//                              # prefix_affinity
//   backends:                  # a list of URLs, or of {url, weight}
//     - http://127.0.0.1:8001
//     - {url: http://127.0.0.1:8002, weight: 3}
//   health_check: {path: /health, interval: 5s, timeout: 2s, healthy_threshold: 2,
//                  unhealthy_threshold: 3}
//   ejection: {consecutive_failures: 3, base_time: 10s, max_time: 300s}
//   retries: {max_retries: 2, backoff: 25ms, max_backoff: 500ms}
//   prefix_affinity: {prefix_chars: 256, load_factor: 1.25, virtual_nodes: 64,
//                     tokenizer: /models/r1-7b, prefix_tokens: 64}   # these two: optional
//   connect_timeout: 2s        request_timeout: 600s     drain_timeout: 30s
//   backend_keepalive: {max_idle: 64, idle_timeout: 3s}
//   busy_poll: 0s              # >0: an I/O thread spins this long after its last event before
//                              # sleeping (a core per thread for the tail; see docs/ROUTER.md)
//   max_body_bytes: 8388608    log_level: info
//   replicas: / scaling_policy: / alerts:   kept as YAML for the replica supervisor, the
//                              autoscaler and the alert rules (not read here)

#include <cstdint>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/status.h"
#include "router/backend_url.h"

namespace seekserve {

struct BackendSpec {
  BackendUrl url;
  int weight = 1;  // >= 1; used by the `weighted` policy
};

struct HealthCheckConfig {
  std::string path = "/health";
  double interval_s = 5;
  double timeout_s = 2;
  int healthy_threshold = 2;    // consecutive successes that readmit an unhealthy backend
  int unhealthy_threshold = 3;  // consecutive failures that mark a backend unhealthy
};

// Passive outlier ejection (a circuit breaker): after `consecutive_failures` failed requests in a
// row (connect error, reset, 5xx) a backend gets no traffic for base_time × (times ejected),
// at most max_time; then it is tried again.
struct EjectionConfig {
  int consecutive_failures = 3;
  double base_time_s = 10;
  double max_time_s = 300;
};

struct RetryConfig {
  int max_retries = 2;         // further backends tried after the first
  double backoff_s = 0.025;    // before the n-th retry: backoff × 2^(n-1), jittered
  double max_backoff_s = 0.5;  // cap on one wait
};

struct PrefixAffinityConfig {
  // Leading bytes of the prompt (or of the messages' role:content lines) read for the key; hashed
  // as they are without a tokenizer. With one, the default is 16 x prefix_tokens.
  int prefix_chars = 256;
  double load_factor = 1.25;  // a backend takes at most ceil(load_factor × mean in-flight)
  int virtual_nodes = 64;     // points per backend on the hash ring
  // A model folder (tokenizer.json) or GGUF file whose tokenizer seekserve loads; when set, the
  // key is the first `prefix_tokens` token ids of that text instead of its characters.
  std::string tokenizer;
  int prefix_tokens = 64;
};

// Kept-alive connections to backends, between requests. A backend served by cpp-httplib (as
// `seekserve serve` is) gives each open connection one of its worker threads, idle or not, so
// the router keeps few of them and closes them before the backend's own 5 s keep-alive timeout.
struct BackendKeepaliveConfig {
  int max_idle = 64;          // idle connections kept per backend per I/O thread (0: none)
  double idle_timeout_s = 3;  // an idle connection older than this is closed (within 0.5 s)
};

struct RouterConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 0;  // I/O threads; 0 = hardware threads
  std::string policy = "round_robin";
  std::vector<BackendSpec> backends;
  HealthCheckConfig health;
  EjectionConfig ejection;
  RetryConfig retries;
  PrefixAffinityConfig prefix_affinity;
  double connect_timeout_s = 2;
  double request_timeout_s = 600;
  double drain_timeout_s = 30;
  double busy_poll_s = 0;  // 0: an idle I/O thread sleeps in epoll at once
  BackendKeepaliveConfig backend_keepalive;
  int64_t max_body_bytes = 8 << 20;
  std::string log_level = "info";

  // Sections owned by other modules, kept as written (Null when absent).
  YAML::Node replicas;
  YAML::Node scaling_policy;
  YAML::Node alerts;
};

// Reads `path` into a config on top of the defaults. Errors name the file and the field.
Result<RouterConfig> load_router_config(const std::string& path);
// Same from YAML text (`origin` names it in errors).
Result<RouterConfig> parse_router_config(const std::string& yaml_text, const std::string& origin);
// Checks values that flags may have changed after loading (port, policy, backends present).
Status validate_router_config(const RouterConfig& config);

// "250ms", "5s", "2m", "1h", or a bare number of seconds -> seconds. Negative is an error.
Result<double> parse_duration(const YAML::Node& node, const std::string& field);

}  // namespace seekserve
