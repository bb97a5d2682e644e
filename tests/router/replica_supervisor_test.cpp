// The replica supervisor with real `seekserve serve` processes on the tiny demo model: it starts
// `min` replicas and admits them once /health answers, restarts one that is killed and readmits
// it, scales up and down, and drains a replica before stopping it so an in-flight request
// finishes. The pool here is the supervisor's interface implemented by the test, which plays the
// router's part (counting its own in-flight requests); tests/router/route_control_test.sh drives
// the same supervisor through the real router.

#include "router/replica_supervisor.h"
#include "router/autoscaler.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "control_test_util.h"

namespace seekserve {
namespace {

using std::chrono::seconds;

class TestPool : public BackendPoolControl {
 public:
  struct Backend {
    std::string url;
    bool draining = false;
    bool removed = false;
    bool health_failing = false;
    int64_t in_flight = 0;
  };
  int64_t add_backend(const std::string& url, int) override {
    std::lock_guard<std::mutex> lock(mutex_);
    backends_[next_] = {url};
    log_.push_back(fmt::format("add {} {}", next_, url));
    return next_++;
  }
  void begin_drain(int64_t id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    backends_.at(id).draining = true;
    log_.push_back(fmt::format("drain {}", id));
  }
  int64_t in_flight(int64_t id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return backends_.at(id).in_flight;
  }
  void remove_backend(int64_t id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    backends_.at(id).removed = true;
    log_.push_back(fmt::format("remove {}", id));
  }
  bool health_failing(int64_t id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return backends_.at(id).health_failing;
  }
  // Plays the router's health checker: from now on `id` fails (or passes) its checks.
  void set_health_failing(int64_t id, bool failing) {
    std::lock_guard<std::mutex> lock(mutex_);
    backends_.at(id).health_failing = failing;
    log_.push_back(fmt::format("health_failing {} {}", id, failing));
  }
  // Backends in the pool and not draining: what the router would send new requests to.
  std::vector<std::pair<int64_t, std::string>> live() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::pair<int64_t, std::string>> out;
    for (const auto& [id, b] : backends_)
      if (!b.removed && !b.draining) out.emplace_back(id, b.url);
    return out;
  }
  void add_in_flight(int64_t id, int64_t delta) {
    std::lock_guard<std::mutex> lock(mutex_);
    backends_.at(id).in_flight += delta;
    log_.push_back(fmt::format("in_flight {} {}", id, backends_.at(id).in_flight));
  }
  bool removed(int64_t id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return backends_.at(id).removed;
  }
  std::vector<std::string> log() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return log_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<int64_t, Backend> backends_;
  std::vector<std::string> log_;
  int64_t next_ = 0;
};

// POST /v1/completions with max_tokens tokens; returns (status, completion_tokens).
std::pair<int, int64_t> complete(const std::string& url, int max_tokens) {
  httplib::Client client(url);
  client.set_read_timeout(300, 0);
  nlohmann::json body = {{"model", "tiny-v3"},
                         {"prompt", "supervised"},
                         {"max_tokens", max_tokens},
                         {"ignore_eos", true}};
  httplib::Result r = client.Post("/v1/completions", body.dump(), "application/json");
  if (!r) return {0, 0};
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  int64_t tokens =
      j.is_object() && j.contains("usage") ? j["usage"].value("completion_tokens", 0) : int64_t{0};
  return {r->status, tokens};
}

// The first replica's restart count and pid (0 and -1 before the supervisor spawned it).
int64_t restarts_of_first(const ReplicaSupervisor& sup) {
  std::vector<ReplicaInfo> s = sup.snapshot();
  return s.empty() ? 0 : s[0].restarts;
}
pid_t pid_of_first(const ReplicaSupervisor& sup) {
  std::vector<ReplicaInfo> s = sup.snapshot();
  return s.empty() ? -1 : s[0].pid;
}

bool process_gone(pid_t pid) {
  return kill(pid, 0) != 0 && errno == ESRCH;
}

class SupervisorControl : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     fmt::format("seekserve-supervisor-{}", getpid()));
    std::filesystem::create_directories(*dir_);
    std::string cmd = fmt::format("{} make-model --preset tiny-v3 --out {}/tiny-v3 >/dev/null",
                                  SEEKSERVE_BINARY, dir_->string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  ReplicaConfig serve_config(int64_t min, int64_t max) {
    ReplicaConfig c;
    c.command = fmt::format(
        "{} serve --model {}/tiny-v3 --host 127.0.0.1 --port {{port}} --threads 1 --kv-blocks 256",
        SEEKSERVE_BINARY, dir_->string());
    c.min = min;
    c.max = max;
    int base = 30000 + static_cast<int>(getpid() % 200) * 100;
    c.port_first = base;
    c.port_last = base + 99;
    c.startup_timeout = seconds(120);
    c.restart_backoff = std::chrono::milliseconds(200);
    c.drain_timeout = seconds(120);
    c.stop_timeout = seconds(30);
    c.log_dir = dir_->string();
    return c;
  }
  static std::filesystem::path* dir_;
};
std::filesystem::path* SupervisorControl::dir_ = nullptr;

