#include "router/backend_pool.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include <arpa/inet.h>

#include "core/log.h"

namespace seekserve {
namespace {

// Numeric addresses of `host` (IPv4 first), or an error.
Result<std::vector<std::string>> resolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) return invalid_argument("host '{}' does not resolve ({})", host, gai_strerror(rc));
  std::vector<std::string> v4, v6;
  for (addrinfo* a = found; a; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, text, sizeof text);
      if (std::find(v4.begin(), v4.end(), text) == v4.end()) v4.emplace_back(text);
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, text,
                sizeof text);
      if (std::find(v6.begin(), v6.end(), text) == v6.end()) v6.emplace_back(text);
    }
  }
  freeaddrinfo(found);
  v4.insert(v4.end(), v6.begin(), v6.end());
  if (v4.empty()) return invalid_argument("host '{}' has no IP address", host);
  return v4;
}

}  // namespace

BackendPool::BackendPool(const RouterConfig& config, std::unique_ptr<BalancingPolicy> policy)
    : config_(config), policy_(std::move(policy)) {}

Result<BackendId> BackendPool::add_backend(const std::string& url_text, int weight) {
  if (weight < 1) return invalid_argument("weight: {} must be 1 or more", weight);
  SEEK_ASSIGN_OR_RETURN(BackendUrl url, parse_backend_url(url_text, "url"));
  SEEK_ASSIGN_OR_RETURN(std::vector<std::string> addresses, resolve(url.host));
  std::lock_guard lock(mutex_);
  const BackendId id = next_id_++;
  auto target = std::make_shared<BackendTarget>();
  target->id = id;
  target->url = url;
  target->addresses = std::move(addresses);
  target->host_header = url.host.find(':') == std::string::npos
                            ? fmt::format("{}:{}", url.host, url.port)
                            : fmt::format("[{}]:{}", url.host, url.port);
  Backend b;
  b.target = target;
  b.stats.id = id;
  b.stats.url = url.text;
  b.stats.weight = weight;
  backends_.emplace(id, std::move(b));
  log_info("router: backend {} added: {} (weight {})", id, url.text, weight);
  return id;
}

bool BackendPool::begin_drain(BackendId id, std::function<void()> on_idle) {
  std::function<void()> run_now;
  {
    std::lock_guard lock(mutex_);
    auto it = backends_.find(id);
    if (it == backends_.end()) return false;
    it->second.stats.draining = true;
    if (it->second.stats.in_flight == 0)
      run_now = std::move(on_idle);
    else
      it->second.on_idle = std::move(on_idle);
    log_info("router: backend {} ({}) draining, {} in flight", id, it->second.stats.url,
             it->second.stats.in_flight);
  }
  if (run_now) run_now();
  return true;
}

bool BackendPool::remove_backend(BackendId id) {
  std::lock_guard lock(mutex_);
  auto it = backends_.find(id);
  if (it == backends_.end()) return false;
  log_info("router: backend {} ({}) removed", id, it->second.stats.url);
  backends_.erase(it);
  return true;
}

int64_t BackendPool::in_flight(BackendId id) const {
  std::lock_guard lock(mutex_);
  auto it = backends_.find(id);
  return it == backends_.end() ? -1 : it->second.stats.in_flight;
}

std::vector<BackendSnapshot> BackendPool::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<BackendSnapshot> out;
  out.reserve(backends_.size());
  const Clock::time_point now = Clock::now();
  for (const auto& [id, b] : backends_) {
    out.push_back(b.stats);
    out.back().ejected = b.stats.ejected && now < b.ejected_until;
  }
  return out;
}

size_t BackendPool::size() const {
  std::lock_guard lock(mutex_);
  return backends_.size();
}

bool BackendPool::any_routable() const {
  std::lock_guard lock(mutex_);
  const Clock::time_point now = Clock::now();
  for (const auto& [id, b] : backends_) {
    if (b.stats.healthy && !b.stats.draining && !(b.stats.ejected && now < b.ejected_until))
      return true;
  }
  return false;
}

void BackendPool::update_ejection(Backend& b, Clock::time_point now) {
  if (b.stats.ejected && now >= b.ejected_until) {
    b.stats.ejected = false;
    b.consecutive_failures = 0;
    log_info("router: backend {} ({}) back from ejection", b.stats.id, b.stats.url);
  }
}

bool BackendPool::routable(Backend& b, Clock::time_point now) {
  update_ejection(b, now);
  return b.stats.healthy && !b.stats.ejected && !b.stats.draining;
}

