#include "router/autoscaler.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

ControlTime t0() {
  return ControlTime(seconds(1'800'000'000));
}

PromExposition replica_metrics(double busy, double waiting) {
  return *parse_prom_text(
      fmt::format("seekserve_engine_busy_ratio {}\nseekserve_num_requests_waiting {}\n"
                  "seekserve_kv_cache_usage_ratio 0.25\n",
                  busy, waiting));
}

// `replicas` replicas all at `busy`, each with `waiting` queued requests.
std::vector<ReplicaScrape> cluster(int64_t replicas, double busy, double waiting = 0) {
  std::vector<ReplicaScrape> out;
  for (int64_t i = 0; i < replicas; ++i)
    out.push_back({fmt::format("r{}", i), replica_metrics(busy, waiting)});
  return out;
}

const char* kIssuePolicy = R"(
scaling_policy:
  scaling_rules:
    - metric: gpu_utilization
      threshold: 85%
      action: add_instance
      cooldown: 300s
    - metric: request_queue_length
      threshold: 50
      action: scale_batch
    - metric: gpu_utilization
      threshold: 30%
      action: remove_instance
      window: 5m
      cooldown: 2m
)";

ScalingPolicy parse(const char* yaml, int64_t min = 1, int64_t max = 4) {
  Result<ScalingPolicy> p = parse_scaling_policy(YAML::Load(yaml)["scaling_policy"], min, max);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? *p : ScalingPolicy{};
}

TEST(AutoscalerControl, ReadsTheIssueFormat) {
  ScalingPolicy p = parse(kIssuePolicy);
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.rules[0].metric, ControlMetric::kEngineUtilization);
  EXPECT_EQ(p.rules[0].metric_name, "gpu_utilization");
  EXPECT_DOUBLE_EQ(p.rules[0].threshold, 0.85);
  EXPECT_EQ(p.rules[0].action, ScaleAction::kAddInstance);
  EXPECT_EQ(p.rules[0].cooldown, seconds(300));
  EXPECT_EQ(p.rules[0].comparison, Comparison::kAbove);
  EXPECT_EQ(p.rules[1].metric, ControlMetric::kRequestQueueLength);
  EXPECT_DOUBLE_EQ(p.rules[1].threshold, 50);
  EXPECT_EQ(p.rules[1].action, ScaleAction::kScaleBatch);
  EXPECT_EQ(p.rules[2].comparison, Comparison::kBelow);
  EXPECT_EQ(p.rules[2].window, minutes(5));
  EXPECT_EQ(p.min_replicas, 1);
  EXPECT_EQ(p.max_replicas, 4);
}

// admin_api_key_file: the key is the first word of the first line that is not blank or a comment,
// so serve's own --api-key-file ("KEY [MIN:MAX] admin") can be given as it is.
TEST(AutoscalerControl, AdminKeyFileTakesTheFirstKey) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("seekserve-adminkey-{}", getpid());
  std::filesystem::create_directories(dir);
  auto write = [&](const char* name, const char* text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string serve_file = write("keys", "# admin first\n\n  s3cret-1 0:1000 admin\nuser\n");
  Result<ScalingPolicy> p = parse_scaling_policy(
      YAML::Load(fmt::format("admin_api_key_file: {}\nscaling_rules: []", serve_file)), 1, 1);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->admin_api_key, "s3cret-1");
  Result<std::string> bare = read_admin_api_key(write("bare", "k3y\r\n"), "f");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(*bare, "k3y");
  Result<std::string> empty = read_admin_api_key(write("empty", "# nothing\n\n"), "f");
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(empty.status().is_bad_input());
  EXPECT_NE(empty.status().message().find("f: '"), std::string::npos);
  EXPECT_NE(empty.status().message().find("holds no key"), std::string::npos);
  Result<std::string> folder = read_admin_api_key(dir.string(), "f");
  EXPECT_FALSE(folder.ok());
  EXPECT_TRUE(parse_scaling_policy(YAML::Load("scaling_rules: []"), 1, 1)->admin_api_key.empty());
  std::filesystem::remove_all(dir);
}

