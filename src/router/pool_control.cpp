#include "router/pool_control.h"

#include "core/log.h"

namespace seekserve {

int64_t RouterPoolControl::add_backend(const std::string& url, int weight) {
  Result<BackendId> id = pool_.add_backend(url, weight);
  if (!id.ok()) {
    log_error("replica {}: not added to the pool: {}", url, id.status().message());
    return -1;
  }
  return static_cast<int64_t>(*id);
}

void RouterPoolControl::begin_drain(int64_t id) {
  if (id >= 0) pool_.begin_drain(static_cast<BackendId>(id));
}

int64_t RouterPoolControl::in_flight(int64_t id) {
  // An id the pool does not know (refused, already removed) has nothing in flight.
  if (id < 0) return 0;
  int64_t n = pool_.in_flight(static_cast<BackendId>(id));
  return n < 0 ? 0 : n;
}

void RouterPoolControl::remove_backend(int64_t id) {
  if (id >= 0) pool_.remove_backend(static_cast<BackendId>(id));
}

bool RouterPoolControl::health_failing(int64_t id) {
  // Unhealthy with a failed check on record: marked unhealthy by the checks, or failing its
  // first ones. Unhealthy with none is a backend not checked yet.
  for (const BackendSnapshot& b : pool_.snapshot())
    if (static_cast<int64_t>(b.id) == id) return !b.healthy && b.health_checks_failed > 0;
  return false;
}

std::vector<std::string> scrape_targets(const BackendPool& pool) {
  std::vector<std::string> out;
  for (const BackendSnapshot& b : pool.snapshot())
    if (!b.draining) out.push_back(b.url);
  return out;
}

}  // namespace seekserve