TEST_F(SupervisorControl, StartsRestartsScalesAndDrains) {
  TestPool pool;
  ReplicaSupervisor sup(serve_config(2, 3), pool);
  sup.start();
  ASSERT_TRUE(test::wait_until([&] { return pool.live().size() == 2; }, seconds(180)));
  std::vector<ReplicaInfo> replicas = sup.snapshot();
  ASSERT_EQ(replicas.size(), 2u);
  for (const ReplicaInfo& r : replicas) {
    EXPECT_EQ(r.state, ReplicaState::kReady);
    EXPECT_EQ(complete(r.url, 4), std::make_pair(200, int64_t{4})) << r.url;
  }
  EXPECT_NE(replicas[0].port, replicas[1].port);

  // scale_batch against a real replica: max_num_seqs steps up at run time and stops at the
  // replica's own --max-num-seqs-limit (4 x the default 32), not at the policy's larger ceiling.
  Result<std::pair<int64_t, int64_t>> raised = raise_max_num_seqs(replicas[0].url, 16, 1000, "");
  ASSERT_TRUE(raised.ok()) << raised.status().message();
  EXPECT_EQ(*raised, std::make_pair(int64_t{32}, int64_t{48}));
  raised = raise_max_num_seqs(replicas[0].url, 1000, 1000, "");
  ASSERT_TRUE(raised.ok()) << raised.status().message();
  EXPECT_EQ(*raised, std::make_pair(int64_t{48}, int64_t{128}));
  EXPECT_NE(test::http_get(replicas[0].port, "/admin/scheduler").body.find("\"max_num_seqs\":128"),
            std::string::npos);

  // Killed: removed from the pool, restarted on a fresh process, readmitted.
  ReplicaInfo victim = replicas[0];
  int64_t old_backend = *victim.backend_id;
  ASSERT_EQ(kill(victim.pid, SIGKILL), 0);
  ASSERT_TRUE(test::wait_until(
      [&] {
        std::vector<ReplicaInfo> now = sup.snapshot();
        return pool.removed(old_backend) && now.size() == 2 && now[0].restarts == 1 &&
               now[0].state == ReplicaState::kReady;
      },
      seconds(180)));
  ReplicaInfo restarted = sup.snapshot()[0];
  EXPECT_EQ(restarted.slot, victim.slot);
  EXPECT_NE(restarted.pid, victim.pid);
  EXPECT_EQ(pool.live().size(), 2u);
  EXPECT_EQ(complete(restarted.url, 4).first, 200);
  EXPECT_NE(sup.render_metrics().find("seekserve_router_replica_restarts_total 1"),
            std::string::npos);

  // Up to 3 (the max, whatever is asked).
  EXPECT_EQ(sup.set_target(10), 3);
  ASSERT_TRUE(test::wait_until([&] { return pool.live().size() == 3; }, seconds(180)));

  // Back to 2 (the min) with a long request in flight on the replica that goes first (the
  // newest).
  replicas = sup.snapshot();
  ASSERT_EQ(replicas.size(), 3u);
  ReplicaInfo busy = replicas[2];
  pool.add_in_flight(*busy.backend_id, 1);  // as the router counts a request it forwards
  std::pair<int, int64_t> in_flight_result;
  std::thread request([&] {
    in_flight_result = complete(busy.url, 200);
    pool.add_in_flight(*busy.backend_id, -1);
  });
  test::wait_until(
      [&] {
        return test::http_get(busy.port, "/metrics")
                   .body.find("seekserve_num_requests_running 1") != std::string::npos;
      },
      seconds(60));
  EXPECT_EQ(sup.set_target(0), 2);
  EXPECT_TRUE(test::wait_until([&] { return sup.active_count() == 2; }, seconds(30)));
  request.join();
  EXPECT_EQ(in_flight_result, std::make_pair(200, int64_t{200}));
  ASSERT_TRUE(test::wait_until([&] { return sup.snapshot().size() == 2; }, seconds(120)));
  EXPECT_EQ(pool.live().size(), 2u);
  EXPECT_TRUE(process_gone(busy.pid));
  EXPECT_FALSE(process_gone(replicas[1].pid));
  // The busy replica was drained first and removed only after its request finished.
  std::vector<std::string> log = pool.log();
  auto at = [&](const std::string& line) {
    return std::find(log.begin(), log.end(), line) - log.begin();
  };
  int64_t id = *busy.backend_id;
  EXPECT_LT(at(fmt::format("drain {}", id)), at(fmt::format("in_flight {} 0", id)));
  EXPECT_LT(at(fmt::format("in_flight {} 0", id)), at(fmt::format("remove {}", id)));
  EXPECT_LT(at(fmt::format("remove {}", id)), static_cast<int64_t>(log.size()));

  std::vector<ReplicaInfo> left = sup.snapshot();
  sup.stop();
  for (const ReplicaInfo& r : left) {
    EXPECT_TRUE(process_gone(r.pid));
    // One SIGTERM: serve drained and exited by itself (a second signal would cut the drain).
    std::ifstream log(*dir_ / fmt::format("replica-{}.log", r.port));
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("signal received: draining"), std::string::npos) << r.port;
  }
  EXPECT_TRUE(pool.live().empty());
}

