#include "router/metric_history.h"

#include <gtest/gtest.h>

namespace seekserve {
namespace {

using std::chrono::seconds;

// A replica's /metrics as `seekserve serve` writes them, with the given state.
struct Replica {
  double busy = 0, waiting = 0, kv = 0;
  double fast = 0, slow = 0;  // requests that took 0.1 s and 2 s (cumulative)
  double ok = 0, failed = 0;  // requests by code (cumulative)

  PromExposition scrape() const {
    std::string t = fmt::format(
        "seekserve_engine_busy_ratio {}\nseekserve_num_requests_waiting {}\n"
        "seekserve_kv_cache_usage_ratio {}\n"
        "seekserve_e2e_request_latency_seconds_bucket{{le=\"0.25\"}} {}\n"
        "seekserve_e2e_request_latency_seconds_bucket{{le=\"1\"}} {}\n"
        "seekserve_e2e_request_latency_seconds_bucket{{le=\"2.5\"}} {}\n"
        "seekserve_e2e_request_latency_seconds_bucket{{le=\"+Inf\"}} {}\n"
        "seekserve_requests_total{{code=\"200\"}} {}\nseekserve_requests_total{{code=\"500\"}} "
        "{}\n",
        busy, waiting, kv, fast, fast, fast + slow, fast + slow, ok, failed);
    Result<PromExposition> r = parse_prom_text(t);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return *r;
  }
};

ControlTime t0() {
  return ControlTime(seconds(1'800'000'000));
}

TEST(MetricHistoryControl, GaugesAggregateOverReplicas) {
  MetricHistory h(seconds(600));
  Replica a{.busy = 0.9, .waiting = 4, .kv = 0.5};
  Replica b{.busy = 0.5, .waiting = 6, .kv = 0.1};
  h.add(t0(), {{"a", a.scrape()}, {"b", b.scrape()}});
  EXPECT_NEAR(*h.value(ControlMetric::kEngineUtilization, t0(), seconds(0)), 0.7, 1e-12);
  EXPECT_NEAR(*h.value(ControlMetric::kRequestQueueLength, t0(), seconds(0)), 10, 1e-12);
  EXPECT_NEAR(*h.value(ControlMetric::kKvCacheUsage, t0(), seconds(0)), 0.3, 1e-12);
  EXPECT_EQ(h.replicas_answering(), 2);
  // Nobody answered: no value, not zero.
  h.add(t0() + seconds(5), {});
  EXPECT_FALSE(h.value(ControlMetric::kEngineUtilization, t0() + seconds(5), seconds(0)));
  // Averaged over a window that holds both rounds: only the round with a value counts.
  EXPECT_NEAR(*h.value(ControlMetric::kEngineUtilization, t0() + seconds(5), seconds(10)), 0.7,
              1e-12);
}

TEST(MetricHistoryControl, WindowedLatencyAndErrorsFromIncreases) {
  MetricHistory h(seconds(600));
  Replica a{.fast = 1000, .ok = 1000};  // history before the router started: the baseline
  h.add(t0(), {{"a", a.scrape()}});
  EXPECT_FALSE(h.value(ControlMetric::kP99Latency, t0(), seconds(60)));
  a.fast += 90, a.slow += 10, a.ok += 97, a.failed += 3;
  h.add(t0() + seconds(30), {{"a", a.scrape()}});
  // 10% of the window's requests took 2 s: P99 in the (1, 2.5] bucket; 3% failed.
  double p99 = *h.value(ControlMetric::kP99Latency, t0() + seconds(30), seconds(60));
  EXPECT_GT(p99, 1.0);
  EXPECT_LE(p99, 2.5);
  EXPECT_NEAR(*h.value(ControlMetric::kErrorRate, t0() + seconds(30), seconds(60)), 0.03, 1e-12);
  // A later quiet window has no requests: no value.
  h.add(t0() + seconds(100), {{"a", a.scrape()}});
  EXPECT_FALSE(h.value(ControlMetric::kErrorRate, t0() + seconds(100), seconds(60)));
  // Only fast requests in the next window: P99 back under 0.25 s.
  a.fast += 100, a.ok += 100;
  h.add(t0() + seconds(130), {{"a", a.scrape()}});
  EXPECT_LE(*h.value(ControlMetric::kP99Latency, t0() + seconds(130), seconds(30)), 0.25);
  EXPECT_NEAR(*h.value(ControlMetric::kErrorRate, t0() + seconds(130), seconds(30)), 0.0, 1e-12);
}

TEST(MetricHistoryControl, ReplicaRestartIsNotANegativeIncrease) {
  MetricHistory h(seconds(600));
  Replica a{.fast = 50, .ok = 50};
  h.add(t0(), {{"a", a.scrape()}});
  Replica restarted{.fast = 0, .slow = 0, .ok = 4, .failed = 1};  // counters reset, then 5 requests
  h.add(t0() + seconds(10), {{"a", restarted.scrape()}});
  EXPECT_NEAR(*h.value(ControlMetric::kErrorRate, t0() + seconds(10), seconds(60)), 0.2, 1e-12);
}

TEST(MetricHistoryControl, HeldNeedsTheWholeHold) {
  MetricHistory h(seconds(600));
  auto below = [](double v) { return v < 0.3; };
  for (int i = 0; i <= 6; ++i) {
    Replica a{.busy = 0.1};
    h.add(t0() + seconds(10 * i), {{"a", a.scrape()}});
  }
  // 60 s of history, all below: held for 60 s but not for 61 s.
  EXPECT_TRUE(h.held(ControlMetric::kEngineUtilization, t0() + seconds(60), seconds(60),
                     seconds(60), below));
  EXPECT_FALSE(h.held(ControlMetric::kEngineUtilization, t0() + seconds(60), seconds(61),
                      seconds(60), below));
  Replica busy{.busy = 0.9};
  h.add(t0() + seconds(70), {{"a", busy.scrape()}});
  Replica idle{.busy = 0.1};
  h.add(t0() + seconds(80), {{"a", idle.scrape()}});
  // The busy round at 70 s was the value until 80 s: it breaks any hold reaching before 80 s.
  EXPECT_FALSE(h.held(ControlMetric::kEngineUtilization, t0() + seconds(80), seconds(30),
                      seconds(60), below));
  EXPECT_FALSE(h.held(ControlMetric::kEngineUtilization, t0() + seconds(80), seconds(5),
                      seconds(60), below));
  EXPECT_TRUE(h.held(ControlMetric::kEngineUtilization, t0() + seconds(80), seconds(0), seconds(60),
                     below));
}

TEST(MetricHistoryControl, RetentionDropsOldRounds) {
  MetricHistory h(seconds(60));
  for (int i = 0; i < 100; ++i) h.add(t0() + seconds(10 * i), {});
  EXPECT_LE(h.size(), 8u);
}

TEST(ControlValues, DurationsAndThresholds) {
  EXPECT_EQ(parse_duration("300s")->count(), 300000);
  EXPECT_EQ(parse_duration("5m")->count(), 300000);
  EXPECT_EQ(parse_duration("1m30s")->count(), 90000);
  EXPECT_EQ(parse_duration("500ms")->count(), 500);
  EXPECT_EQ(parse_duration("1h")->count(), 3600000);
  EXPECT_EQ(parse_duration("2.5")->count(), 2500);
  for (const char* bad : {"", "5x", "s", "-5s", "5m1h", "1.2.3s", "5 m"})
    EXPECT_FALSE(parse_duration(bad).ok()) << bad;
  EXPECT_DOUBLE_EQ(*parse_threshold("85%", ControlMetric::kEngineUtilization), 0.85);
  EXPECT_DOUBLE_EQ(*parse_threshold("0.85", ControlMetric::kEngineUtilization), 0.85);
  EXPECT_DOUBLE_EQ(*parse_threshold("1%", ControlMetric::kErrorRate), 0.01);
  EXPECT_DOUBLE_EQ(*parse_threshold("500ms", ControlMetric::kP99Latency), 0.5);
  EXPECT_DOUBLE_EQ(*parse_threshold("2s", ControlMetric::kP99Latency), 2.0);
  EXPECT_DOUBLE_EQ(*parse_threshold("50", ControlMetric::kRequestQueueLength), 50);
  EXPECT_NE(
      parse_threshold("-5%", ControlMetric::kEngineUtilization).status().message().find("negative"),
      std::string::npos);
  EXPECT_FALSE(parse_threshold("85", ControlMetric::kEngineUtilization).ok());
  EXPECT_FALSE(parse_threshold("150%", ControlMetric::kKvCacheUsage).ok());
  EXPECT_FALSE(parse_threshold("fast", ControlMetric::kP99Latency).ok());
  EXPECT_FALSE(parse_threshold("-1", ControlMetric::kRequestQueueLength).ok());
  EXPECT_EQ(*parse_control_metric("gpu_utilization"), ControlMetric::kEngineUtilization);
  EXPECT_FALSE(parse_control_metric("gpu_temperature").ok());
  EXPECT_EQ(format_duration(std::chrono::milliseconds(90500)), "1m30s500ms");
  EXPECT_EQ(format_rfc3339(ControlTime(std::chrono::milliseconds(1'800'000'000'123))),
            "2027-01-15T08:00:00.123Z");
}

}  // namespace
}  // namespace seekserve
