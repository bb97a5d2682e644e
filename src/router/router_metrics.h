#pragma once
// The router's Prometheus metrics (text format 0.0.4, checked with `promtool check metrics`):
//   seekserve_router_requests_total{code}                 replies to clients by HTTP status
//   seekserve_router_retries_total                        attempts beyond a request's first
//   seekserve_router_client_disconnects_total             clients gone before the reply ended
//   seekserve_router_replicas / _healthy_replicas         backends known / routable
//   seekserve_router_backend_in_flight{backend}           requests open on a backend
//   seekserve_router_backend_requests_total{backend,outcome}   attempts: ok|overloaded|failed
//   seekserve_router_backend_latency_seconds{backend}     histogram, attempt start -> reply end
//   seekserve_router_backend_healthy / _ejected / _draining{backend}   0 or 1
//   seekserve_router_backend_ejections_total{backend}
//   seekserve_router_backend_health_check_failures_total{backend}
// plus whatever text registered sources append (other modules' metrics).
//
// Thread-safety: every method may be called from any thread; add_source before serving. The
// counters the proxy bumps per request are relaxed atomics (no lock on the request path).

#include <array>
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "router/backend_pool.h"

namespace seekserve {

class RouterMetrics {
 public:
  void count_reply(int http_status) {
    replies_by_code_[http_status >= 0 && http_status < kCodes ? http_status : 0].fetch_add(
        1, std::memory_order_relaxed);
  }
  void count_retry() { retries_.fetch_add(1, std::memory_order_relaxed); }
  void count_client_disconnect() { disconnects_.fetch_add(1, std::memory_order_relaxed); }

  // `source` appends complete exposition lines (# HELP, # TYPE, samples, each ending in '\n')
  // for metric names of its own.
  void add_source(std::function<void(std::string& out)> source);

  std::string render(const BackendPool& pool) const;

 private:
  static constexpr int kCodes = 1000;  // HTTP statuses are 3 digits; anything else counts as 0
  mutable std::mutex mutex_;           // sources_
  std::array<std::atomic<uint64_t>, kCodes> replies_by_code_{};
  std::atomic<uint64_t> retries_{0};
  std::atomic<uint64_t> disconnects_{0};
  std::vector<std::function<void(std::string&)>> sources_;
};

}  // namespace seekserve