TEST(AutoscalerControl, BadPolicyNamesTheField) {
  struct Case {
    const char* yaml;
    const char* expect;
  };
  const Case cases[] = {
      {"scaling_rules: [{metric: gpu_utilization, threshold: -5%, action: add_instance}]",
       "scaling_policy.scaling_rules[0].threshold: negative threshold"},
      {"scaling_rules: [{metric: gpu_temperature, threshold: 5%, action: add_instance}]",
       "scaling_policy.scaling_rules[0].metric: unknown metric 'gpu_temperature'"},
      {"scaling_rules: [{metric: gpu_utilization, threshold: 5%, action: reboot}]",
       "scaling_policy.scaling_rules[0].action: unknown action 'reboot'"},
      {"scaling_rules: [{metric: gpu_utilization, threshold: 5%, action: add_instance, "
       "cooldown: 5 minutes}]",
       "scaling_policy.scaling_rules[0].cooldown: malformed duration"},
      {"scaling_rules: [{metric: gpu_utilization, threshold: 5%, action: remove_instance, "
       "window: 5mins}]",
       "scaling_policy.scaling_rules[0].window: malformed duration"},
      {"scaling_rules: [{metric: p99_latency, threshold: 500, action: add_instance}, "
       "{metric: p99_latency, threshold: soon, action: add_instance}]",
       "scaling_policy.scaling_rules[1].threshold"},
      {"scaling_rules: [{metric: gpu_utilization, threshold: 85, action: add_instance}]",
       "scaling_policy.scaling_rules[0].threshold"},
      {"scaling_rules: [{metric: request_queue_length, threshold: 5, action: add_instance, "
       "step: 4}]",
       "scale_batch only"},
      {"scaling_rules: [{metric: request_queue_length, threshold: 5, action: scale_batch, "
       "step: 0}]",
       "scaling_policy.scaling_rules[0].step"},
      {"scaling_rules: [{metric: gpu_utilization, threshold: 5%}]",
       "scaling_policy.scaling_rules[0].action: missing"},
      {"min_replicas: 0\nscaling_rules: []", "scaling_policy.min_replicas"},
      {"max_replicas: 9\nscaling_rules: []",
       "scaling_policy.max_replicas: 9 is above replicas.max"},
      {"scaling_rules: 5", "scaling_policy.scaling_rules: expected a list"},
      {"min_replicas: 2", "scaling_policy.scaling_rules: missing"},
      {"scaling_rules: []\nevaluation_interval: 0s", "scaling_policy.evaluation_interval"},
      {"scaling_rules: [{metric: gpu_utilization, threshold: 5%, action: add_instance, "
       "colour: red}]",
       "scaling_policy.scaling_rules[0].colour: unknown key"},
      {"admin_api_key_file: /nonexistent/admin.key\nscaling_rules: []",
       "scaling_policy.admin_api_key_file: cannot read '/nonexistent/admin.key'"},
      {"admin_api_key_file: [a, b]\nscaling_rules: []", "scaling_policy.admin_api_key_file"},
  };
  for (const Case& c : cases) {
    Result<ScalingPolicy> r = parse_scaling_policy(YAML::Load(c.yaml), 1, 4);
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_TRUE(r.status().is_bad_input());
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.yaml << " -> " << r.status().message();
  }
  // Adding or removing instances needs a replicas: section to start them from.
  Result<ScalingPolicy> no_replicas = parse_scaling_policy(
      YAML::Load(
          "scaling_rules: [{metric: gpu_utilization, threshold: 85%, action: add_instance}]"),
      std::nullopt, std::nullopt);
  ASSERT_FALSE(no_replicas.ok());
  EXPECT_NE(no_replicas.status().message().find("needs a replicas: section"), std::string::npos);
  EXPECT_TRUE(parse_scaling_policy(YAML::Load("scaling_rules: [{metric: request_queue_length, "
                                              "threshold: 5, action: scale_batch}]"),
                                   std::nullopt, std::nullopt)
                  .ok());
}

TEST(AutoscalerControl, AddsOnceThenWaitsForTheCooldown) {
  Autoscaler scaler(parse(kIssuePolicy));
  MetricHistory h(minutes(30));
  int64_t replicas = 1;
  ControlTime now = t0();
  std::vector<ControlTime> additions;
  // 10 minutes of 95% utilization, a round every 10 s.
  for (int i = 0; i <= 60; ++i) {
    h.add(now, cluster(replicas, 0.95));
    for (const ScalingDecision& d : scaler.evaluate(h, now, replicas)) {
      ASSERT_EQ(d.action, ScaleAction::kAddInstance);
      EXPECT_EQ(d.replicas_from, replicas);
      EXPECT_EQ(d.replicas_to, replicas + 1);
      EXPECT_NEAR(d.value, 0.95, 1e-9);
      EXPECT_NE(d.reason.find("gpu_utilization 95.0% > 85.0%"), std::string::npos) << d.reason;
      EXPECT_NE(d.reason.find("request_queue_length=0"), std::string::npos) << d.reason;
      replicas = d.replicas_to;
      additions.push_back(now);
    }
    now += seconds(10);
  }
  // At once, then 300 s later, then 300 s after that: never two inside one cooldown.
  ASSERT_EQ(additions.size(), 3u);
  EXPECT_EQ(additions[0], t0());
  EXPECT_EQ(additions[1] - additions[0], seconds(300));
  EXPECT_EQ(additions[2] - additions[1], seconds(300));
  EXPECT_NE(scaler.render_metrics().find(
                "seekserve_router_scaling_decisions_total{action=\"add_instance\",metric=\"engine_"
                "utilization\"} 3"),
            std::string::npos)
      << scaler.render_metrics();
}

