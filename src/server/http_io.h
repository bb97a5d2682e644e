#pragma once
// Small pieces the two asynchronous HTTP fronts (serve's HttpServer and the router's
// RouterServer, both Boost.Asio + Beast with coroutines) share: writes tried synchronously
// first, feeding a parser what a buffer already holds, and socket deadlines enforced by a
// periodic sweep instead of a timer per operation.

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace seekserve::http_io {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

inline auto redirect(error_code& ec) {
  return net::redirect_error(net::use_awaitable, ec);
}

inline Clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// An operation that completes at once is still posted by Asio, and each post costs a pass
// through the event loop with a non-blocking epoll_wait. Writes nearly always fit the socket
// buffer, so they are tried synchronously first (the sockets are in non-blocking mode) and
// only the rest goes asynchronous.
template <class Serializer>
net::awaitable<void> write_all(beast::tcp_stream& s, Serializer& sr, error_code& ec) {
  http::write(s.socket(), sr, ec);
  if (ec == net::error::would_block || ec == net::error::try_again) {
    ec = {};
    co_await http::async_write(s, sr, redirect(ec));
  }
}

template <bool isRequest, class Body>
net::awaitable<void> write_message(beast::tcp_stream& s, http::message<isRequest, Body>& msg,
                                   error_code& ec) {
  http::serializer<isRequest, Body> sr{msg};
  co_await write_all(s, sr, ec);
}

// Raw bytes (a chunk of a reply this side frames itself), synchronously first.
inline net::awaitable<void> write_bytes(beast::tcp_stream& s, std::string_view data,
                                        error_code& ec) {
  size_t done = 0;
  while (done < data.size()) {
    const size_t n = s.socket().write_some(net::buffer(data.substr(done)), ec);
    done += n;
    if (ec == net::error::would_block || ec == net::error::try_again) {
      ec = {};
      co_await net::async_write(s, net::buffer(data.substr(done)), redirect(ec));
      co_return;
    }
    if (ec) co_return;
  }
}

// Feeds `parser` what `buffer` already holds. True when that made progress.
template <class Parser>
bool parse_buffered(Parser& parser, beast::flat_buffer& buffer, error_code& ec) {
  bool progress = false;
  while (buffer.size() > 0 && !parser.is_done()) {
    const size_t n = parser.put(buffer.data(), ec);
    buffer.consume(n);
    if (ec == http::error::need_more) ec = {};
    if (ec || n == 0) break;
    progress = true;
  }
  return progress;
}

// A socket with a deadline. No timer is armed per operation (each would be a timer-queue
// insert and, when it is the earliest, a timerfd syscall): the I/O thread's sweep, every
// kSweepInterval, closes the socket of any deadline that has passed, which ends the operation
// in progress with an error.
struct Deadline {
  tcp::socket* socket = nullptr;  // nothing watched when null
  Clock::time_point at = Clock::time_point::max();
  bool fired = false;

  void arm(tcp::socket& s, Clock::time_point when) {
    socket = &s;
    at = when;
    fired = false;
  }
  void arm_in(tcp::socket& s, double seconds) { arm(s, Clock::now() + to_duration(seconds)); }
  void disarm() {
    socket = nullptr;
    at = Clock::time_point::max();
  }
  // Closes the socket when the deadline has passed (once).
  void enforce(Clock::time_point now) {
    if (!socket || fired || now < at) return;
    fired = true;
    error_code ignored;
    socket->shutdown(tcp::socket::shutdown_both, ignored);
    socket->close(ignored);
  }
};

constexpr auto kSweepInterval = std::chrono::milliseconds(500);

// A listening socket on address:port for one I/O thread's io_context; with `share_port`, the
// port is SO_REUSEPORT so every thread has its own acceptor on it (the kernel spreads the
// connections). Null with `ec` set when it cannot listen.
inline std::unique_ptr<tcp::acceptor> open_listener(net::io_context& ioc,
                                                    const net::ip::address& address, int port,
                                                    bool share_port, error_code& ec) {
  auto acceptor = std::make_unique<tcp::acceptor>(ioc);
  const tcp::endpoint ep(address, static_cast<uint16_t>(port));
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && share_port) {
    using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
    acceptor->set_option(reuse_port(true), ec);
  }
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return nullptr;
  return acceptor;
}

// Accepts connections until the acceptor is closed (or `stopping`); each one, with TCP_NODELAY
// and in non-blocking mode (for the synchronous first tries of writes above), is handed to
// `serve(socket)`, a coroutine spawned on the acceptor's executor. A failed accept (out of file
// descriptors) is logged by `on_error` and retried after 20 ms.
template <class Serve, class OnError>
net::awaitable<void> accept_loop(tcp::acceptor& acceptor, const std::atomic<bool>& stopping,
                                 Serve serve, OnError on_error) {
  for (;;) {
    error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(redirect(ec));
    if (ec) {
      if (stopping.load() || ec == net::error::operation_aborted) co_return;
      on_error(ec);
      net::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(20));
      co_await pause.async_wait(redirect(ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    socket.non_blocking(true, ec);
    net::co_spawn(acceptor.get_executor(), serve(std::move(socket)), net::detached);
  }
}

}  // namespace seekserve::http_io
