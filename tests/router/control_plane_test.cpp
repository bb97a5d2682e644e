// The control loop with real processes: alerts fire and resolve on latency and errors injected
// into a real HTTP backend (tests/router/fake_replica.mjs, node) and the webhook delivers them to
// a real Alertmanager; scale_batch raises max_num_seqs over HTTP. Autoscaling with supervised
// `seekserve serve` replicas is tested through the real router in route_control_test.sh.

#include "router/control_plane.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "control_test_util.h"

namespace seekserve {
namespace {

using std::chrono::seconds;

// These control planes have no replicas: section, so nothing is ever added to the pool.
class NoPool : public BackendPoolControl {
 public:
  int64_t add_backend(const std::string&, int) override {
    ADD_FAILURE() << "add_backend without replicas";
    return -1;
  }
  void begin_drain(int64_t) override { ADD_FAILURE(); }
  int64_t in_flight(int64_t) override { return 0; }
  void remove_backend(int64_t) override { ADD_FAILURE(); }
  bool health_failing(int64_t) override { return false; }
};

std::filesystem::path temp_dir(const char* name) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("seekserve-{}-{}", name, getpid());
  std::filesystem::create_directories(dir);
  return dir;
}

// Waits for "listening on http://..." / "at http://..." in a log; returns the port or -1.
int port_from_log(const std::filesystem::path& log) {
  int port = -1;
  test::wait_until(
      [&] {
        std::ifstream in(log);
        std::string line;
        while (std::getline(in, line)) {
          size_t at = line.find("http://127.0.0.1:");
          if (at != std::string::npos) {
            port = std::atoi(line.c_str() + at + 17);
            return true;
          }
        }
        return false;
      },
      seconds(60));
  return port;
}

std::string alert_state(const ControlPlane& control, const std::string& name) {
  nlohmann::json j = nlohmann::json::parse(control.alerts_json());
  for (const nlohmann::json& a : j["alerts"])
    if (a["name"] == name) return a["state"];
  return "absent";
}

TEST(ControlPlaneConfig, SectionsTogether) {
  Result<ControlConfig> c = parse_control_config(
      YAML::Load("{command: 'x --port {port}', min: 1, max: 3}"),
      YAML::Load("{evaluation_interval: 2s, scaling_rules: [{metric: gpu_utilization, threshold: "
                 "85%, action: add_instance}]}"),
      YAML::Node());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->interval, seconds(2));
  EXPECT_EQ(c->scaling->max_replicas, 3);
  EXPECT_EQ(c->alerts.rules.size(), 3u);
  Result<ControlConfig> bad = parse_control_config(
      YAML::Node(),
      YAML::Load("{scaling_rules: [{metric: gpu_utilization, threshold: 85%, action: "
                 "add_instance}]}"),
      YAML::Node());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("scaling_policy.scaling_rules[0].action"),
            std::string::npos);
}

