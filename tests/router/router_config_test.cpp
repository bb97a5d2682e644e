// The router's YAML: defaults, every section, and one-line errors that name the field.

#include <gtest/gtest.h>

#include "router/router_config.h"

namespace seekserve {
namespace {

std::string error_of(const std::string& yaml) {
  auto c = parse_router_config(yaml, "r.yaml");
  if (!c.ok()) return c.status().message();
  Status s = validate_router_config(*c);
  return s.ok() ? "" : s.message();
}

TEST(RouterConfig, FullFile) {
  auto c = parse_router_config(R"(
host: 127.0.0.1
port: 9000
policy: weighted
backends:
  - http://127.0.0.1:8001
  - {url: "http://localhost:8002/", weight: 3}
health_check: {interval: 500ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}
ejection: {consecutive_failures: 5, base_time: 2s, max_time: 1m}
retries: {max_retries: 3, backoff: 10ms}
prefix_affinity: {prefix_chars: 64, load_factor: 1.5}
backend_keepalive: {max_idle: 4, idle_timeout: 1500ms}
busy_poll: 20ms
replicas: {command: "seekserve serve --port {port}", min: 1, max: 3}
scaling_policy:
  scaling_rules:
    - {metric: gpu_utilization, threshold: 85%, action: add_instance, cooldown: 300s}
alerts: {rules: []}
)",
                               "r.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(validate_router_config(*c).ok());
  EXPECT_EQ(c->port, 9000);
  EXPECT_EQ(c->policy, "weighted");
  ASSERT_EQ(c->backends.size(), 2u);
  EXPECT_EQ(c->backends[0].url.text, "http://127.0.0.1:8001");
  EXPECT_EQ(c->backends[1].url.text, "http://localhost:8002");
  EXPECT_EQ(c->backends[1].weight, 3);
  EXPECT_DOUBLE_EQ(c->health.interval_s, 0.5);
  EXPECT_EQ(c->health.unhealthy_threshold, 2);
  EXPECT_DOUBLE_EQ(c->ejection.max_time_s, 60);
  EXPECT_EQ(c->retries.max_retries, 3);
  EXPECT_DOUBLE_EQ(c->retries.backoff_s, 0.01);
  EXPECT_EQ(c->prefix_affinity.prefix_chars, 64);
  EXPECT_EQ(c->backend_keepalive.max_idle, 4);
  EXPECT_DOUBLE_EQ(c->backend_keepalive.idle_timeout_s, 1.5);
  EXPECT_DOUBLE_EQ(c->busy_poll_s, 0.02);
  // Sections of other modules are kept as written.
  EXPECT_EQ(c->replicas["max"].as<int>(), 3);
  EXPECT_EQ(c->scaling_policy["scaling_rules"][0]["threshold"].as<std::string>(), "85%");
  EXPECT_TRUE(c->alerts.IsMap());
}

TEST(RouterConfig, ErrorsNameTheField) {
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nbusy_poll: 5s").find("busy_poll"),
            std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nbusy_poll: -1ms").find("busy_poll"),
            std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nbackend_keepalive: {max_idle: -1}")
                .find("backend_keepalive.max_idle"),
            std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nbackend_keepalive: {idle: 3s}")
                .find("backend_keepalive"),
            std::string::npos);
  EXPECT_NE(error_of("policy: fastest\nbackends: [http://127.0.0.1:1]").find("policy"),
            std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nhealth_check: {unhealthy_threshold: -1}")
                .find("health_check.unhealthy_threshold"),
            std::string::npos);
  EXPECT_NE(
      error_of("backends: [{url: 'http://127.0.0.1:1', weight: -2}]").find("backends[0].weight"),
      std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nhealth_check: {interval: -5s}")
                .find("health_check.interval"),
            std::string::npos);
  EXPECT_NE(error_of("backends: ['http://127.0.0.1:99999']").find("backends[0].url"),
            std::string::npos);
  EXPECT_NE(error_of("backends: ['127.0.0.1:8000']").find("backends[0].url"), std::string::npos);
  EXPECT_NE(error_of("backends: ['http://no-such-host.invalid:8000']").find("does not resolve"),
            std::string::npos);
  EXPECT_NE(error_of("backends: ['http://0.0.0.0:8000']").find("backends[0].url"),
            std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nretry: {}").find("retry: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1\n").find("malformed YAML"), std::string::npos);
  EXPECT_NE(error_of("policy: round_robin").find("backends"), std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nprefix_affinity: {prefix_tokens: 8}")
                .find("prefix_affinity.prefix_tokens: needs prefix_affinity.tokenizer"),
            std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\n"
                     "prefix_affinity: {tokenizer: /m, prefix_tokens: 0}")
                .find("prefix_affinity.prefix_tokens"),
            std::string::npos);
  EXPECT_NE(error_of("backends: [http://127.0.0.1:1]\nprefix_affinity: {tokenizer: ''}")
                .find("prefix_affinity.tokenizer"),
            std::string::npos);
  EXPECT_EQ(error_of("backends: [http://127.0.0.1:1]"), "");
}

// prefix_affinity.tokenizer: the key becomes prefix_tokens token ids, and the text read for them
// defaults to 16 bytes per token unless prefix_chars says otherwise.
TEST(RouterConfig, PrefixAffinityTokenizer) {
  Result<RouterConfig> c = parse_router_config(
      "backends: [http://127.0.0.1:1]\nprefix_affinity: {tokenizer: /models/r1, prefix_tokens: 32}",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->prefix_affinity.tokenizer, "/models/r1");
  EXPECT_EQ(c->prefix_affinity.prefix_tokens, 32);
  EXPECT_EQ(c->prefix_affinity.prefix_chars, 512);
  c = parse_router_config(
      "backends: [http://127.0.0.1:1]\nprefix_affinity: {tokenizer: /m, prefix_chars: 100}", "t");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->prefix_affinity.prefix_tokens, 64);
  EXPECT_EQ(c->prefix_affinity.prefix_chars, 100);
  c = parse_router_config("backends: [http://127.0.0.1:1]", "t");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->prefix_affinity.tokenizer.empty());
  EXPECT_EQ(c->prefix_affinity.prefix_chars, 256);
}

}  // namespace
}  // namespace seekserve
