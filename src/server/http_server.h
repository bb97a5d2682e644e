#pragma once
// The HTTP front of `seekserve serve` (cpp-httplib underneath): OpenAI routes, SSE streaming,
// /health, /metrics, API keys, request ids, admission answers (429 + Retry-After) and draining.
//
// Threads: cpp-httplib runs one thread per connection from a fixed pool sized from
// max_num_seqs + max_queue (+ a few for /health and /metrics), so every admitted request has a
// thread and the pool never queues behind a full engine. A handler never touches the model: it
// submits to the Engine and relays events from the request's channel. Replies, streaming or
// not, go through a chunked content provider, so a client that went away is noticed while its
// request runs (a write fails) and the request is cancelled in the engine.

#include <atomic>
#include <memory>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "server/api_keys.h"
#include "server/metrics.h"
#include "server/openai_api.h"

namespace seekserve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;   // 0 = any free port
  ApiKeys api_keys;  // none = no authentication
  int64_t max_body_bytes = 8 << 20;
  int http_threads = 0;       // 0 = max_num_seqs + max_queue + 8
  double health_stale_s = 5;  // /health fails when the engine loop is silent this long
};

class HttpServer {
 public:
  HttpServer(Engine& engine, ApiContext api, HttpOptions options, int64_t max_num_seqs,
             int64_t max_queue);
  ~HttpServer();

  // Binds the socket; returns the port (useful with port 0).
  Result<int> bind();
  // Serves until stop(); returns then.
  void run();
  // Readiness off: /health answers 503, new generation requests 503; running ones continue.
  void begin_drain() { draining_ = true; }
  bool draining() const { return draining_; }
  // Generation requests being answered now.
  int in_flight() const { return in_flight_.load(); }
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
};

}  // namespace seekserve