TEST(AutoscalerControl, StopsAtMaxReplicas) {
  Autoscaler scaler(parse(kIssuePolicy, 1, 2));
  MetricHistory h(minutes(30));
  int64_t replicas = 1;
  int added = 0;
  for (int i = 0; i < 200; ++i) {
    ControlTime now = t0() + seconds(10 * i);
    h.add(now, cluster(replicas, 0.99));
    for (const ScalingDecision& d : scaler.evaluate(h, now, replicas)) {
      replicas = d.replicas_to;
      ++added;
    }
  }
  EXPECT_EQ(added, 1);
  EXPECT_EQ(replicas, 2);
}

TEST(AutoscalerControl, ScalesDownToMinAfterTheWindow) {
  Autoscaler scaler(parse(kIssuePolicy, 1, 4));
  MetricHistory h(minutes(30));
  int64_t replicas = 3;
  std::vector<ControlTime> removals;
  for (int i = 0; i < 120; ++i) {  // 20 minutes idle
    ControlTime now = t0() + seconds(10 * i);
    h.add(now, cluster(replicas, 0.05));
    for (const ScalingDecision& d : scaler.evaluate(h, now, replicas)) {
      ASSERT_EQ(d.action, ScaleAction::kRemoveInstance);
      EXPECT_NE(d.reason.find("< 30.0% for 5m"), std::string::npos) << d.reason;
      replicas = d.replicas_to;
      removals.push_back(now);
    }
  }
  EXPECT_EQ(replicas, 1);  // the minimum, not below
  ASSERT_EQ(removals.size(), 2u);
  EXPECT_EQ(removals[0] - t0(), minutes(5));         // only once the window is covered
  EXPECT_EQ(removals[1] - removals[0], minutes(2));  // the remove cooldown
}

TEST(AutoscalerControl, ABusyMomentRestartsTheScaleDownWindow) {
  Autoscaler scaler(parse(kIssuePolicy, 1, 4));
  MetricHistory h(minutes(30));
  int removals = 0;
  for (int i = 0; i < 60; ++i) {  // idle except a busy round every 4 minutes
    ControlTime now = t0() + seconds(10 * i);
    h.add(now, cluster(2, i % 24 == 23 ? 0.6 : 0.05));
    removals += static_cast<int>(scaler.evaluate(h, now, 2).size());
  }
  EXPECT_EQ(removals, 0);
}

TEST(AutoscalerControl, NoDataNoDecision) {
  Autoscaler scaler(parse(kIssuePolicy, 1, 4));
  MetricHistory h(minutes(30));
  for (int i = 0; i < 120; ++i) {
    ControlTime now = t0() + seconds(10 * i);
    h.add(now, {});
    EXPECT_TRUE(scaler.evaluate(h, now, 2).empty());
  }
}

TEST(AutoscalerControl, ScaleBatchOnQueueWithItsOwnCooldown) {
  Autoscaler scaler(parse(kIssuePolicy, 1, 1));  // at max: only scale_batch can act
  MetricHistory h(minutes(30));
  std::vector<ScalingDecision> batches;
  for (int i = 0; i < 18; ++i) {  // 3 minutes, 30 waiting on each of 2 replicas
    ControlTime now = t0() + seconds(10 * i);
    h.add(now, cluster(2, 0.99, 30));
    for (ScalingDecision& d : scaler.evaluate(h, now, 1)) batches.push_back(std::move(d));
  }
  ASSERT_EQ(batches.size(), 3u);  // default cooldown 60 s
  EXPECT_EQ(batches[0].action, ScaleAction::kScaleBatch);
  EXPECT_EQ(batches[0].step, 16);
  EXPECT_EQ(batches[0].max_num_seqs, 256);
  EXPECT_NE(batches[0].reason.find("request_queue_length 60 > 50"), std::string::npos)
      << batches[0].reason;
}

TEST(AutoscalerControl, AdditionWinsOverRemovalInOneRound) {
  Autoscaler scaler(parse(R"(
scaling_policy:
  scaling_rules:
    - {metric: request_queue_length, threshold: 10, action: add_instance}
    - {metric: engine_utilization, threshold: 50%, action: remove_instance, window: 0s, cooldown: 0s}
)"));
  MetricHistory h(minutes(30));
  h.add(t0(), cluster(2, 0.1, 20));  // idle engines, long queues (e.g. KV-bound)
  std::vector<ScalingDecision> d = scaler.evaluate(h, t0(), 2);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].action, ScaleAction::kAddInstance);
}

}  // namespace
}  // namespace seekserve
