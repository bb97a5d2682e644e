#pragma once
// The router's HTTP front door (Boost.Asio + Beast, asynchronous): a reverse proxy for every
// path except its own GET /health and GET /metrics (and GET endpoints other modules register).
//
// Per request: pick a backend (BackendPool), reuse a kept-alive connection to it or open one,
// forward the request (hop-by-hop headers dropped, X-Request-Id kept or made, X-Forwarded-For
// added), then pass the response back:
//   - streaming requests (JSON body with "stream": true) and any non-JSON request: the response
//     is passed through piece by piece as the backend sends it (SSE token by token);
//   - other requests: the response is read whole before the client sees a byte, so a backend that
//     dies mid-generation is retried on another backend and the client never sees the failure.
// Retries: connect failure, reset or timeout before the response is committed, and 502/503/429
// replies, go to another backend (at most retries.max_retries more, waiting backoff × 2^(n-1),
// jittered, before each). A response whose first byte reached the client is never repeated.
// A client that disconnects closes the backend connection at once (the replica sees the
// disconnect and frees the sequence).
//
// Threads: `threads` I/O threads, each with its own io_context, acceptor (SO_REUSEPORT) and
// idle-connection pool, so a request never changes thread. Health checks run on thread 0.
// Per request the path is lean: one read kept pending per client connection serves both as the
// disconnect probe and as the read of the next request; no timer per operation (a sweep every
// 0.5 s per thread enforces deadlines and closes idle backend connections); the request is
// forwarded in place (no header copy); reply counters are atomics.
//
// Thread-safety: configure (add_*) before start(); stop() from any one thread.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "router/backend_pool.h"
#include "router/router_config.h"
#include "router/router_metrics.h"

namespace seekserve {

// A reply made by a registered GET endpoint.
struct LocalReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class RouterServer {
 public:
  RouterServer(const RouterConfig& config, BackendPool& pool, RouterMetrics& metrics);
  ~RouterServer();
  RouterServer(const RouterServer&) = delete;
  RouterServer& operator=(const RouterServer&) = delete;

  // GET `path` answered locally by `handler` (called on an I/O thread: be quick, thread-safe).
  // Before start(). /health and /metrics are taken.
  void add_get_endpoint(const std::string& path, std::function<LocalReply()> handler);

  // Binds host:port (port 0: any free port) on every I/O thread; returns the port.
  Result<int> bind();
  // Starts the I/O threads and the health checks. Returns at once.
  void start();
  // Waits for the first round of health checks (at most `timeout_s`).
  void wait_first_health_round(double timeout_s);
  // Stops accepting, lets requests in flight finish (at most `drain_timeout_s`), then stops.
  void stop(double drain_timeout_s);
  // Requests being proxied now.
  int64_t active_requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace seekserve