std::shared_ptr<const BackendTarget> BackendPool::acquire(const RouteRequest& request,
                                                          std::span<const BackendId> exclude) {
  std::lock_guard lock(mutex_);
  const Clock::time_point now = Clock::now();
  auto& loads = scratch_loads_;
  auto collect = [&](bool panic, bool skip_excluded) {
    loads.clear();
    for (auto& [id, b] : backends_) {
      if (panic ? b.stats.draining : !routable(b, now)) continue;
      if (skip_excluded && std::find(exclude.begin(), exclude.end(), id) != exclude.end()) continue;
      loads.push_back({id, b.stats.weight, b.stats.in_flight});
    }
  };
  collect(false, true);
  if (loads.empty() && !exclude.empty()) collect(false, false);
  if (loads.empty()) collect(true, true);
  if (loads.empty() && !exclude.empty()) collect(true, false);
  if (loads.empty()) return nullptr;
  const size_t pick = policy_->choose(loads, request);
  Backend& b = backends_.at(loads[pick].id);
  ++b.stats.in_flight;
  return b.target;
}

void BackendPool::release(BackendId id, AttemptOutcome outcome, double latency_s) {
  std::function<void()> idle;
  {
    std::lock_guard lock(mutex_);
    auto it = backends_.find(id);
    if (it == backends_.end()) return;
    Backend& b = it->second;
    BackendSnapshot& s = b.stats;
    --s.in_flight;
    switch (outcome) {
      case AttemptOutcome::kSuccess:
        ++s.requests_ok;
        b.consecutive_failures = 0;
        break;
      case AttemptOutcome::kOverloaded:
        ++s.requests_overloaded;
        break;
      case AttemptOutcome::kFailure:
        ++s.requests_failed;
        ++b.consecutive_failures;
        break;
      case AttemptOutcome::kAbandoned:
        break;
    }
    if (outcome == AttemptOutcome::kSuccess || outcome == AttemptOutcome::kOverloaded) {
      s.latency_ewma_s =
          s.latency_count == 0 ? latency_s : 0.8 * s.latency_ewma_s + 0.2 * latency_s;
      size_t bucket = 0;
      while (bucket < kBackendLatencyBucketCount - 1 && latency_s > kBackendLatencyBuckets[bucket])
        ++bucket;
      ++s.latency_buckets[bucket];
      ++s.latency_count;
      s.latency_sum_s += latency_s;
    }
    const int limit = config_.ejection.consecutive_failures;
    const Clock::time_point now = Clock::now();
    update_ejection(b, now);
    if (limit > 0 && outcome == AttemptOutcome::kFailure && !s.ejected &&
        b.consecutive_failures >= limit) {
      ++s.ejections;
      const double seconds =
          std::min(config_.ejection.base_time_s * static_cast<double>(s.ejections),
                   config_.ejection.max_time_s);
      s.ejected = true;
      b.ejected_until =
          now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
      log_warn("router: backend {} ({}) ejected for {:.1f}s after {} consecutive failures", id,
               s.url, seconds, b.consecutive_failures);
    }
    if (s.in_flight == 0 && s.draining && b.on_idle) idle = std::move(b.on_idle);
  }
  if (idle) idle();
}

std::vector<std::shared_ptr<const BackendTarget>> BackendPool::targets() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<const BackendTarget>> out;
  for (const auto& [id, b] : backends_) out.push_back(b.target);
  return out;
}

void BackendPool::report_health(BackendId id, bool ok) {
  std::lock_guard lock(mutex_);
  auto it = backends_.find(id);
  if (it == backends_.end()) return;
  Backend& b = it->second;
  if (ok) {
    b.consecutive_bad_checks = 0;
    ++b.consecutive_ok;
    // The first verdict admits a new backend at once; after a failure it takes the threshold.
    if (!b.stats.healthy && (!b.checked || b.consecutive_ok >= config_.health.healthy_threshold)) {
      b.stats.healthy = true;
      log_info("router: backend {} ({}) healthy", id, b.stats.url);
    }
  } else {
    b.consecutive_ok = 0;
    ++b.consecutive_bad_checks;
    ++b.stats.health_checks_failed;
    if (b.stats.healthy && b.consecutive_bad_checks >= config_.health.unhealthy_threshold) {
      b.stats.healthy = false;
      log_warn("router: backend {} ({}) unhealthy after {} failed health checks", id, b.stats.url,
               b.consecutive_bad_checks);
    } else if (!b.checked) {
      log_warn("router: backend {} ({}) does not answer its health check yet", id, b.stats.url);
    }
  }
  b.checked = true;
}

}  // namespace seekserve
