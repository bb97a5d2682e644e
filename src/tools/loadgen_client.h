#pragma once
// An asynchronous HTTP/1.1 client for the load generator (Boost.Asio, one io_context, one
// thread). Why async rather than a thread per connection: an open-loop run fires requests at a
// rate regardless of how many are outstanding (thousands per second against a router), which a
// thread per request cannot follow on one core; one event loop holds any number of connections
// and time-stamps every byte as it arrives. Idle connections are kept (keep-alive) and reused; a
// reused connection that the server had already closed is retried once on a fresh one.
//
// Thread-safety: none; every call and callback runs on the io_context's thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/status.h"
#include "tools/loadgen_http.h"

namespace seekserve {

struct LoadgenRequest {
  std::string method = "POST";
  std::string path;  // absolute path, base path included
  std::string body;  // JSON
  double timeout_s = 300;
};

// How an exchange ended. `error` is empty when a whole HTTP response arrived (any status);
// otherwise it says what went wrong (connection refused, timed out, protocol error, cancelled).
struct LoadgenOutcome {
  int status = 0;  // 0: no status line arrived
  std::string error;
};

struct LoadgenCallbacks {
  std::function<void(int status, const HttpResponseParser& headers)> on_headers;  // optional
  std::function<void(std::string_view body)> on_body;                             // optional
  std::function<void(const LoadgenOutcome&)> on_done;                             // exactly once
};

class LoadgenClient {
 public:
  LoadgenClient(boost::asio::io_context& io, HttpUrl url, std::string api_key);
  ~LoadgenClient();
  LoadgenClient(const LoadgenClient&) = delete;
  LoadgenClient& operator=(const LoadgenClient&) = delete;

  // Resolves the host (once, blocking). Required before send().
  Status resolve();
  void send(LoadgenRequest request, LoadgenCallbacks callbacks);
  // Ends every exchange in flight with `reason` as its error.
  void abort_all(const std::string& reason);
  const HttpUrl& url() const { return url_; }
  size_t in_flight() const;
  size_t connections_opened() const { return connections_opened_; }

  struct Exchange;

 private:
  friend struct Exchange;
  struct Connection;
  void acquire(const std::shared_ptr<Exchange>& ex, bool fresh);
  void write(const std::shared_ptr<Exchange>& ex);
  void read(const std::shared_ptr<Exchange>& ex);
  void finish(const std::shared_ptr<Exchange>& ex, std::string error);
  void complete(const std::shared_ptr<Exchange>& ex);
  bool retry(const std::shared_ptr<Exchange>& ex);

  boost::asio::io_context& io_;
  HttpUrl url_;
  std::string api_key_;
  std::string host_header_;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::vector<std::shared_ptr<Exchange>> active_;
  size_t connections_opened_ = 0;
};

}  // namespace seekserve
