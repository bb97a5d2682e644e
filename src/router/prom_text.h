#pragma once
// Reading the Prometheus text exposition format (0.0.4), as served by `seekserve serve` at
// /metrics: the router scrapes its replicas with it to feed alerts and the autoscaler. Strict like
// Prometheus' own scraper: one malformed line fails the whole scrape, with its line number.
// Also the few helpers the router needs on top: summing a metric over label sets, histogram
// buckets and the quantile estimate Prometheus' histogram_quantile() makes from them.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace seekserve {

struct PromSample {
  std::string name;                                         // with any _bucket/_sum/_count suffix
  std::vector<std::pair<std::string, std::string>> labels;  // in the order written
  double value = 0;
  std::optional<int64_t> timestamp_ms;

  // The value of label `name`, or nullopt.
  std::optional<std::string_view> label(std::string_view name) const;
};

struct PromExposition {
  std::vector<PromSample> samples;
  std::map<std::string, std::string> types;  // metric family -> counter/gauge/histogram/...

  // The value of the first sample named `name`, or nullopt when there is none.
  std::optional<double> first(std::string_view name) const;
  // Sum over every sample named `name` (0 when there is none).
  double sum(std::string_view name) const;
  bool has(std::string_view name) const;
};

// Parses a whole exposition. Errors say "line N: what".
Result<PromExposition> parse_prom_text(std::string_view text);

// One bucket of a histogram: observations <= upper_bound (cumulative, as exposed).
struct HistogramBucket {
  double upper_bound = 0;  // +Inf for the last
  double cumulative_count = 0;
};

// The buckets of histogram `family` (samples `family`_bucket), summed over all other labels,
// sorted by upper bound. Empty when the family is absent.
std::vector<HistogramBucket> histogram_buckets(const PromExposition& exposition,
                                               std::string_view family);

// Prometheus' histogram_quantile(q, buckets): linear interpolation inside the bucket holding the
// q-th observation (the first bucket starting at 0); the highest finite bound when that is the
// +Inf bucket. nullopt when there are no observations or no +Inf bucket.
std::optional<double> histogram_quantile(double q, const std::vector<HistogramBucket>& buckets);

// A label value escaped for the text format (\\, \", \n).
std::string prom_escape_label_value(std::string_view value);

}  // namespace seekserve
