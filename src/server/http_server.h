#pragma once
// The HTTP front of `seekserve serve` (Boost.Asio + Beast, asynchronous): OpenAI routes, SSE
// streaming, /health, /metrics, /admin/scheduler, API keys, request ids, admission answers
// (429 + Retry-After) and draining.
//
// Threads: `http_threads` I/O threads (default 2), each with its own io_context and acceptor
// (SO_REUSEPORT); a connection stays on one thread, as a coroutine. A handler never touches the
// model: it parses and tokenizes, submits to the Engine, and relays the events of the request's
// channel, which wakes the connection's coroutine through a post to its thread (no thread blocks
// per request, so idle keep-alive connections cost memory only).
// Per request: one read kept pending on the connection from the moment a request is parsed is
// both the disconnect probe (a reset cancels the request in the engine at once; a half-close is
// not a disconnect, the reply still goes out) and the read of the next request. A full reply is
// written in one piece (header and body, Content-Length) when it is complete; a stream's
// header goes out with its first tokens, then each engine step's output as one chunk.
// Limits: a request's header 64 KiB (431), body max_body_bytes (413), 30 s to send a request,
// 5 s idle between requests, 10 s for a reply write the client does not read, 1000 requests per
// connection.

#include <atomic>
#include <memory>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "server/api_keys.h"
#include "server/metrics.h"
#include "server/openai_api.h"

namespace seekserve {

constexpr int kDefaultHttpThreads = 2;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;   // 0 = any free port
  ApiKeys api_keys;  // none = no authentication
  int64_t max_body_bytes = 8 << 20;
  int http_threads = 0;       // I/O threads; 0 = kDefaultHttpThreads
  double health_stale_s = 5;  // /health fails when the engine loop is silent this long
};

class HttpServer {
 public:
  HttpServer(Engine& engine, ApiContext api, HttpOptions options);
  ~HttpServer();

  // Binds the socket; returns the port (useful with port 0).
  Result<int> bind();
  // Serves until stop() (on this thread and http_threads - 1 more); returns then.
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
