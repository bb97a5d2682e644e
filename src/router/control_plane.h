#pragma once
// The router's control loop: every evaluation interval it scrapes /metrics of the backends in
// the pool (not draining), records the round in the metric history, evaluates the alert rules
// (and delivers due webhook notifications), and lets the autoscaler decide; decisions act on the
// replica supervisor (add_instance, remove_instance) or on the replicas' run-time scheduler limits
// (scale_batch). `seekserve route` builds one from the `replicas:`, `scaling_policy:` and
// `alerts:` sections, serves alerts_json() at GET /alerts and appends render_metrics() to its
// /metrics.
//
// Thread-safety: start/stop from one thread; alerts_json and render_metrics from any thread.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/status.h"
#include "router/alerts.h"
#include "router/autoscaler.h"
#include "router/metric_history.h"
#include "router/replica_supervisor.h"

namespace seekserve {

struct ControlConfig {
  std::optional<ReplicaConfig> replicas;
  std::optional<ScalingPolicy> scaling;
  AlertsConfig alerts;
  ControlDuration interval{std::chrono::seconds(5)};  // scrape + evaluation period
  ControlDuration scrape_timeout{std::chrono::seconds(2)};
};

// Reads the three sections (each may be undefined). Errors name the field.
Result<ControlConfig> parse_control_config(const YAML::Node& replicas,
                                           const YAML::Node& scaling_policy,
                                           const YAML::Node& alerts);

class ControlPlane {
 public:
  // `scrape_targets` returns the base URLs to scrape this round (backends in the pool that are
  // not draining). `pool` is where supervised replicas are added and removed.
  ControlPlane(ControlConfig config, BackendPoolControl& pool,
               std::function<std::vector<std::string>()> scrape_targets);
  ~ControlPlane();  // stop()

  // Starts the supervisor (if any) and the control loop.
  void start();
  // Stops the loop, then the supervisor (its replicas drain themselves on SIGTERM).
  void stop();

  // GET /alerts body.
  std::string alerts_json() const;
  // Lines for the router's /metrics.
  void render_metrics(std::string& out) const;

  // Runs one round at `now` (the loop calls it; exposed for tests).
  void run_round(ControlTime now);

  ReplicaSupervisor* supervisor() { return supervisor_.get(); }

 private:
  void loop();

  ControlConfig config_;
  std::function<std::vector<std::string>()> scrape_targets_;
  std::unique_ptr<ReplicaSupervisor> supervisor_;
  MetricHistory history_;
  AlertEvaluator alerts_;
  std::optional<Autoscaler> autoscaler_;
  std::vector<std::string> last_targets_;

  mutable std::mutex mutex_;  // guards the published texts and the stop flag
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string alerts_json_;
  std::string metrics_text_;
  int64_t scrape_failures_ = 0;
  int64_t webhook_failures_ = 0;
  int64_t webhook_deliveries_ = 0;
  int64_t scale_batch_ok_ = 0, scale_batch_failed_ = 0;
  std::thread thread_;
};

}  // namespace seekserve
