#pragma once
// The cluster's recent metrics, one sample per scrape round of the replicas' /metrics, from
// which alerts and the autoscaler read their values. A pure data structure: the caller scrapes
// and passes the time, so tests drive it with a synthetic clock.
//
// Gauges (utilization, queue, KV usage) are aggregated over the replicas that answered at each
// round. Counters (the latency histogram, requests by code) are accumulated from per-replica
// increases, so a restarted replica (counter reset), a new replica or a removed one neither adds
// a spike nor loses what was counted before; windowed metrics are then differences between two
// rounds, as Prometheus' increase() would compute them.
//
// Thread-safety: none; the router's control loop owns it.

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "router/control_values.h"
#include "router/prom_text.h"

namespace seekserve {

// The exposition a replica answered with at one scrape round. `replica` identifies it across
// rounds (its URL); a replica that did not answer is simply absent.
struct ReplicaScrape {
  std::string replica;
  PromExposition metrics;
};

class MetricHistory {
 public:
  // Rounds older than `retention` before the newest are dropped; keep it >= the longest window
  // any rule asks for.
  explicit MetricHistory(ControlDuration retention);

  // Records one scrape round at `now` (non-decreasing across calls).
  void add(ControlTime now, const std::vector<ReplicaScrape>& scrapes);

  // The metric at time `at` (the latest round at or before it): gauges averaged over the rounds in
  // (at - window, at] (window 0: that round alone); windowed metrics over the increase between
  // the round at or before at - window (or the oldest kept) and that round. nullopt when there
  // is nothing to compute from (no replica answered, no request in the window).
  std::optional<double> value(ControlMetric metric, ControlTime at, ControlDuration window) const;

  // True when the history reaches back to at - hold and `predicate` is true for the metric at
  // every round in [at - hold, at] (windowed metrics computed over `rate_window` at each round).
  bool held(ControlMetric metric, ControlTime at, ControlDuration hold, ControlDuration rate_window,
            const std::function<bool(double)>& predicate) const;

  // Drops the per-replica counter baseline of a replica that left the pool.
  void forget_replica(const std::string& replica);

  size_t size() const { return rounds_.size(); }
  // Replicas that answered at the latest round.
  int replicas_answering() const { return rounds_.empty() ? 0 : rounds_.back().replicas; }

 private:
  struct Round {
    ControlTime time;
    int replicas = 0;
    double busy_sum = 0, waiting_sum = 0, kv_sum = 0;
    int busy_n = 0, kv_n = 0, waiting_n = 0;
    // Accumulated since the history began.
    std::map<double, double> latency_buckets;  // upper bound -> cumulative count
    double requests = 0, failed_requests = 0;
  };
  struct ReplicaCounters {
    std::map<double, double> latency_buckets;
    double requests = 0, failed_requests = 0;
  };

  // Index of the latest round at or before `at`, or -1.
  int round_at(ControlTime at) const;
  std::optional<double> gauge_of(const Round& r, ControlMetric metric) const;
  std::optional<double> windowed(ControlMetric metric, int end, ControlTime start_time) const;

  ControlDuration retention_;
  std::deque<Round> rounds_;
  std::map<std::string, ReplicaCounters> last_counters_;
  Round totals_;  // running accumulation of counters
};

}  // namespace seekserve