TEST(ControlPlaneLive, AlertsFireAndResolveOnInjectedLatencyAndErrors) {
  std::filesystem::path dir = temp_dir("alerts");
  std::filesystem::create_directories(dir / "am");
  {
    std::ofstream cfg(dir / "alertmanager.yml");
    cfg << "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";
  }
  int am_port = test::free_port();
  test::ChildProcess am(
      {"prometheus-alertmanager", "--config.file=" + (dir / "alertmanager.yml").string(),
       "--storage.path=" + (dir / "am").string(),
       fmt::format("--web.listen-address=127.0.0.1:{}", am_port), "--cluster.listen-address="},
      (dir / "alertmanager.log").string());
  test::ChildProcess fake(
      {"node", std::string(SEEKSERVE_SOURCE_DIR) + "/tests/router/fake_replica.mjs"},
      (dir / "fake.log").string());
  int port = port_from_log(dir / "fake.log");
  ASSERT_GT(port, 0);
  ASSERT_TRUE(test::wait_until([&] { return test::http_get(am_port, "/-/ready").status == 200; },
                               seconds(60)));
  std::string url = fmt::format("http://127.0.0.1:{}", port);
  auto inject = [&](const nlohmann::json& cfg) {
    httplib::Client c(url);
    ASSERT_TRUE(c.Post("/fake/config", cfg.dump(), "application/json"));
  };

  Result<ControlConfig> config = parse_control_config(YAML::Node(), YAML::Node(),
                                                      YAML::Load(fmt::format(R"(
default_rules: false
evaluation_interval: 500ms
webhook_url: http://127.0.0.1:{}/api/v2/alerts
rules:
  - {{name: SlowP99, metric: p99_latency, threshold: 500ms, window: 4s, for: 1s}}
  - {{name: Failing, metric: error_rate, threshold: 1%, window: 4s, for: 1s}}
)",
                                                                             am_port)));
  ASSERT_TRUE(config.ok()) << config.status().message();
  NoPool unused;
  ControlPlane control(*config, unused, [&] { return std::vector<std::string>{url}; });
  control.start();

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::thread traffic([&] {
    while (!stop) {
      httplib::Client c(url);
      c.set_read_timeout(30, 0);
      c.Post("/v1/completions", "{}", "application/json");
      ++sent;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto am_lists = [&](const std::string& name) {
    test::HttpAnswer a = test::http_get(am_port, "/api/v2/alerts?filter=alertname%3D" + name);
    nlohmann::json j = nlohmann::json::parse(a.body, nullptr, false);
    return j.is_array() && j.size() == 1 && j[0]["status"]["state"] == "active";
  };

  // Healthy traffic: nothing fires.
  ASSERT_TRUE(test::wait_until([&] { return sent > 20; }, seconds(60)));
  std::this_thread::sleep_for(seconds(2));
  EXPECT_EQ(alert_state(control, "SlowP99"), "inactive");
  EXPECT_EQ(alert_state(control, "Failing"), "inactive");

  // Latency injected: fires, reaches Alertmanager, resolves when the latency goes.
  inject({{"delay_ms", 800}});
  EXPECT_TRUE(
      test::wait_until([&] { return alert_state(control, "SlowP99") == "firing"; }, seconds(90)));
  EXPECT_TRUE(test::wait_until([&] { return am_lists("SlowP99"); }, seconds(30)));
  std::string metrics;
  control.render_metrics(metrics);
  EXPECT_NE(metrics.find("seekserve_router_alert_firing{alertname=\"SlowP99\"} 1"),
            std::string::npos);
  inject({{"delay_ms", 0}});
  EXPECT_TRUE(
      test::wait_until([&] { return alert_state(control, "SlowP99") == "inactive"; }, seconds(90)));
  EXPECT_TRUE(test::wait_until([&] { return !am_lists("SlowP99"); }, seconds(30)));
  EXPECT_EQ(alert_state(control, "Failing"), "inactive");

  // Errors injected (every 5th request answers 500): fires, then resolves.
  inject({{"fail_every", 5}});
  EXPECT_TRUE(
      test::wait_until([&] { return alert_state(control, "Failing") == "firing"; }, seconds(90)));
  EXPECT_TRUE(test::wait_until([&] { return am_lists("Failing"); }, seconds(30)));
  inject({{"fail_every", 0}});
  EXPECT_TRUE(
      test::wait_until([&] { return alert_state(control, "Failing") == "inactive"; }, seconds(90)));
  EXPECT_TRUE(test::wait_until([&] { return !am_lists("Failing"); }, seconds(30)));
  metrics.clear();
  control.render_metrics(metrics);
  EXPECT_NE(metrics.find("seekserve_router_alert_webhook_deliveries_total{result=\"ok\"}"),
            std::string::npos);
  EXPECT_NE(metrics.find("seekserve_router_alert_webhook_deliveries_total{result=\"failed\"} 0"),
            std::string::npos);

  stop = true;
  traffic.join();
  control.stop();
  std::filesystem::remove_all(dir);
}

// scale_batch: a long queue raises the backend's max_num_seqs through /admin/scheduler, step by
// step up to the ceiling (the fake keeps the value; see fake_replica.mjs).
TEST(ControlPlaneLive, ScaleBatchRaisesMaxNumSeqsUpToTheCeiling) {
  std::filesystem::path dir = temp_dir("batch");
  test::ChildProcess fake(
      {"node", std::string(SEEKSERVE_SOURCE_DIR) + "/tests/router/fake_replica.mjs"},
      (dir / "fake.log").string());
  int port = port_from_log(dir / "fake.log");
  ASSERT_GT(port, 0);
  std::string url = fmt::format("http://127.0.0.1:{}", port);
  auto max_num_seqs = [&] {
    nlohmann::json j =
        nlohmann::json::parse(test::http_get(port, "/admin/scheduler").body, nullptr, false);
    return j.is_object() ? j.value("max_num_seqs", -1) : -1;
  };
  ASSERT_EQ(max_num_seqs(), 8);
  Result<ControlConfig> config = parse_control_config(YAML::Node(), YAML::Load(R"(
evaluation_interval: 200ms
scaling_rules:
  - {metric: request_queue_length, threshold: 50, action: scale_batch, step: 16,
     max_num_seqs: 40, cooldown: 0s}
)"),
                                                      YAML::Load("default_rules: false"));
  ASSERT_TRUE(config.ok()) << config.status().message();
  NoPool unused;
  ControlPlane control(*config, unused, [&] { return std::vector<std::string>{url}; });
  control.start();
  std::this_thread::sleep_for(seconds(1));
  EXPECT_EQ(max_num_seqs(), 8);  // queue empty: nothing to do
  httplib::Client c(url);
  ASSERT_TRUE(c.Post("/fake/config", R"({"waiting": 60})", "application/json"));
  EXPECT_TRUE(test::wait_until([&] { return max_num_seqs() == 40; }, seconds(30)));
  std::this_thread::sleep_for(seconds(1));
  EXPECT_EQ(max_num_seqs(), 40);  // the ceiling holds
  control.stop();
  std::filesystem::remove_all(dir);
}

// scale_batch against a real `seekserve serve` started with API keys: the router sends the key
// from scaling_policy.admin_api_key_file. Without it, or with a key that may not use /admin, the
// call fails, and that is logged and counted (seekserve_router_scale_batch_calls_total) while
// the replica's max_num_seqs stays; with the admin key it is raised.
TEST(ControlPlaneLive, ScaleBatchSendsTheAdminKey) {
  std::filesystem::path dir = temp_dir("adminkey");
  std::string cmd = fmt::format("{} make-model --preset tiny-v3 --out {}/tiny-v3 >/dev/null",
                                SEEKSERVE_BINARY, dir.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  // serve's key file: one admin key, one plain key. The router is given the same file (its first
  // key is the admin one), or a file holding only the plain key.
  const std::string keys = (dir / "keys").string();
  std::ofstream(keys) << "# replica keys\nadmin-k3y admin\nuser-k3y\n";
  const std::string user_key = (dir / "user.key").string();
  std::ofstream(user_key) << "user-k3y\n";
  test::ChildProcess replica(
      {SEEKSERVE_BINARY, "serve", "--model", (dir / "tiny-v3").string(), "--host", "127.0.0.1",
       "--port", "0", "--threads", "1", "--kv-blocks", "64", "--api-key-file", keys},
      (dir / "replica.log").string());
  int port = port_from_log(dir / "replica.log");
  ASSERT_GT(port, 0);
  const std::string url = fmt::format("http://127.0.0.1:{}", port);
  auto max_num_seqs = [&] {
    httplib::Client c(url);
    c.set_bearer_token_auth("admin-k3y");
    httplib::Result r = c.Get("/admin/scheduler");
    if (!r || r->status != 200) return int64_t{-1};
    nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() ? j.value("max_num_seqs", int64_t{-1}) : int64_t{-1};
  };
  ASSERT_TRUE(test::wait_until([&] { return max_num_seqs() == 32; }, seconds(60)));
  ASSERT_EQ(test::http_get(port, "/admin/scheduler").status, 401);  // keys are enforced

  // An idle replica's queue (0) is below 1 at every round: scale_batch every round.
  auto run = [&](const std::string& key_line, const std::string& want) {
    Result<ControlConfig> config = parse_control_config(YAML::Node(),
                                                        YAML::Load(fmt::format(R"(
evaluation_interval: 200ms
{}
scaling_rules:
  - {{metric: request_queue_length, threshold: 1, comparison: below, action: scale_batch,
     step: 8, max_num_seqs: 40, cooldown: 0s}}
)",
                                                                               key_line)),
                                                        YAML::Load("default_rules: false"));
    EXPECT_TRUE(config.ok()) << config.status().message();
    if (!config.ok()) return std::string();
    NoPool unused;
    ControlPlane control(*config, unused, [&] { return std::vector<std::string>{url}; });
    testing::internal::CaptureStderr();
    control.start();
    bool seen = test::wait_until(
        [&] {
          std::string m;
          control.render_metrics(m);
          return m.find(want) != std::string::npos;
        },
        seconds(60));
    control.stop();
    std::string log = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(seen) << want;
    return log;
  };
  std::string log = run("", "seekserve_router_scale_batch_calls_total{result=\"failed\"} 2");
  EXPECT_NE(
      log.find(fmt::format("scale_batch failed on {}: GET {}/admin/scheduler: HTTP 401", url, url)),
      std::string::npos)
      << log;
  EXPECT_EQ(max_num_seqs(), 32);
  log = run("admin_api_key_file: " + user_key,
            "seekserve_router_scale_batch_calls_total{result=\"failed\"} 2");
  EXPECT_NE(log.find("HTTP 403"), std::string::npos) << log;
  EXPECT_EQ(max_num_seqs(), 32);
  log = run("admin_api_key_file: " + keys,
            "seekserve_router_scale_batch_calls_total{result=\"ok\"} 2");
  EXPECT_EQ(log.find("scale_batch failed"), std::string::npos) << log;
  EXPECT_NE(log.find(fmt::format("scale_batch: {} max_num_seqs 32 -> 40", url)), std::string::npos)
      << log;
  EXPECT_EQ(max_num_seqs(), 40);
  replica.stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace seekserve
