#pragma once
// Local replica processes the router starts and supervises (`replicas:` in router.yaml):
//
//   replicas:
//     command: "seekserve serve --model /models/r1-7b --port {port} --threads 8"
//     min: 1                 # started at once and kept running
//     max: 4                 # the autoscaler never goes above
//     port_range: 18000-18099
//     host: 127.0.0.1        # where the replicas listen (the router connects there)
//     weight: 1              # their weight in the router's pool
//     startup_timeout: 300s  # from spawn to a 200 from GET /health
//     restart_backoff: 1s    # first restart delay after a crash, doubling up to 30s
//     drain_timeout: 60s     # scale-down: how long in-flight requests may take
//     stop_timeout: 30s      # SIGTERM -> SIGKILL (serve drains on SIGTERM itself)
//     replace_unhealthy_after: 30s  # a ready replica the router's health check holds unhealthy
//                                   # this long is killed and replaced (0s: never)
//     replace_grace: 5s      # replacing: SIGTERM -> SIGKILL
//     log_dir: /var/log/seekserve   # optional: replica-<port>.log files; default: router's stderr
//
// Each replica runs `/bin/sh -c "exec <command>"` in its own process group, with {port}
// substituted, and dies with the router (PR_SET_PDEATHSIG). Once GET /health answers 200 it joins
// the router's pool. One that exits is removed from the pool and restarted after a backoff that
// doubles while it keeps crashing. Scaling down drains: the pool stops sending it new requests
// (begin_drain), the supervisor waits for its in-flight count to reach 0 (bounded by
// drain_timeout), then SIGTERM, then SIGKILL after stop_timeout.
//
// A replica that hangs while its process lives (its engine loop stalled, so serve's /health
// answers 503; or frozen, answering nothing at all) is caught by the router's active health
// check: once the pool holds it unhealthy (health_failing) for replace_unhealthy_after, it is
// removed from the pool, sent SIGTERM, SIGKILL after replace_grace, and a fresh process is
// started at once (counted in seekserve_router_replica_replacements_total{reason}). A frozen
// process cannot act on SIGTERM, so that is the SIGKILL path; requests it held get a reset, and
// the router retries them elsewhere (nothing was sent to their clients).
//
// Thread-safety: every public method may be called from any thread; one internal thread runs
// the supervision loop and is the only caller of the pool.

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/status.h"
#include "router/control_values.h"

namespace seekserve {

struct ReplicaConfig {
  std::string command;  // contains {port}
  int64_t min = 1;
  int64_t max = 1;
  int port_first = 18000;
  int port_last = 18099;
  std::string host = "127.0.0.1";
  int weight = 1;
  ControlDuration startup_timeout{std::chrono::seconds(300)};
  ControlDuration restart_backoff{std::chrono::seconds(1)};
  ControlDuration restart_backoff_max{std::chrono::seconds(30)};
  ControlDuration drain_timeout{std::chrono::seconds(60)};
  ControlDuration stop_timeout{std::chrono::seconds(30)};
  ControlDuration replace_unhealthy_after{std::chrono::seconds(30)};  // 0 = never
  ControlDuration replace_grace{std::chrono::seconds(5)};
  std::string log_dir;
};

// Reads `replicas:`. Errors name the field.
Result<ReplicaConfig> parse_replica_config(const YAML::Node& node);

// What the supervisor needs from the router's backend pool (the router adapts its pool to it).
class BackendPoolControl {
 public:
  virtual ~BackendPoolControl() = default;
  virtual int64_t add_backend(const std::string& url, int weight) = 0;
  // No new requests go to it; in-flight ones continue.
  virtual void begin_drain(int64_t id) = 0;
  virtual int64_t in_flight(int64_t id) = 0;
  virtual void remove_backend(int64_t id) = 0;
  // True while the router's active health check holds `id` unhealthy: it failed its checks
  // (unhealthy_threshold in a row, or its first ones) and has not passed healthy_threshold since.
  // False before the first verdict.
  virtual bool health_failing(int64_t id) = 0;
};

// kReplacing: killed for failing its health check; restarted once it has exited.
enum class ReplicaState { kStarting, kReady, kDraining, kStopping, kBackoff, kReplacing };
const char* replica_state_name(ReplicaState state);

struct ReplicaInfo {
  int64_t slot = 0;  // stable across restarts of the same replica
  ReplicaState state = ReplicaState::kStarting;
  pid_t pid = -1;  // -1 while in backoff
  int port = 0;
  std::string url;  // http://host:port
  int64_t restarts = 0;
  std::optional<int64_t> backend_id;  // while in the pool
};

class ReplicaSupervisor {
 public:
  ReplicaSupervisor(ReplicaConfig config, BackendPoolControl& pool);
  ~ReplicaSupervisor();  // stop()
  ReplicaSupervisor(const ReplicaSupervisor&) = delete;
  ReplicaSupervisor& operator=(const ReplicaSupervisor&) = delete;

  // Starts the supervision thread, which spawns `min` replicas.
  void start();
  // Removes every replica from the pool, SIGTERMs them, SIGKILLs any left after stop_timeout.
  void stop();

  // The number of replicas to keep (clamped to min..max); returns the clamped value.
  int64_t set_target(int64_t replicas);
  int64_t target() const;
  // Replicas starting, ready, being replaced or waiting to restart (not those draining or
  // stopping).
  int64_t active_count() const;

  std::vector<ReplicaInfo> snapshot() const;
  // URLs of ready replicas (what the router scrapes).
  std::vector<std::string> ready_urls() const;
  // seekserve_router_supervised_replicas{state}, seekserve_router_replica_restarts_total, ...
  std::string render_metrics() const;

  const ReplicaConfig& config() const { return config_; }

 private:
  struct Replica;
  using SteadyTime = std::chrono::steady_clock::time_point;

  void run();
  void tick(SteadyTime now);
  void shut_down();
  Status spawn(Replica& r, SteadyTime now);
  void reap(Replica& r, int wait_status, SteadyTime now);
  // Ready replica whose health check keeps failing: out of the pool, SIGTERM, restart on exit.
  void replace(Replica& r, SteadyTime now);
  // Takes r out of the pool (if it is in), sends its process group SIGTERM and moves it to
  // `next` (kStopping or kReplacing), SIGKILL due after `grace`.
  void terminate(Replica& r, ReplicaState next, SteadyTime now, ControlDuration grace);
  int choose_port() const;

  ReplicaConfig config_;
  BackendPoolControl& pool_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  int64_t target_;
  int64_t next_slot_ = 0;
  int64_t restarts_total_ = 0, started_total_ = 0, stopped_total_ = 0;
  int64_t replaced_unhealthy_ = 0, replaced_startup_ = 0;  // by reason
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace seekserve
