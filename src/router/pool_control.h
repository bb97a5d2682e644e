#pragma once
// The router's BackendPool seen through the interface the control plane needs
// (BackendPoolControl, src/router/replica_supervisor.h), and the URLs the control loop scrapes.
//
// Thread-safety: as BackendPool (every method from any thread).

#include <string>
#include <vector>

#include "router/backend_pool.h"
#include "router/replica_supervisor.h"

namespace seekserve {

class RouterPoolControl : public BackendPoolControl {
 public:
  explicit RouterPoolControl(BackendPool& pool) : pool_(pool) {}
  int64_t add_backend(const std::string& url, int weight) override;  // -1 when refused
  void begin_drain(int64_t id) override;
  int64_t in_flight(int64_t id) override;
  void remove_backend(int64_t id) override;
  bool health_failing(int64_t id) override;

 private:
  BackendPool& pool_;
};

// Base URLs of the backends in `pool` that are not draining.
std::vector<std::string> scrape_targets(const BackendPool& pool);

}  // namespace seekserve
