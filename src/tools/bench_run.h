#pragma once
// One load run of `seekserve bench`: warm-up, then closed-loop (N clients, each sending its next
// request when the last one ends) or open-loop (arrivals at a rate, Poisson or constant,
// regardless of how many are outstanding) streaming requests, each turned into a RequestRecord
// (TTFT, ITL per text chunk, e2e, token counts from the server's usage). Single-threaded: the
// whole run is one Asio event loop on the calling thread.

#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "tools/bench_metrics.h"
#include "tools/bench_workload.h"
#include "tools/loadgen_client.h"

namespace seekserve {

struct LoadShape {
  int64_t concurrency = 0;   // closed loop when rate == 0
  double rate = 0;           // open loop: requests per second
  bool poisson = true;       // open loop arrivals: Poisson (exponential gaps) or constant
  int64_t num_requests = 0;  // measured requests (0: until duration_s)
  double duration_s = 0;     // stop sending after this long (0: until num_requests)
  int64_t warmup = 0;        // requests before the measured phase, excluded from the figures
  double timeout_s = 300;    // per request, connection to last byte
  std::string label;         // "concurrency=4"
};

struct RunResult {
  std::vector<RequestRecord> records;  // measured requests, in completion order
  std::vector<RequestRecord> warmup;
  double duration_s = 0;  // first measured send → last measured answer
  bool aborted = false;
  std::string abort_reason;
  int64_t cancelled = 0;  // in flight when the run was aborted: not in `records`
};

enum class ProgressMode { kNone, kLines, kTerminal };

// `first_index`: index of the first measured request in the workload (a sweep continues the
// numbering so every request has its own prompt). Aborts (partial figures kept) when the first
// requests all fail, or on SIGINT/SIGTERM.
RunResult run_load(boost::asio::io_context& io, LoadgenClient& client, const Workload& workload,
                   const LoadShape& shape, int64_t first_index, ProgressMode progress);

}  // namespace seekserve
