#include "router/prom_text.h"

#include <cmath>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

// A scrape shaped like `seekserve serve`'s /metrics (src/server/metrics.cpp).
const char* kServerLike =
    R"(# HELP seekserve_e2e_request_latency_seconds Time from receiving a request to its last token.
# TYPE seekserve_e2e_request_latency_seconds histogram
seekserve_e2e_request_latency_seconds_bucket{le="0.1"} 2
seekserve_e2e_request_latency_seconds_bucket{le="0.5"} 6
seekserve_e2e_request_latency_seconds_bucket{le="1"} 10
seekserve_e2e_request_latency_seconds_bucket{le="+Inf"} 10
seekserve_e2e_request_latency_seconds_sum 4.2
seekserve_e2e_request_latency_seconds_count 10
# HELP seekserve_engine_busy_ratio Share of recent wall time the engine spent in steps.
# TYPE seekserve_engine_busy_ratio gauge
seekserve_engine_busy_ratio 0.875
# TYPE seekserve_num_requests_waiting gauge
seekserve_num_requests_waiting 3
# TYPE seekserve_requests_total counter
seekserve_requests_total{code="200"} 97
seekserve_requests_total{code="500"} 2
seekserve_requests_total{code="503"} 1
)";

TEST(PromText, ParsesServerExposition) {
  Result<PromExposition> r = parse_prom_text(kServerLike);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->types.at("seekserve_e2e_request_latency_seconds"), "histogram");
  EXPECT_EQ(r->types.at("seekserve_engine_busy_ratio"), "gauge");
  EXPECT_DOUBLE_EQ(*r->first("seekserve_engine_busy_ratio"), 0.875);
  EXPECT_DOUBLE_EQ(*r->first("seekserve_num_requests_waiting"), 3);
  EXPECT_DOUBLE_EQ(r->sum("seekserve_requests_total"), 100);
  EXPECT_FALSE(r->first("seekserve_kv_cache_usage_ratio").has_value());
  int errors = 0;
  for (const PromSample& s : r->samples)
    if (s.name == "seekserve_requests_total" && s.label("code")->front() == '5')
      errors += static_cast<int>(s.value);
  EXPECT_EQ(errors, 3);
}

TEST(PromText, HistogramBucketsAndQuantile) {
  Result<PromExposition> r = parse_prom_text(kServerLike);
  ASSERT_TRUE(r.ok());
  std::vector<HistogramBucket> b = histogram_buckets(*r, "seekserve_e2e_request_latency_seconds");
  ASSERT_EQ(b.size(), 4u);
  EXPECT_DOUBLE_EQ(b[0].upper_bound, 0.1);
  EXPECT_TRUE(std::isinf(b[3].upper_bound));
  // Rank 5 of 10 lies in (0.1, 0.5] holding observations 3..6: 0.1 + 0.4 * 3/4.
  EXPECT_NEAR(*histogram_quantile(0.5, b), 0.4, 1e-12);
  // Rank 9.9 lies in (0.5, 1] holding 7..10: 0.5 + 0.5 * 3.9/4.
  EXPECT_NEAR(*histogram_quantile(0.99, b), 0.9875, 1e-12);
  // Rank 1 in the first bucket interpolates from 0.
  EXPECT_NEAR(*histogram_quantile(0.1, b), 0.05, 1e-12);
}

TEST(PromText, QuantileInInfBucketIsHighestFiniteBound) {
  std::vector<HistogramBucket> b = {{0.5, 1}, {1.0, 1}, {INFINITY, 100}};
  EXPECT_DOUBLE_EQ(*histogram_quantile(0.99, b), 1.0);
}

TEST(PromText, QuantileWithoutObservationsOrInfBucket) {
  EXPECT_FALSE(histogram_quantile(0.99, {{0.5, 0}, {INFINITY, 0}}).has_value());
  EXPECT_FALSE(histogram_quantile(0.99, {{0.5, 1}, {1.0, 2}}).has_value());
  EXPECT_FALSE(histogram_quantile(0.99, {}).has_value());
}

TEST(PromText, BucketsSumOverOtherLabels) {
  Result<PromExposition> r = parse_prom_text(
      "h_bucket{backend=\"a\",le=\"1\"} 1\n"
      "h_bucket{backend=\"b\",le=\"1\"} 2\n"
      "h_bucket{backend=\"a\",le=\"+Inf\"} 3\n"
      "h_bucket{backend=\"b\",le=\"+Inf\"} 4\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<HistogramBucket> b = histogram_buckets(*r, "h");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_DOUBLE_EQ(b[0].cumulative_count, 3);
  EXPECT_DOUBLE_EQ(b[1].cumulative_count, 7);
}

TEST(PromText, LabelsEscapesTimestampsAndSpecialValues) {
  Result<PromExposition> r = parse_prom_text(
      "m{a=\"x\\\"y\",b=\"line\\nbreak\",c=\"back\\\\slash\",} 1.5e3 1700000000000\r\n"
      "  m2\t-Inf\n"
      "m3 NaN\n"
      "m4 +Inf\n"
      "# a plain comment\n"
      "\n"
      "m5{} 7\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->samples.size(), 5u);
  const PromSample& m = r->samples[0];
  EXPECT_EQ(*m.label("a"), "x\"y");
  EXPECT_EQ(*m.label("b"), "line\nbreak");
  EXPECT_EQ(*m.label("c"), "back\\slash");
  EXPECT_DOUBLE_EQ(m.value, 1500);
  EXPECT_EQ(*m.timestamp_ms, 1700000000000);
  EXPECT_TRUE(std::isinf(r->samples[1].value) && r->samples[1].value < 0);
  EXPECT_TRUE(std::isnan(r->samples[2].value));
  EXPECT_TRUE(std::isinf(r->samples[3].value) && r->samples[3].value > 0);
  EXPECT_DOUBLE_EQ(r->samples[4].value, 7);
  EXPECT_EQ(prom_escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(PromText, MalformedInputNamesTheLine) {
  struct Case {
    const char* text;
    const char* expect;  // a substring of the error
  };
  const Case cases[] = {
      {"ok 1\nbad\n", "line 2: missing value"},
      {"m{a=\"1\" 2\n", "line 1: expected ',' or '}'"},
      {"m{a=1} 2\n", "line 1: expected '\"'"},
      {"m{a=\"open} 2\n", "unterminated"},
      {"m{a=\"x\\q\"} 2\n", "bad escape"},
      {"m{a=\"1\",a=\"2\"} 2\n", "duplicate label 'a'"},
      {"m{1a=\"1\"} 2\n", "expected a label name"},
      {"m abc\n", "bad value 'abc'"},
      {"m 1 2 3\n", "trailing text"},
      {"m 1 1.5\n", "bad timestamp"},
      {"m 0x10\n", "bad value"},
      {"m infinity\n", "bad value"},
      {"9m 1\n", "expected a metric name"},
      {"m{a=\"1\"}x 1\n", "unexpected 'x'"},
      {"# TYPE m gauge\n# TYPE m counter\n", "line 2: second TYPE"},
      {"# TYPE m weird\n", "unknown metric type 'weird'"},
      {"# HELP\n", "expected a metric name after # HELP"},
  };
  for (const Case& c : cases) {
    Result<PromExposition> r = parse_prom_text(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.text << " -> " << r.status().message();
  }
}

TEST(PromText, EmptyInputIsAnEmptyScrape) {
  Result<PromExposition> r = parse_prom_text("");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->samples.empty());
}

}  // namespace
}  // namespace seekserve