// A live replica whose health check keeps failing is killed and replaced by a fresh process;
// one that recovers within replace_unhealthy_after is left alone. (The router's real health
// check against a SIGSTOPped replica: tests/router/route_replace_test.sh.)
TEST_F(SupervisorControl, UnhealthyReplicaIsReplaced) {
  TestPool pool;
  ReplicaConfig c = serve_config(1, 1);
  c.replace_unhealthy_after = seconds(2);
  c.replace_grace = seconds(20);
  ReplicaSupervisor sup(c, pool);
  sup.start();
  ASSERT_TRUE(test::wait_until([&] { return pool.live().size() == 1; }, seconds(180)));
  ReplicaInfo first = sup.snapshot()[0];
  int64_t first_backend = *first.backend_id;

  // A blip shorter than the window: nothing happens.
  pool.set_health_failing(first_backend, true);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  pool.set_health_failing(first_backend, false);
  std::this_thread::sleep_for(seconds(3));
  EXPECT_FALSE(pool.removed(first_backend));
  EXPECT_EQ(sup.snapshot()[0].pid, first.pid);

  // Failing for longer: out of the pool, SIGTERM (serve drains and exits well inside the grace),
  // a fresh process on a fresh port, readmitted.
  pool.set_health_failing(first_backend, true);
  ASSERT_TRUE(test::wait_until(
      [&] {
        std::vector<ReplicaInfo> now = sup.snapshot();
        return now.size() == 1 && now[0].restarts == 1 && now[0].state == ReplicaState::kReady;
      },
      seconds(180)));
  ReplicaInfo fresh = sup.snapshot()[0];
  EXPECT_TRUE(pool.removed(first_backend));
  EXPECT_TRUE(process_gone(first.pid));
  EXPECT_NE(fresh.pid, first.pid);
  EXPECT_NE(*fresh.backend_id, first_backend);
  ASSERT_EQ(pool.live().size(), 1u);
  EXPECT_EQ(pool.live()[0].second, fresh.url);
  EXPECT_EQ(complete(fresh.url, 4).first, 200);
  const std::string metrics = sup.render_metrics();
  EXPECT_NE(metrics.find("seekserve_router_replica_replacements_total{reason=\"health_check\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("seekserve_router_replica_restarts_total 1"), std::string::npos);
  // SIGTERM was enough: the old replica drained by itself.
  std::ifstream log(*dir_ / fmt::format("replica-{}.log", first.port));
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("signal received: draining"), std::string::npos);
  sup.stop();
}

TEST_F(SupervisorControl, CrashingReplicaBacksOff) {
  TestPool pool;
  ReplicaConfig c = serve_config(1, 1);
  c.command = "/bin/false {port}";
  c.restart_backoff = std::chrono::milliseconds(200);
  ReplicaSupervisor sup(c, pool);
  auto started = std::chrono::steady_clock::now();
  sup.start();
  ASSERT_TRUE(test::wait_until([&] { return restarts_of_first(sup) >= 4; }, seconds(60)));
  // Four restarts wait at least 0.2 + 0.4 + 0.8 + 1.6 s (a slow machine only adds to it).
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(3000));
  EXPECT_TRUE(pool.live().empty());
  sup.stop();
}

