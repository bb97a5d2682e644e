// The control loop end to end with real processes: alerts fire and resolve on latency and errors
// injected into a real HTTP backend (tests/router/fake_replica.mjs, node) and reach a real
// Alertmanager; the autoscaler adds a `seekserve serve` replica under sustained load, not a second
// one inside the cooldown, and scales back to min when the load stops without failing a request.
// The pool is the test's (it plays the router: picks a live backend and counts the request in
// flight atomically); tests/router/route_control_test.sh runs the same through `seekserve route`.

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

class LoadPool : public BackendPoolControl {
 public:
  int64_t add_backend(const std::string& url, int) override {
    std::lock_guard<std::mutex> lock(mutex_);
    backends_[next_] = {url};
    return next_++;
  }
  void begin_drain(int64_t id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    backends_.at(id).draining = true;
  }
  int64_t in_flight(int64_t id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return backends_.at(id).in_flight;
  }
  void remove_backend(int64_t id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    backends_.erase(id);
  }
  // Round robin over backends not draining; counts the request in flight. -1: none.
  std::pair<int64_t, std::string> acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<int64_t> live;
    for (const auto& [id, b] : backends_)
      if (!b.draining) live.push_back(id);
    if (live.empty()) return {-1, ""};
    int64_t id = live[static_cast<size_t>(turn_++) % live.size()];
    ++backends_[id].in_flight;
    return {id, backends_[id].url};
  }
  void release(int64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = backends_.find(id);
    if (it != backends_.end()) --it->second.in_flight;
  }
  std::vector<std::string> live_urls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [id, b] : backends_)
      if (!b.draining) out.push_back(b.url);
    return out;
  }

 private:
  struct Backend {
    std::string url;
    bool draining = false;
    int64_t in_flight = 0;
  };
  mutable std::mutex mutex_;
  std::map<int64_t, Backend> backends_;
  int64_t next_ = 0, turn_ = 0;
};

int post_completion(const std::string& url, int max_tokens) {
  httplib::Client client(url);
  client.set_read_timeout(120, 0);
  nlohmann::json body = {
      {"model", "tiny-v3"}, {"prompt", "load"}, {"max_tokens", max_tokens}, {"ignore_eos", true}};
  httplib::Result r = client.Post("/v1/completions", body.dump(), "application/json");
  return r ? r->status : 0;
}

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
  LoadPool unused;
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
  LoadPool unused;
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

TEST(ControlPlaneLive, AutoscalesServeReplicasUpAndBackToMin) {
  std::filesystem::path dir = temp_dir("autoscale");
  std::string make = fmt::format("{} make-model --preset tiny-v3 --out {}/tiny-v3 >/dev/null",
                                 SEEKSERVE_BINARY, dir.string());
  ASSERT_EQ(std::system(make.c_str()), 0);
  int base = 31000 + static_cast<int>(getpid() % 100) * 100;
  Result<ControlConfig> config = parse_control_config(
      YAML::Load(fmt::format(R"(
command: "{} serve --model {}/tiny-v3 --host 127.0.0.1 --port {{port}} --threads 1 --kv-blocks 256"
min: 1
max: 3
port_range: {}-{}
log_dir: {}
drain_timeout: 60s
)",
                             SEEKSERVE_BINARY, dir.string(), base, base + 99, dir.string())),
      YAML::Load(R"(
evaluation_interval: 1s
scaling_rules:
  - {metric: gpu_utilization, threshold: 60%, action: add_instance, cooldown: 10m}
  - {metric: gpu_utilization, threshold: 30%, action: remove_instance, window: 5s, cooldown: 0s}
)"),
      YAML::Load("default_rules: false"));
  ASSERT_TRUE(config.ok()) << config.status().message();
  LoadPool pool;
  ControlPlane control(*config, pool, [&] { return pool.live_urls(); });
  control.start();
  ReplicaSupervisor& sup = *control.supervisor();
  ASSERT_TRUE(test::wait_until([&] { return pool.live_urls().size() == 1; }, seconds(120)));

  std::atomic<bool> heavy{true}, stop{false};
  std::atomic<int> ok{0}, failed{0};
  auto worker = [&](bool trickle) {
    while (!stop) {
      if (!trickle && !heavy) return;
      auto [id, url] = pool.acquire();
      if (id < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      int status = post_completion(url, trickle ? 8 : 32);
      pool.release(id);
      (status == 200 ? ok : failed)++;
      if (trickle) std::this_thread::sleep_for(seconds(2));
    }
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(worker, false);
  workers.emplace_back(worker, true);

  // Sustained load: one replica added.
  ASSERT_TRUE(test::wait_until([&] { return sup.target() == 2; }, seconds(180)));
  ASSERT_TRUE(test::wait_until([&] { return pool.live_urls().size() == 2; }, seconds(120)));
  // Load goes on over both: no second addition inside the 10 minute cooldown.
  std::this_thread::sleep_for(seconds(10));
  EXPECT_EQ(sup.target(), 2);
  std::string metrics;
  control.render_metrics(metrics);
  EXPECT_NE(metrics.find("seekserve_router_scaling_decisions_total{action=\"add_instance\",metric="
                         "\"engine_utilization\"} 1"),
            std::string::npos)
      << metrics;

  // Load stops (a trickle goes on): drained back to the minimum, no request failed.
  heavy = false;
  ASSERT_TRUE(test::wait_until([&] { return sup.target() == 1; }, seconds(180)));
  ASSERT_TRUE(test::wait_until([&] { return sup.snapshot().size() == 1; }, seconds(120)));
  EXPECT_EQ(pool.live_urls().size(), 1u);
  stop = true;
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_GT(ok, 10);
  metrics.clear();
  control.render_metrics(metrics);
  EXPECT_NE(metrics.find("seekserve_router_scaling_decisions_total{action=\"remove_instance\","
                         "metric=\"engine_utilization\"} 1"),
            std::string::npos)
      << metrics;
  control.stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace seekserve
