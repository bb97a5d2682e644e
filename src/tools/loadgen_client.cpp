#include "tools/loadgen_client.h"

#include <array>

#include <fmt/format.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace seekserve {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

struct LoadgenClient::Connection {
  explicit Connection(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
};

struct LoadgenClient::Exchange {
  explicit Exchange(asio::io_context& io) : timer(io) {}
  LoadgenRequest request;
  LoadgenCallbacks callbacks;
  std::string wire;  // the serialised request
  std::unique_ptr<Connection> conn;
  bool reused = false, retried = false, finished = false, headers_seen = false;
  HttpResponseParser parser;
  asio::steady_timer timer;
  std::array<char, 16384> buffer{};
  size_t active_index = 0;
};

LoadgenClient::LoadgenClient(asio::io_context& io, HttpUrl url, std::string api_key)
    : io_(io), url_(std::move(url)), api_key_(std::move(api_key)) {
  host_header_ = url_.port == 80 ? url_.host : fmt::format("{}:{}", url_.host, url_.port);
}

LoadgenClient::~LoadgenClient() = default;

Status LoadgenClient::resolve() {
  tcp::resolver resolver(io_);
  error_code ec;
  auto results = resolver.resolve(url_.host, std::to_string(url_.port), ec);
  if (ec) return io_error("cannot resolve host '{}': {}", url_.host, ec.message());
  endpoints_.clear();
  for (const auto& r : results) endpoints_.push_back(r.endpoint());
  if (endpoints_.empty()) return io_error("host '{}' has no address", url_.host);
  return Status::ok_status();
}

size_t LoadgenClient::in_flight() const {
  return active_.size();
}

void LoadgenClient::send(LoadgenRequest request, LoadgenCallbacks callbacks) {
  auto ex = std::make_shared<Exchange>(io_);
  ex->request = std::move(request);
  ex->callbacks = std::move(callbacks);
  std::string& w = ex->wire;
  w.reserve(ex->request.body.size() + 256);
  w += ex->request.method;
  w += ' ';
  w += ex->request.path;
  w += " HTTP/1.1\r\nHost: ";
  w += host_header_;
  w += "\r\nAccept: text/event-stream, application/json\r\nUser-Agent: seekserve-bench\r\n";
  if (!api_key_.empty()) w += "Authorization: Bearer " + api_key_ + "\r\n";
  if (ex->request.method == "POST") {
    w += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n",
                     ex->request.body.size());
  }
  w += "\r\n";
  w += ex->request.body;

  ex->active_index = active_.size();
  active_.push_back(ex);
  ex->timer.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(
      std::chrono::duration<double>(ex->request.timeout_s)));
  ex->timer.async_wait([this, ex](const error_code& ec) {
    if (ec || ex->finished) return;
    finish(ex, fmt::format("timed out after {}s ({})", ex->request.timeout_s,
                           ex->parser.any_bytes() ? "the answer stopped midway"
                                                  : "no answer from the server"));
  });
  acquire(ex, /*fresh=*/false);
}

void LoadgenClient::acquire(const std::shared_ptr<Exchange>& ex, bool fresh) {
  if (!fresh && !idle_.empty()) {
    ex->conn = std::move(idle_.back());
    idle_.pop_back();
    ex->reused = true;
    write(ex);
    return;
  }
  ex->conn = std::make_unique<Connection>(io_);
  ex->reused = false;
  ++connections_opened_;
  asio::async_connect(
      ex->conn->socket, endpoints_, [this, ex](const error_code& ec, const tcp::endpoint&) {
        if (ex->finished) return;
        if (ec) {
          finish(ex,
                 fmt::format("cannot connect to {}:{}: {}", url_.host, url_.port, ec.message()));
          return;
        }
        error_code ignored;
        ex->conn->socket.set_option(tcp::no_delay(true), ignored);
        write(ex);
      });
}

bool LoadgenClient::retry(const std::shared_ptr<Exchange>& ex) {
  // Only a reused keep-alive connection that gave nothing back: the server closed it while
  // idle, so the request never reached it.
  if (!ex->reused || ex->retried || ex->parser.any_bytes()) return false;
  ex->retried = true;
  error_code ignored;
  ex->conn->socket.close(ignored);
  acquire(ex, /*fresh=*/true);
  return true;
}

void LoadgenClient::write(const std::shared_ptr<Exchange>& ex) {
  asio::async_write(ex->conn->socket, asio::buffer(ex->wire),
                    [this, ex](const error_code& ec, size_t) {
                      if (ex->finished) return;
                      if (ec) {
                        if (!retry(ex)) finish(ex, "sending the request: " + ec.message());
                        return;
                      }
                      read(ex);
                    });
}

void LoadgenClient::read(const std::shared_ptr<Exchange>& ex) {
  ex->conn->socket.async_read_some(
      asio::buffer(ex->buffer), [this, ex](const error_code& ec, size_t n) {
        if (ex->finished) return;
        if (ec) {
          if (ec == asio::error::eof && ex->parser.feed_eof()) {
            error_code ignored;
            ex->conn->socket.close(ignored);
            complete(ex);
            return;
          }
          if (retry(ex)) return;
          finish(ex, ec == asio::error::eof ? ex->parser.error()
                                            : "reading the answer: " + ec.message());
          return;
        }
        auto headers = [&ex] {
          if (ex->headers_seen || !ex->parser.headers_done()) return;
          ex->headers_seen = true;
          if (ex->callbacks.on_headers) ex->callbacks.on_headers(ex->parser.status(), ex->parser);
        };
        const bool ok = ex->parser.feed(std::string_view(ex->buffer.data(), n),
                                        [&ex, &headers](std::string_view body) {
                                          headers();
                                          if (ex->callbacks.on_body && !ex->finished)
                                            ex->callbacks.on_body(body);
                                        });
        if (!ok) {
          finish(ex, "bad HTTP answer: " + ex->parser.error());
          return;
        }
        if (ex->finished) return;  // a callback ended it
        headers();
        if (ex->parser.done()) {
          complete(ex);
          return;
        }
        read(ex);
      });
}

void LoadgenClient::complete(const std::shared_ptr<Exchange>& ex) {
  if (ex->finished) return;
  ex->finished = true;
  ex->timer.cancel();
  if (ex->parser.keep_alive() && ex->conn->socket.is_open()) {
    idle_.push_back(std::move(ex->conn));
  }
  active_[ex->active_index] = active_.back();
  active_[ex->active_index]->active_index = ex->active_index;
  active_.pop_back();
  LoadgenOutcome out;
  out.status = ex->parser.status();
  if (ex->callbacks.on_done) ex->callbacks.on_done(out);
}

void LoadgenClient::finish(const std::shared_ptr<Exchange>& ex, std::string error) {
  if (ex->finished) return;
  ex->finished = true;
  ex->timer.cancel();
  if (ex->conn) {
    error_code ignored;
    ex->conn->socket.close(ignored);
  }
  active_[ex->active_index] = active_.back();
  active_[ex->active_index]->active_index = ex->active_index;
  active_.pop_back();
  LoadgenOutcome out;
  out.status = ex->parser.status();
  out.error = std::move(error);
  if (ex->callbacks.on_done) ex->callbacks.on_done(out);
}

void LoadgenClient::abort_all(const std::string& reason) {
  while (!active_.empty()) finish(active_.back(), reason);
  idle_.clear();
}

}  // namespace seekserve