TEST_F(SupervisorControl, ReplicaThatNeverGetsReadyIsReplaced) {
  TestPool pool;
  ReplicaConfig c = serve_config(1, 1);
  c.command = "sleep 1000 # {port}";
  c.startup_timeout = seconds(1);
  ReplicaSupervisor sup(c, pool);
  sup.start();
  pid_t first = -1;
  ASSERT_TRUE(test::wait_until([&] { return (first = pid_of_first(sup)) > 0; }, seconds(30)));
  ASSERT_TRUE(test::wait_until([&] { return restarts_of_first(sup) >= 1; }, seconds(60)));
  EXPECT_TRUE(process_gone(first));
  EXPECT_TRUE(pool.live().empty());
  EXPECT_NE(sup.render_metrics().find(
                "seekserve_router_replica_replacements_total{reason=\"startup_timeout\"} "),
            std::string::npos);
  EXPECT_EQ(sup.render_metrics().find(
                "seekserve_router_replica_replacements_total{reason=\"startup_timeout\"} 0"),
            std::string::npos);
  sup.stop();
}

TEST(SupervisorConfig, ParsesAndRejects) {
  Result<ReplicaConfig> ok = parse_replica_config(YAML::Load(R"(
command: "seekserve serve --model m --port {port}"
min: 1
max: 3
port_range: 18000-18009
startup_timeout: 2m
drain_timeout: 30s
replace_unhealthy_after: 45s
)"));
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->max, 3);
  EXPECT_EQ(ok->port_first, 18000);
  EXPECT_EQ(ok->port_last, 18009);
  EXPECT_EQ(ok->startup_timeout, std::chrono::minutes(2));
  EXPECT_EQ(ok->replace_unhealthy_after, seconds(45));
  EXPECT_EQ(ok->replace_grace, seconds(5));  // the default
  Result<ReplicaConfig> off =
      parse_replica_config(YAML::Load("command: x {port}\nreplace_unhealthy_after: 0s"));
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_EQ(off->replace_unhealthy_after.count(), 0);
  EXPECT_EQ(parse_replica_config(YAML::Load("command: x {port}"))->replace_unhealthy_after,
            seconds(30));
  struct Case {
    const char* yaml;
    const char* expect;
  };
  const Case cases[] = {
      {"command: seekserve serve", "replicas.command: must contain {port}"},
      {"min: 1", "replicas.command: missing"},
      {"command: x {port}\nmin: 0", "replicas.min"},
      {"command: x {port}\nmin: 3\nmax: 2", "replicas.max: 2 is below min 3"},
      {"command: x {port}\nport_range: 9000-8000", "replicas.port_range"},
      {"command: x {port}\nport_range: lots", "replicas.port_range"},
      {"command: x {port}\nmax: 5\nport_range: 9000-9001", "fewer ports than max 5"},
      {"command: x {port}\nstop_timeout: forever", "replicas.stop_timeout"},
      {"command: x {port}\nweight: -1", "replicas.weight"},
      {"command: x {port}\nreplicas: 3", "replicas.replicas: unknown key"},
      {"command: x {port}\nreplace_unhealthy_after: -5s", "replicas.replace_unhealthy_after"},
      {"command: x {port}\nreplace_unhealthy_after: soon", "replicas.replace_unhealthy_after"},
      {"command: x {port}\nreplace_grace: 0s", "replicas.replace_grace: must be above 0"},
  };
  for (const Case& c : cases) {
    Result<ReplicaConfig> r = parse_replica_config(YAML::Load(c.yaml));
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.yaml << " -> " << r.status().message();
  }
}

}  // namespace
}  // namespace seekserve
