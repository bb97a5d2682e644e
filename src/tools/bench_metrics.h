#pragma once
// The figures of a `seekserve bench` run, defined as vLLM's serving benchmark defines them so
// numbers compare across tools:
//   TTFT  request sent → first chunk carrying generated text
//   ITL   time between consecutive text chunks of a request (every gap of every request)
//   TPOT  per request (e2e − TTFT) / (output_tokens − 1), for requests with > 1 output token
//   E2E   request sent → end of the answer
// Non-streaming requests (--no-stream): TTFT = E2E (the first text is the whole answer); TPOT and
// ITL are not defined and are reported as absent.
//   throughput = completed requests (tokens) / duration, duration = first send → last answer
//   goodput    = completed requests meeting every SLO given / duration
// Percentiles interpolate linearly between order statistics (numpy's default).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace seekserve {

struct RequestRecord {
  bool ok = false;
  int http_status = 0;  // 0: no HTTP answer
  std::string error;    // why it failed; "" when ok or when the server answered non-200
  std::string detail;   // a non-200 answer's error message
  int priority = 0;
  double start_s = 0;  // since the run started
  double ttft_s = -1;  // -1: no text chunk arrived
  double e2e_s = 0;
  std::vector<double> itl_s;
  int64_t prompt_tokens = 0;  // the server's usage, else the workload's count
  int64_t output_tokens = 0;  // the server's usage, else the number of text chunks
  bool usage_from_server = false;
  bool streamed = true;  // false: one JSON answer (TTFT = e2e, no TPOT or ITL)
};

struct Slo {
  std::optional<double> ttft_s, tpot_s, e2e_s;
  bool empty() const { return !ttft_s && !tpot_s && !e2e_s; }
};
// "ttft=500ms,tpot=50ms,e2e=2s" (units: us, ms, s).
Result<Slo> parse_slo(const std::string& text);

struct Distribution {
  size_t n = 0;
  double mean = 0, std = 0, min = 0, median = 0, p90 = 0, p99 = 0, max = 0;
};
Distribution distribution_of(std::vector<double> values);
// The q-th percentile (0..100) of sorted values, linear interpolation.
double percentile_sorted(const std::vector<double>& sorted, double q);

struct BenchSummary {
  std::string label;     // "concurrency=4", "rate=10/s poisson", …
  bool streamed = true;  // false when every request was non-streaming: tpot and itl are absent
  double duration_s = 0;
  int64_t completed = 0, failed = 0;
  std::map<std::string, int64_t> failures;  // reason ("HTTP 429", "timed out …") → count
  std::map<std::string, std::string> failure_examples;  // reason → a server message for it
  std::map<int, int64_t> completed_by_status;
  int64_t input_tokens = 0, output_tokens = 0;
  bool usage_from_server = true;  // every completed request carried usage
  double request_throughput = 0, input_throughput = 0, output_throughput = 0,
         total_token_throughput = 0;
  std::optional<double> goodput;      // requests/s meeting the SLO (when one is given)
  Distribution ttft, tpot, itl, e2e;  // seconds
  std::map<int, std::pair<Distribution, Distribution>> by_priority;  // priority → (ttft, e2e)
  // Warm-up (excluded above): what it sent, so a server's counters can be reconciled.
  int64_t warmup_completed = 0, warmup_failed = 0, warmup_input_tokens = 0,
          warmup_output_tokens = 0;
  bool aborted = false;
  std::string abort_reason;
  int64_t cancelled = 0;  // in flight when an abort cut them short (in no count above)
};

BenchSummary summarize(const std::vector<RequestRecord>& records, double duration_s,
                       const Slo& slo);
void add_warmup(BenchSummary& s, const std::vector<RequestRecord>& warmup);

// Every figure; times in milliseconds.
nlohmann::json summary_to_json(const BenchSummary& s);
// The table for people.
std::string format_summary(const BenchSummary& s, const Slo& slo);
// One line per sweep level.
std::string format_sweep_table(const std::vector<BenchSummary>& levels);
// An SVG chart of request throughput (x) against P50 and P99 end-to-end latency and TTFT (y),
// one point per level, labelled.
std::string sweep_svg(const std::vector<BenchSummary>& levels, const std::string& title);

}  // namespace seekserve
