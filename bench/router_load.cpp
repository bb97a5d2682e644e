// router_load: the smallest HTTP load client the router benchmark needs (Asio + Beast, one
// thread). Keeps `--connections` kept-alive connections to one URL and sends POST requests
// with a small JSON body, either paced at `--rate` requests/s (open loop: request i is due at
// i/rate; a request waits for a free connection) or, with --rate 0, as fast as the connections
// allow (closed loop). Prints one JSON line: sent, ok, errors, achieved requests/s, and latency
// percentiles in ms measured from the moment a request is written to the end of its reply.
//
//   router_load --url http://127.0.0.1:8080/v1/completions --rate 1000 --seconds 10
//               [--connections 32] [--warmup 1] [--stream 1]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>  // std::exchange, used by asio/awaitable.hpp without including it
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string target = "/v1/completions";
  double rate = 0;
  double seconds = 10;
  double warmup = 1;
  int connections = 32;
  bool stream = false;  // "stream": true in the body: the router passes the reply through
};

struct State {
  Options o;
  Clock::time_point start;
  Clock::time_point measure_from;
  Clock::time_point end;
  uint64_t next_index = 0;  // paced mode: the next request to issue
  uint64_t sent = 0, ok = 0, errors = 0;
  std::vector<double> latencies_ms;
};

net::awaitable<void> connection(State& s) {
  auto ex = co_await net::this_coro::executor;
  tcp::resolver resolver(ex);
  const auto endpoints = co_await resolver.async_resolve(s.o.host, s.o.port, net::use_awaitable);
  beast::tcp_stream stream(ex);
  boost::system::error_code ec;
  bool connected = false;
  const std::string body =
      s.o.stream ? R"({"model":"m","prompt":"Say hello","max_tokens":16,"stream":true})"
                 : R"({"model":"m","prompt":"Say hello","max_tokens":16})";
  net::steady_timer timer(ex);
  beast::flat_buffer buffer;
  for (;;) {
    Clock::time_point due = Clock::now();
    if (s.o.rate > 0) {
      due = s.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                          static_cast<double>(s.next_index++) / s.o.rate));
      if (due >= s.end) co_return;
      timer.expires_at(due);
      co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    } else if (Clock::now() >= s.end) {
      co_return;
    }
    if (!connected) {
      co_await stream.async_connect(endpoints, net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        ++s.errors;
        co_return;
      }
      stream.socket().set_option(tcp::no_delay(true));
      connected = true;
    }
    http::request<http::string_body> req{http::verb::post, s.o.target, 11};
    req.set(http::field::host, s.o.host + ":" + s.o.port);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    const Clock::time_point t0 = Clock::now();
    ++s.sent;
    co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
    http::response<http::string_body> res;
    if (!ec)
      co_await http::async_read(stream, buffer, res, net::redirect_error(net::use_awaitable, ec));
    const Clock::time_point t1 = Clock::now();
    if (ec || res.result_int() != 200) {
      ++s.errors;
      connected = false;
      stream.close();
      buffer.clear();
      continue;
    }
    if (t0 >= s.measure_from) {
      ++s.ok;
      s.latencies_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    if (!res.keep_alive()) {
      connected = false;
      stream.close();
    }
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  State s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--url") {
      std::string rest = v.substr(v.find("://") == std::string::npos ? 0 : v.find("://") + 3);
      const size_t slash = rest.find('/');
      s.o.target = slash == std::string::npos ? "/" : rest.substr(slash);
      rest = rest.substr(0, slash);
      s.o.host = rest.substr(0, rest.rfind(':'));
      s.o.port = rest.substr(rest.rfind(':') + 1);
    } else if (k == "--rate") {
      s.o.rate = std::stod(v);
    } else if (k == "--seconds") {
      s.o.seconds = std::stod(v);
    } else if (k == "--warmup") {
      s.o.warmup = std::stod(v);
    } else if (k == "--stream") {
      s.o.stream = v == "1";
    } else if (k == "--connections") {
      s.o.connections = std::stoi(v);
    } else {
      std::fprintf(stderr, "router_load: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  net::io_context ioc{1};
  s.start = Clock::now();
  s.measure_from = s.start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(s.o.warmup));
  s.end = s.measure_from +
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.o.seconds));
  for (int c = 0; c < s.o.connections; ++c) net::co_spawn(ioc, connection(s), net::detached);
  ioc.run();
  const double p50 = percentile(s.latencies_ms, 0.50);
  const double p99 = percentile(s.latencies_ms, 0.99);
  std::printf(
      "{\"rate\":%.0f,\"sent\":%llu,\"ok\":%llu,\"errors\":%llu,\"rps\":%.0f,\"p50_ms\":%.4f,"
      "\"p99_ms\":%.4f}\n",
      s.o.rate, static_cast<unsigned long long>(s.sent), static_cast<unsigned long long>(s.ok),
      static_cast<unsigned long long>(s.errors), static_cast<double>(s.ok) / s.o.seconds, p50, p99);
  return s.errors > 0 ? 1 : 0;
}
