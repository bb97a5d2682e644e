#pragma once
// The router's set of backends and everything known about each: weight, health (active
// checks), ejection (passive, a circuit breaker), draining, requests in flight, latency and
// counters. The proxy asks it for a backend per request (acquire/release); the health checker
// reports to it; other modules (replica supervisor, autoscaler) add, drain and remove backends
// at run time through the public API below.
//
// Thread-safety: every method may be called from any thread (one mutex; nothing under it does
// I/O or calls out, except that on_idle callbacks run after the lock is dropped).
//
// Backend lifecycle, as the control modules drive it:
//   id = pool.add_backend("http://127.0.0.1:8004", 1);   // health-checked at once; routable
//                                                          // after its first good check
//   pool.begin_drain(id, [] { /* in flight reached 0 */ });  // no new requests from now on
//   ... pool.in_flight(id) == 0 (or the callback ran) ...
//   pool.remove_backend(id);                               // forgotten; its metrics go too
//
// Routing rule: the candidates are backends that are healthy, not ejected and not draining. If
// there are none, every backend that is not draining is a candidate (a panic mode, as in Envoy:
// better to try than to refuse everything while checks catch up).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "router/balancing_policy.h"
#include "router/router_config.h"

namespace seekserve {

// Upper bounds (seconds) of the per-backend latency histogram; +Inf is implied.
inline constexpr double kBackendLatencyBuckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                    1,     2.5,  5,     10,   30,  60,   120};
inline constexpr size_t kBackendLatencyBucketCount =
    sizeof(kBackendLatencyBuckets) / sizeof(double) + 1;

// Where the proxy connects: numeric addresses resolved once when the backend is added.
struct BackendTarget {
  BackendId id = 0;
  BackendUrl url;
  std::vector<std::string> addresses;  // numeric IPs, tried in order
  std::string host_header;             // "host:port" ("[v6]:port"), sent as Host
};

// How one attempt on a backend ended, as the passive health check sees it.
enum class AttemptOutcome {
  kSuccess,     // a response that is not a 5xx (4xx included: the client's fault)
  kOverloaded,  // 429: neither success nor failure
  kFailure,     // connect error, reset, timeout, or a 5xx
  kAbandoned,   // the client went away; says nothing about the backend
};

struct BackendSnapshot {
  BackendId id = 0;
  std::string url;
  int weight = 1;
  bool healthy = false;  // active checks: last verdict (false until the first good check)
  bool ejected = false;  // passive: in its ejection time now
  bool draining = false;
  int64_t in_flight = 0;
  double latency_ewma_s = 0;  // recent request latency (exponential average, alpha 0.2), 0 = none
  // Counters since the backend was added.
  uint64_t requests_ok = 0;  // attempts with a response below 500 (not 429)
  uint64_t requests_overloaded = 0;
  uint64_t requests_failed = 0;  // connect errors, resets, timeouts, 5xx
  uint64_t ejections = 0;
  uint64_t health_checks_failed = 0;
  std::array<uint64_t, kBackendLatencyBucketCount> latency_buckets{};  // per bucket, not cumulative
  uint64_t latency_count = 0;
  double latency_sum_s = 0;
};

class BackendPool {
 public:
  using Clock = std::chrono::steady_clock;

  BackendPool(const RouterConfig& config, std::unique_ptr<BalancingPolicy> policy);

  // --- control API ---------------------------------------------------------------------------
  // Adds a backend (URL as in the config, weight >= 1) and returns its id (ids are never reused).
  // Bad URL or weight: kInvalidArgument.
  Result<BackendId> add_backend(const std::string& url, int weight);
  // Stops routing new requests to `id`. `on_idle` (optional) runs once, on some thread, when its
  // in-flight count is 0 (at once if it already is). False if `id` is unknown.
  bool begin_drain(BackendId id, std::function<void()> on_idle = {});
  // Forgets `id` (requests still in flight finish; their release is ignored). False if unknown.
  bool remove_backend(BackendId id);
  // Requests in flight on `id`; -1 if unknown.
  int64_t in_flight(BackendId id) const;
  std::vector<BackendSnapshot> snapshot() const;
  size_t size() const;
  // True when some backend is healthy, not ejected and not draining.
  bool any_routable() const;
  const char* policy_name() const { return policy_->name(); }
  bool wants_affinity_key() const { return policy_->wants_affinity_key(); }

  // --- proxy API -----------------------------------------------------------------------------
  // Picks a backend for a request (skipping `exclude` when another candidate exists) and counts
  // it in flight. nullopt when there is no backend that is not draining.
  std::shared_ptr<const BackendTarget> acquire(const RouteRequest& request,
                                               std::span<const BackendId> exclude);
  // Ends an attempt begun by acquire(): in flight - 1, counters, passive ejection.
  void release(BackendId id, AttemptOutcome outcome, double latency_s);

  // --- health checker API --------------------------------------------------------------------
  std::vector<std::shared_ptr<const BackendTarget>> targets() const;
  void report_health(BackendId id, bool ok);

 private:
  struct Backend {
    std::shared_ptr<const BackendTarget> target;
    BackendSnapshot stats;
    bool checked = false;  // had at least one health verdict
    int consecutive_ok = 0;
    int consecutive_bad_checks = 0;
    int consecutive_failures = 0;  // passive
    Clock::time_point ejected_until{};
    std::function<void()> on_idle;
  };

  bool routable(Backend& b, Clock::time_point now);
  void update_ejection(Backend& b, Clock::time_point now);

  const RouterConfig config_;
  mutable std::mutex mutex_;
  std::unique_ptr<BalancingPolicy> policy_;
  std::map<BackendId, Backend> backends_;  // ordered by id
  BackendId next_id_ = 1;
  std::vector<BackendLoad> scratch_loads_;
  std::vector<BackendId> scratch_ids_;
};

}  // namespace seekserve
