#include "router/control_plane.h"

#include <future>

#include <httplib.h>

#include "core/log.h"

namespace seekserve {

namespace {

// GET {url}/metrics, parsed; an error when it does not answer 200 with a valid exposition.
Result<PromExposition> scrape(const std::string& url, ControlDuration timeout) {
  httplib::Client client(url);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
  client.set_connection_timeout(secs.count(), usecs.count());
  client.set_read_timeout(secs.count(), usecs.count());
  httplib::Result r = client.Get("/metrics");
  if (!r) return io_error("scrape {}/metrics: {}", url, httplib::to_string(r.error()));
  if (r->status != 200) return io_error("scrape {}/metrics: HTTP {}", url, r->status);
  Result<PromExposition> m = parse_prom_text(r->body);
  if (!m.ok()) return m.status().with_context(fmt::format("scrape {}/metrics", url));
  return m;
}

ControlDuration longest_window(const ControlConfig& c) {
  ControlDuration w{std::chrono::minutes(1)};
  for (const AlertRule& r : c.alerts.rules) w = std::max(w, r.window + r.for_duration);
  if (c.scaling) {
    w = std::max(w, c.scaling->rate_window);
    for (const ScalingRule& r : c.scaling->rules)
      w = std::max(w, r.window + c.scaling->rate_window);
  }
  return w + std::chrono::minutes(1);
}

}  // namespace

Result<ControlConfig> parse_control_config(const YAML::Node& replicas,
                                           const YAML::Node& scaling_policy,
                                           const YAML::Node& alerts) {
  ControlConfig c;
  if (replicas.IsDefined() && !replicas.IsNull()) {
    SEEK_ASSIGN_OR_RETURN(c.replicas, parse_replica_config(replicas));
  }
  SEEK_ASSIGN_OR_RETURN(c.alerts, parse_alerts_config(alerts));
  c.interval = c.alerts.evaluation_interval;
  if (scaling_policy.IsDefined() && !scaling_policy.IsNull()) {
    std::optional<int64_t> min, max;
    if (c.replicas) min = c.replicas->min, max = c.replicas->max;
    SEEK_ASSIGN_OR_RETURN(c.scaling, parse_scaling_policy(scaling_policy, min, max));
    c.interval = std::min(c.interval, c.scaling->evaluation_interval);
  }
  c.scrape_timeout = std::min(c.scrape_timeout, c.interval);
  return c;
}

ControlPlane::ControlPlane(ControlConfig config, BackendPoolControl& pool,
                           std::function<std::vector<std::string>()> scrape_targets)
    : config_(std::move(config)),
      scrape_targets_(std::move(scrape_targets)),
      history_(longest_window(config_)),
      alerts_(config_.alerts) {
  if (config_.replicas) {
    supervisor_ = std::make_unique<ReplicaSupervisor>(*config_.replicas, pool);
    if (config_.scaling) supervisor_->set_target(config_.scaling->min_replicas);
  }
  if (config_.scaling) autoscaler_.emplace(*config_.scaling);
  alerts_json_ = alerts_.to_json().dump();
  std::string text = alerts_.render_metrics();
  if (autoscaler_) text += autoscaler_->render_metrics();
  metrics_text_ = text;
}

ControlPlane::~ControlPlane() {
  stop();
}

void ControlPlane::start() {
  if (supervisor_) supervisor_->start();
  thread_ = std::thread([this] { loop(); });
}

void ControlPlane::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (supervisor_) supervisor_->stop();
}

void ControlPlane::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    lock.unlock();
    run_round(ControlClock::now());
    lock.lock();
    next += config_.interval;
    auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;  // a slow round does not cause a burst of catch-up rounds
    wake_.wait_until(lock, next, [this] { return stopping_; });
  }
}

