#include "router/alerts.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "control_test_util.h"

namespace seekserve {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

ControlTime t0() {
  return ControlTime(seconds(1'800'000'000));
}

// One replica whose cumulative counters the test advances between scrape rounds.
struct Replica {
  double busy = 0;
  double fast = 0, slow = 0;  // requests of 0.1 s and of 2 s
  double ok = 0, failed = 0;

  PromExposition scrape() const {
    std::string t = fmt::format(
        "seekserve_engine_busy_ratio {}\n"
        "seekserve_e2e_request_latency_seconds_bucket{{le=\"0.25\"}} {}\n"
        "seekserve_e2e_request_latency_seconds_bucket{{le=\"2.5\"}} {}\n"
        "seekserve_e2e_request_latency_seconds_bucket{{le=\"+Inf\"}} {}\n"
        "seekserve_requests_total{{code=\"200\"}} {}\nseekserve_requests_total{{code=\"503\"}} "
        "{}\n",
        busy, fast, fast + slow, fast + slow, ok, failed);
    return *parse_prom_text(t);
  }
};

AlertsConfig parse(const std::string& yaml) {
  Result<AlertsConfig> c = parse_alerts_config(YAML::Load(yaml));
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? *c : AlertsConfig{};
}

TEST(AlertsControl, DefaultsFromTheTuningGuide) {
  AlertsConfig c = parse("{}");
  ASSERT_EQ(c.rules.size(), 3u);
  EXPECT_EQ(c.rules[0].metric, ControlMetric::kP99Latency);
  EXPECT_DOUBLE_EQ(c.rules[0].threshold, 0.5);
  EXPECT_EQ(c.rules[1].metric, ControlMetric::kEngineUtilization);
  EXPECT_DOUBLE_EQ(c.rules[1].threshold, 0.95);
  EXPECT_EQ(c.rules[2].metric, ControlMetric::kErrorRate);
  EXPECT_DOUBLE_EQ(c.rules[2].threshold, 0.01);
  for (const AlertRule& r : c.rules) EXPECT_GT(r.for_duration.count(), 0) << r.name;
  // No alerts: section at all also means the defaults.
  Result<AlertsConfig> absent = parse_alerts_config(YAML::Node());
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(absent->rules.size(), 3u);
  // A user rule with a default's name replaces it; default_rules: false drops the rest.
  AlertsConfig o = parse(R"(
rules:
  - {name: SeekserveHighP99Latency, metric: p99_latency, threshold: 2s, window: 1m, for: 30s}
)");
  ASSERT_EQ(o.rules.size(), 3u);
  EXPECT_DOUBLE_EQ(o.rules.back().threshold, 2.0);
  AlertsConfig only = parse(R"(
default_rules: false
rules: [{name: Q, metric: request_queue_length, threshold: 10}]
)");
  ASSERT_EQ(only.rules.size(), 1u);
}

TEST(AlertsControl, BadConfigNamesTheField) {
  struct Case {
    const char* yaml;
    const char* expect;
  };
  const Case cases[] = {
      {"rules: [{name: A, metric: p99_latency, threshold: -1s}]", "alerts.rules[0].threshold"},
      {"rules: [{name: A, metric: gpu_temp, threshold: 1}]", "alerts.rules[0].metric"},
      {"rules: [{name: A, metric: error_rate, threshold: 1%, for: soon}]", "alerts.rules[0].for"},
      {"rules: [{name: A, metric: error_rate, threshold: 1%, window: 0s}]",
       "alerts.rules[0].window"},
      {"rules: [{name: A, metric: error_rate, treshold: 1%}]", "alerts.rules[0].treshold"},
      {"rules: [{metric: error_rate, threshold: 1%}]", "alerts.rules[0].name: missing"},
      {"rules: [{name: A, metric: error_rate, threshold: 1%, comparison: '>='}]",
       "alerts.rules[0].comparison"},
      {"webhook_url: https://x/api/v2/alerts", "alerts.webhook_url"},
      {"evaluation_interval: 0s", "alerts.evaluation_interval"},
      {"rules: {name: A}", "alerts.rules: expected a list"},
      {"colour: red", "alerts.colour: unknown key"},
  };
  for (const Case& c : cases) {
    Result<AlertsConfig> r = parse_alerts_config(YAML::Load(c.yaml));
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_TRUE(r.status().is_bad_input());
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.yaml << " -> " << r.status().message();
  }
}

TEST(AlertsControl, LatencyAlertPendsFiresAndResolves) {
  AlertEvaluator alerts(parse(R"(
default_rules: false
rules:
  - {name: SlowP99, metric: p99_latency, threshold: 500ms, window: 60s, for: 30s,
     labels: {severity: page}}
)"));
  MetricHistory h(minutes(10));
  Replica r;
  ControlTime now = t0();
  auto round = [&](double fast, double slow) {
    r.fast += fast, r.slow += slow, r.ok += fast + slow;
    h.add(now, {{"a", r.scrape()}});
    std::vector<AlertTransition> t = alerts.evaluate(h, now);
    now += seconds(10);
    return t;
  };
  EXPECT_TRUE(round(100, 0).empty());  // baseline
  EXPECT_TRUE(round(100, 0).empty());
  EXPECT_EQ(alerts.state("SlowP99"), AlertState::kInactive);
  // Latency injected: 5% of requests take 2 s -> P99 in (0.25, 2.5].
  EXPECT_TRUE(round(95, 5).empty());
  EXPECT_EQ(alerts.state("SlowP99"), AlertState::kPending);
  EXPECT_TRUE(round(95, 5).empty());
  EXPECT_TRUE(round(95, 5).empty());
  std::vector<AlertTransition> fired = round(95, 5);  // 30 s after it first held
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_TRUE(fired[0].firing);
  EXPECT_GT(*fired[0].value, 0.5);
  EXPECT_EQ(alerts.state("SlowP99"), AlertState::kFiring);
  EXPECT_EQ(alerts.firing_count(), 1);
  nlohmann::json j = alerts.to_json();
  EXPECT_EQ(j["firing"], nlohmann::json::array({"SlowP99"}));
  EXPECT_EQ(j["alerts"][0]["state"], "firing");
  EXPECT_NE(alerts.render_metrics().find("seekserve_router_alert_firing{alertname=\"SlowP99\"} 1"),
            std::string::npos);
  // Fast again: the 60 s window still holds slow requests for a while, then it resolves.
  std::vector<AlertTransition> resolved;
  for (int i = 0; i < 10 && resolved.empty(); ++i) resolved = round(100, 0);
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_FALSE(resolved[0].firing);
  EXPECT_EQ(alerts.state("SlowP99"), AlertState::kInactive);
  EXPECT_NE(alerts.render_metrics().find("seekserve_router_alert_firing{alertname=\"SlowP99\"} 0"),
            std::string::npos);
  EXPECT_EQ(alerts.to_json()["alerts"][0]["fired_total"], 1);
}

TEST(AlertsControl, ABlipShorterThanForDoesNotFire) {
  AlertEvaluator alerts(parse(R"(
default_rules: false
rules: [{name: Errors, metric: error_rate, threshold: 1%, window: 20s, for: 60s}]
)"));
  MetricHistory h(minutes(10));
  Replica r;
  ControlTime now = t0();
  int fired = 0;
  for (int i = 0; i < 30; ++i) {
    bool blip = i >= 5 && i < 8;  // 30 s of errors, then clean
    r.ok += 100, r.failed += blip ? 10 : 0;
    h.add(now, {{"a", r.scrape()}});
    for (const AlertTransition& t : alerts.evaluate(h, now)) fired += t.firing;
    now += seconds(10);
  }
  EXPECT_EQ(fired, 0);
  // Sustained errors do fire.
  for (int i = 0; i < 10; ++i) {
    r.ok += 100, r.failed += 10;
    h.add(now, {{"a", r.scrape()}});
    for (const AlertTransition& t : alerts.evaluate(h, now)) fired += t.firing;
    now += seconds(10);
  }
  EXPECT_EQ(fired, 1);
}

TEST(AlertsControl, NoDataIsNotFiring) {
  AlertEvaluator alerts(parse("{}"));
  MetricHistory h(minutes(10));
  for (int i = 0; i < 200; ++i) {
    h.add(t0() + seconds(10 * i), {});
    EXPECT_TRUE(alerts.evaluate(h, t0() + seconds(10 * i)).empty());
  }
  EXPECT_EQ(alerts.firing_count(), 0);
}

TEST(AlertsControl, WebhookBodyResendsFiringAndSendsResolvedOnce) {
  AlertEvaluator alerts(parse(R"(
default_rules: false
resend_interval: 60s
rules: [{name: Busy, metric: engine_utilization, threshold: 95%, window: 0s, for: 0s,
         labels: {severity: warning}, annotations: {summary: saturated}}]
)"));
  MetricHistory h(minutes(10));
  ControlTime now = t0();
  Replica busy{.busy = 0.99};
  h.add(now, {{"a", busy.scrape()}});
  alerts.evaluate(h, now);
  nlohmann::json body = alerts.webhook_body(now);
  ASSERT_EQ(body.size(), 1u);
  EXPECT_EQ(body[0]["labels"]["alertname"], "Busy");
  EXPECT_EQ(body[0]["labels"]["severity"], "warning");
  EXPECT_EQ(body[0]["annotations"]["summary"], "saturated");
  EXPECT_EQ(body[0]["startsAt"], format_rfc3339(now));
  EXPECT_EQ(body[0]["endsAt"], format_rfc3339(now + minutes(4)));
  alerts.mark_webhook_sent(now);
  EXPECT_TRUE(alerts.webhook_body(now + seconds(30)).empty());
  EXPECT_EQ(alerts.webhook_body(now + seconds(60)).size(), 1u);  // re-sent
  alerts.mark_webhook_sent(now + seconds(60));
  now += seconds(70);
  Replica idle{.busy = 0.2};
  h.add(now, {{"a", idle.scrape()}});
  alerts.evaluate(h, now);
  body = alerts.webhook_body(now);
  ASSERT_EQ(body.size(), 1u);
  EXPECT_EQ(body[0]["endsAt"], format_rfc3339(now));  // resolved
  alerts.mark_webhook_sent(now);
  EXPECT_TRUE(alerts.webhook_body(now + minutes(5)).empty());
}

// The webhook body is accepted by a real Alertmanager (Debian's prometheus-alertmanager), which
// then lists the alert as active, and drops it from its active list once resolved.
TEST(AlertsControl, RealAlertmanagerReceivesFiringAndResolved) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / fmt::format("seekserve-am-{}", getpid());
  fs::create_directories(dir / "data");
  {
    std::ofstream cfg(dir / "alertmanager.yml");
    cfg << "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n";
  }
  int port = test::free_port();
  test::ChildProcess am(
      {"prometheus-alertmanager", "--config.file=" + (dir / "alertmanager.yml").string(),
       "--storage.path=" + (dir / "data").string(),
       fmt::format("--web.listen-address=127.0.0.1:{}", port), "--cluster.listen-address="},
      (dir / "alertmanager.log").string());
  ASSERT_TRUE(
      test::wait_until([&] { return test::http_get(port, "/-/ready").status == 200; }, seconds(60)))
      << "alertmanager did not start; log in " << dir;

  AlertEvaluator alerts(parse(R"(
default_rules: false
rules: [{name: SeekserveTestBusy, metric: engine_utilization, threshold: 95%, window: 0s,
         labels: {severity: warning, team: inference}, annotations: {summary: saturated}}]
)"));
  std::string url = fmt::format("http://127.0.0.1:{}/api/v2/alerts", port);
  MetricHistory h(minutes(10));
  ControlTime now = ControlClock::now();
  Replica busy{.busy = 0.99};
  h.add(now, {{"a", busy.scrape()}});
  ASSERT_EQ(alerts.evaluate(h, now).size(), 1u);
  Status sent = post_json(url, alerts.webhook_body(now), seconds(5));
  ASSERT_TRUE(sent.ok()) << sent.message();
  alerts.mark_webhook_sent(now);

  auto active = [&] {
    test::HttpAnswer a =
        test::http_get(port, "/api/v2/alerts?filter=alertname%3DSeekserveTestBusy");
    EXPECT_EQ(a.status, 200);
    nlohmann::json j = nlohmann::json::parse(a.body, nullptr, false);
    return j.is_array() ? j : nlohmann::json::array();
  };
  nlohmann::json listed = active();
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["labels"]["team"], "inference");
  EXPECT_EQ(listed[0]["annotations"]["summary"], "saturated");
  EXPECT_EQ(listed[0]["status"]["state"], "active");

  now = ControlClock::now();
  Replica idle{.busy = 0.1};
  h.add(now, {{"a", idle.scrape()}});
  std::vector<AlertTransition> t = alerts.evaluate(h, now);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_FALSE(t[0].firing);
  sent = post_json(url, alerts.webhook_body(now), seconds(5));
  ASSERT_TRUE(sent.ok()) << sent.message();
  EXPECT_TRUE(test::wait_until([&] { return active().empty(); }, seconds(30)));

  // A bad body is refused by Alertmanager and reported as an error, not ignored.
  EXPECT_FALSE(post_json(url, nlohmann::json{{"not", "alerts"}}, seconds(5)).ok());
  am.stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace seekserve

namespace seekserve {
namespace {

// deploy/prometheus/seekserve-rules.yml carries the same alerts as the router's defaults: same
// names, thresholds, for: durations, severities and summaries.
TEST(AlertsControl, PrometheusRulesFileMatchesDefaults) {
  YAML::Node file =
      YAML::LoadFile(std::string(SEEKSERVE_SOURCE_DIR) + "/deploy/prometheus/seekserve-rules.yml");
  const YAML::Node& rules = file["groups"][0]["rules"];
  ASSERT_TRUE(rules.IsSequence());
  std::vector<AlertRule> defaults = default_alert_rules();
  ASSERT_EQ(rules.size(), defaults.size());
  for (const AlertRule& d : defaults) {
    YAML::Node match;
    for (const YAML::Node& r : rules)
      if (r["alert"].as<std::string>() == d.name) match = r;
    ASSERT_TRUE(match.IsDefined()) << d.name << " missing from the rules file";
    EXPECT_EQ(*parse_duration(match["for"].as<std::string>()), d.for_duration) << d.name;
    EXPECT_NE(match["expr"].as<std::string>().find(fmt::format("> {}", d.threshold)),
              std::string::npos)
        << d.name;
    EXPECT_NE(match["expr"].as<std::string>().find(fmt::format("[{}]", format_duration(d.window))),
              std::string::npos)
        << d.name;
    EXPECT_EQ(match["labels"]["severity"].as<std::string>(), d.labels.at("severity")) << d.name;
    EXPECT_EQ(match["annotations"]["summary"].as<std::string>(), d.annotations.at("summary"))
        << d.name;
  }
}

}  // namespace
}  // namespace seekserve
