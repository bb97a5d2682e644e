#include "router/metric_history.h"

#include <cmath>

namespace seekserve {

namespace {

constexpr const char* kLatencyFamily = "seekserve_e2e_request_latency_seconds";

// Increase of a counter from `before` to `now`: a drop means the replica restarted.
double increase(double before, double now) {
  return now >= before ? now - before : now;
}

}  // namespace

MetricHistory::MetricHistory(ControlDuration retention) : retention_(retention) {}

void MetricHistory::add(ControlTime now, const std::vector<ReplicaScrape>& scrapes) {
  Round round;
  round.time = now;
  std::map<std::string, ReplicaCounters> seen;
  for (const ReplicaScrape& s : scrapes) {
    const PromExposition& m = s.metrics;
    ++round.replicas;
    if (std::optional<double> v = m.first("seekserve_engine_busy_ratio")) {
      round.busy_sum += *v;
      ++round.busy_n;
    }
    if (std::optional<double> v = m.first("seekserve_num_requests_waiting")) {
      round.waiting_sum += *v;
      ++round.waiting_n;
    }
    if (std::optional<double> v = m.first("seekserve_kv_cache_usage_ratio")) {
      round.kv_sum += *v;
      ++round.kv_n;
    }
    ReplicaCounters now_counters;
    for (const HistogramBucket& b : histogram_buckets(m, kLatencyFamily))
      now_counters.latency_buckets[b.upper_bound] = b.cumulative_count;
    for (const PromSample& sample : m.samples) {
      if (sample.name != "seekserve_requests_total") continue;
      now_counters.requests += sample.value;
      std::optional<std::string_view> code = sample.label("code");
      if (code && !code->empty() && code->front() == '5')
        now_counters.failed_requests += sample.value;
    }
    auto last = last_counters_.find(s.replica);
    if (last != last_counters_.end()) {
      // A replica seen before: add what it counted since. A first sighting is the baseline.
      const ReplicaCounters& before = last->second;
      bool reset = now_counters.requests < before.requests;
      for (const auto& [bound, count] : now_counters.latency_buckets) {
        auto it = before.latency_buckets.find(bound);
        double prev = (reset || it == before.latency_buckets.end()) ? 0.0 : it->second;
        totals_.latency_buckets[bound] += increase(prev, count);
      }
      totals_.requests +=
          reset ? now_counters.requests : increase(before.requests, now_counters.requests);
      totals_.failed_requests +=
          reset ? now_counters.failed_requests
                : increase(before.failed_requests, now_counters.failed_requests);
    } else {
      for (const auto& [bound, count] : now_counters.latency_buckets)
        totals_.latency_buckets.try_emplace(bound, 0.0);
    }
    seen[s.replica] = std::move(now_counters);
  }
  // A replica that did not answer keeps its last counters, so a missed scrape loses nothing.
  for (auto& [name, counters] : seen) last_counters_[name] = std::move(counters);
  round.latency_buckets = totals_.latency_buckets;
  round.requests = totals_.requests;
  round.failed_requests = totals_.failed_requests;
  rounds_.push_back(std::move(round));
  while (rounds_.size() > 2 && rounds_.front().time < now - retention_ &&
         rounds_[1].time <= now - retention_)
    rounds_.pop_front();
}

void MetricHistory::forget_replica(const std::string& replica) {
  last_counters_.erase(replica);
}

int MetricHistory::round_at(ControlTime at) const {
  for (int i = static_cast<int>(rounds_.size()) - 1; i >= 0; --i)
    if (rounds_[static_cast<size_t>(i)].time <= at) return i;
  return -1;
}

std::optional<double> MetricHistory::gauge_of(const Round& r, ControlMetric metric) const {
  switch (metric) {
    case ControlMetric::kEngineUtilization:
      if (r.busy_n > 0) return r.busy_sum / r.busy_n;
      return std::nullopt;
    case ControlMetric::kRequestQueueLength:
      if (r.waiting_n > 0) return r.waiting_sum;
      return std::nullopt;
    case ControlMetric::kKvCacheUsage:
      if (r.kv_n > 0) return r.kv_sum / r.kv_n;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::optional<double> MetricHistory::windowed(ControlMetric metric, int end,
                                              ControlTime start_time) const {
  int start = round_at(start_time);
  if (start < 0) start = 0;
  if (start >= end) return std::nullopt;
  const Round& a = rounds_[static_cast<size_t>(start)];
  const Round& b = rounds_[static_cast<size_t>(end)];
  if (metric == ControlMetric::kErrorRate) {
    double total = b.requests - a.requests;
    if (!(total > 0)) return std::nullopt;
    return (b.failed_requests - a.failed_requests) / total;
  }
  std::vector<HistogramBucket> buckets;
  for (const auto& [bound, count] : b.latency_buckets) {
    auto it = a.latency_buckets.find(bound);
    buckets.push_back({bound, count - (it == a.latency_buckets.end() ? 0.0 : it->second)});
  }
  return histogram_quantile(0.99, buckets);
}

std::optional<double> MetricHistory::value(ControlMetric metric, ControlTime at,
                                           ControlDuration window) const {
  int end = round_at(at);
  if (end < 0) return std::nullopt;
  if (control_metric_is_windowed(metric)) return windowed(metric, end, at - window);
  if (window.count() <= 0) return gauge_of(rounds_[static_cast<size_t>(end)], metric);
  double sum = 0;
  int n = 0;
  for (int i = end; i >= 0 && rounds_[static_cast<size_t>(i)].time > at - window; --i) {
    if (std::optional<double> v = gauge_of(rounds_[static_cast<size_t>(i)], metric)) {
      sum += *v;
      ++n;
    }
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

bool MetricHistory::held(ControlMetric metric, ControlTime at, ControlDuration hold,
                         ControlDuration rate_window,
                         const std::function<bool(double)>& predicate) const {
  int end = round_at(at);
  if (end < 0) return false;
  if (rounds_.front().time > at - hold) return false;  // history too short to tell
  ControlDuration per_round = control_metric_is_windowed(metric) ? rate_window : ControlDuration(0);
  for (int i = end; i >= 0; --i) {
    const Round& r = rounds_[static_cast<size_t>(i)];
    std::optional<double> v = value(metric, r.time, per_round);
    if (!v || !predicate(*v)) return false;
    if (r.time <= at - hold) break;  // the round at the start of the hold counts too
  }
  return true;
}

}  // namespace seekserve