void ControlPlane::run_round(ControlTime now) {
  std::vector<std::string> targets = scrape_targets_();
  std::vector<std::future<Result<PromExposition>>> pending;
  for (const std::string& url : targets)
    pending.push_back(std::async(std::launch::async, scrape, url, config_.scrape_timeout));
  std::vector<ReplicaScrape> scrapes;
  int64_t failures = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    Result<PromExposition> m = pending[i].get();
    if (m.ok()) {
      scrapes.push_back({targets[i], std::move(*m)});
    } else {
      ++failures;
      log_debug("control: {}", m.status().message());
    }
  }
  for (const std::string& gone : last_targets_)
    if (std::find(targets.begin(), targets.end(), gone) == targets.end())
      history_.forget_replica(gone);
  last_targets_ = targets;
  history_.add(now, scrapes);

  alerts_.evaluate(history_, now);
  bool delivered = false, failed = false;
  if (!config_.alerts.webhook_url.empty()) {
    nlohmann::json body = alerts_.webhook_body(now);
    if (!body.empty()) {
      Status s = post_json(config_.alerts.webhook_url, body, std::chrono::seconds(5));
      if (s.ok()) {
        alerts_.mark_webhook_sent(now);
        delivered = true;
      } else {
        failed = true;
        log_warn("alert webhook: {}", s.message());
      }
    }
  }

  int64_t scale_batch_ok = 0, scale_batch_failed = 0;
  if (autoscaler_) {
    int64_t replicas = supervisor_ ? supervisor_->target() : static_cast<int64_t>(targets.size());
    for (const ScalingDecision& d : autoscaler_->evaluate(history_, now, replicas)) {
      if (d.action == ScaleAction::kScaleBatch) {
        for (const std::string& url : targets) {
          Result<std::pair<int64_t, int64_t>> r =
              raise_max_num_seqs(url, d.step, d.max_num_seqs, autoscaler_->policy().admin_api_key);
          (r.ok() ? scale_batch_ok : scale_batch_failed) += 1;
          if (!r.ok())
            log_warn("scale_batch failed on {}: {}", url, r.status().message());
          else if (r->first != r->second)
            log_info("scale_batch: {} max_num_seqs {} -> {}", url, r->first, r->second);
          else
            log_debug("scale_batch: {} already at max_num_seqs {} (ceiling {})", url, r->first,
                      d.max_num_seqs);
        }
      } else if (supervisor_) {
        supervisor_->set_target(d.replicas_to);
      }
    }
  }

  std::string text = alerts_.render_metrics();
  if (autoscaler_) text += autoscaler_->render_metrics();
  std::string json = alerts_.to_json().dump();
  std::lock_guard<std::mutex> lock(mutex_);
  scrape_failures_ += failures;
  webhook_deliveries_ += delivered;
  webhook_failures_ += failed;
  scale_batch_ok_ += scale_batch_ok;
  scale_batch_failed_ += scale_batch_failed;
  text += fmt::format(
      "# HELP seekserve_router_scrape_failures_total Replica /metrics scrapes that failed.\n"
      "# TYPE seekserve_router_scrape_failures_total counter\n"
      "seekserve_router_scrape_failures_total {}\n"
      "# HELP seekserve_router_alert_webhook_deliveries_total Alert webhook POSTs by result.\n"
      "# TYPE seekserve_router_alert_webhook_deliveries_total counter\n"
      "seekserve_router_alert_webhook_deliveries_total{{result=\"ok\"}} {}\n"
      "seekserve_router_alert_webhook_deliveries_total{{result=\"failed\"}} {}\n"
      "# HELP seekserve_router_scale_batch_calls_total scale_batch calls to a replica's "
      "/admin/scheduler, by result (failed: unreachable, refused, e.g. a missing admin key).\n"
      "# TYPE seekserve_router_scale_batch_calls_total counter\n"
      "seekserve_router_scale_batch_calls_total{{result=\"ok\"}} {}\n"
      "seekserve_router_scale_batch_calls_total{{result=\"failed\"}} {}\n",
      scrape_failures_, webhook_deliveries_, webhook_failures_, scale_batch_ok_,
      scale_batch_failed_);
  metrics_text_ = std::move(text);
  alerts_json_ = std::move(json);
}

std::string ControlPlane::alerts_json() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return alerts_json_;
}

void ControlPlane::render_metrics(std::string& out) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out += metrics_text_;
  }
  if (supervisor_) out += supervisor_->render_metrics();  // live: it changes between rounds
}

}  // namespace seekserve
