#include "router/router_server.h"

#include <immintrin.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <list>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "server/http_io.h"

namespace seekserve {
namespace {

using namespace http_io;  // NOLINT: net, beast, http, tcp, error_code, Clock and the helpers

constexpr size_t kMaxBufferedReply = 64 << 20;  // a non-streaming reply larger than this fails
constexpr double kClientIdleTimeoutS = 300;     // a kept-alive client connection with no request

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string make_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("req-{:016x}", rng());
}

std::string error_body(const std::string& message, const char* type, const char* code) {
  nlohmann::json j = {
      {"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}}};
  return j.dump();
}

bool is_hop_by_hop(const http::fields::value_type& f) {
  switch (f.name()) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
    case http::field::content_length:
    case http::field::host:
      return true;
    default:
      return false;
  }
}

// What the proxy needs to know of a request body: whether the reply streams, and (for
// prefix_affinity) the leading text that decides the backend.
struct RequestShape {
  bool streaming = false;
  std::string affinity_key;
};

void append_text(const nlohmann::json& v, std::string& out) {
  if (v.is_string()) {
    out += v.get_ref<const std::string&>();
  } else if (v.is_array()) {  // token ids, or content parts
    for (const auto& e : v) {
      if (e.is_number_integer()) {
        out += std::to_string(e.get<int64_t>());
        out += ',';
      } else if (e.is_object() && e.contains("text")) {
        append_text(e["text"], out);
      } else {
        append_text(e, out);
      }
    }
  }
}

RequestShape inspect_body(const std::string& body, bool want_key, size_t prefix_chars) {
  RequestShape shape;
  if (!want_key && body.find("\"stream\"") == std::string::npos) return shape;
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object()) return shape;
  if (auto it = j.find("stream"); it != j.end() && it->is_boolean())
    shape.streaming = it->get<bool>();
  if (!want_key) return shape;
  std::string key;
  if (auto it = j.find("messages"); it != j.end() && it->is_array()) {
    for (const auto& m : *it) {
      if (!m.is_object()) continue;
      if (auto r = m.find("role"); r != m.end() && r->is_string()) key += r->get<std::string>();
      key += ':';
      if (auto c = m.find("content"); c != m.end()) append_text(*c, key);
      key += '\n';
      if (key.size() >= prefix_chars) break;
    }
  } else if (auto p = j.find("prompt"); p != j.end()) {
    append_text(*p, key);
  }
  if (key.size() > prefix_chars) key.resize(prefix_chars);
  shape.affinity_key = std::move(key);
  return shape;
}

// The one read kept pending on a client connection from the moment a request has been parsed:
// it is the disconnect probe while the request is proxied (a read that fails means the client
// went away, and the backend connection in use is closed at once) and, once the reply is sent,
// the read of the next request. One per connection, so a request costs no extra read syscall.
struct ClientWatch {
  explicit ClientWatch(const net::any_io_executor& ex) : signal(ex) {}
  bool running = false;
  bool gone = false;
  size_t n = 0;
  std::array<char, 4096> data{};
  beast::tcp_stream* upstream = nullptr;
  net::steady_timer signal;
};

void start_watch(beast::tcp_stream& client, const std::shared_ptr<ClientWatch>& watch) {
  watch->running = true;
  watch->n = 0;
  client.socket().async_read_some(net::buffer(watch->data), [watch](error_code ec, size_t n) {
    watch->running = false;
    watch->n = n;
    if (ec) {  // EOF, reset, or the connection's deadline closed the socket
      watch->gone = true;
      if (watch->upstream) {
        error_code ignored;
        watch->upstream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        watch->upstream->socket().close(ignored);
      }
    }
    watch->signal.cancel();
  });
}

// Waits for the pending watch read to end (the client's next bytes, or its disconnect), then
// moves what it read into `client_buffer`.
net::awaitable<void> finish_watch(ClientWatch& watch, beast::flat_buffer& client_buffer) {
  if (watch.running) {
    error_code ignored;
    watch.signal.expires_at(net::steady_timer::time_point::max());
    co_await watch.signal.async_wait(redirect(ignored));
  }
  if (watch.n > 0) {
    auto space = client_buffer.prepare(watch.n);
    std::memcpy(space.data(), watch.data.data(), watch.n);
    client_buffer.commit(watch.n);
    watch.n = 0;
  }
}

// A kept-alive connection to a backend, waiting for the next request.
struct IdleConnection {
  std::unique_ptr<beast::tcp_stream> stream;
  Clock::time_point since;
};

// One client connection: its socket, its pending read, its deadlines (the client socket's, and
// the backend connection's while a request is in flight).
struct Connection {
  Connection(tcp::socket socket, const net::any_io_executor& ex)
      : client(std::move(socket)), watch(std::make_shared<ClientWatch>(ex)) {}
  beast::tcp_stream client;
  beast::flat_buffer buffer;
  std::shared_ptr<ClientWatch> watch;
  std::string peer;  // the client's address, for X-Forwarded-For
  Deadline client_deadline;
  Deadline upstream_deadline;
};

struct Worker {
  net::io_context ioc{1};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unordered_map<BackendId, std::vector<IdleConnection>> idle;  // oldest first
  std::list<Connection*> connections;                               // for the sweep
  std::thread thread;
  // For busy_poll: requests read or answered so far, and those being answered now.
  uint64_t activity = 0;
  int in_flight = 0;
};

}  // namespace

struct RouterServer::Impl {
  Impl(const RouterConfig& c, BackendPool& p, RouterMetrics& m) : config(c), pool(p), metrics(m) {}

  RouterConfig config;
  BackendPool& pool;
  RouterMetrics& metrics;
  std::vector<std::unique_ptr<Worker>> workers;
  std::map<std::string, std::function<LocalReply()>> endpoints;
  std::atomic<int64_t> active{0};
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> health_verdicts{0};
  size_t initial_backends = 0;
  // Health-check bookkeeping, touched only on worker 0's thread.
  std::map<BackendId, Clock::time_point> next_check;
  std::set<BackendId> checking;

  Clock::time_point deadline_in(double seconds) const {
    return Clock::now() + to_duration(seconds);
  }

  // --- connections to backends ---------------------------------------------------------------

  // The most recently used idle connection. A connection the backend closed meanwhile is found
  // out when the request is written or its reply read, and the request then goes on a fresh
  // connection (see proxy()); the sweep closes idle connections before backends time them out.
  std::unique_ptr<beast::tcp_stream> take_idle(Worker& w, BackendId id) {
    auto it = w.idle.find(id);
    if (it == w.idle.end() || it->second.empty()) return nullptr;
    std::unique_ptr<beast::tcp_stream> s = std::move(it->second.back().stream);
    it->second.pop_back();
    return s;
  }

  void put_idle(Worker& w, BackendId id, std::unique_ptr<beast::tcp_stream> s) {
    if (pool.in_flight(id) < 0) {  // removed meanwhile: drop its connections
      w.idle.erase(id);
      return;
    }
    auto& list = w.idle[id];
    if (list.size() < static_cast<size_t>(config.backend_keepalive.max_idle))
      list.push_back({std::move(s), Clock::now()});
  }

  net::awaitable<std::unique_ptr<beast::tcp_stream>> connect_backend(Worker& w,
                                                                     const BackendTarget& t,
                                                                     error_code& ec) {
    auto s = std::make_unique<beast::tcp_stream>(w.ioc);
    for (const std::string& address : t.addresses) {
      const net::ip::address ip = net::ip::make_address(address, ec);
      if (ec) continue;
      s->expires_after(to_duration(config.connect_timeout_s));  // connects are rare: a timer
      co_await s->async_connect(tcp::endpoint(ip, static_cast<uint16_t>(t.url.port)), redirect(ec));
      if (!ec) {
        s->expires_never();
        error_code ignored;
        s->socket().set_option(tcp::no_delay(true), ignored);
        s->socket().non_blocking(true, ignored);  // for the synchronous first tries above
        co_return s;
      }
      s = std::make_unique<beast::tcp_stream>(w.ioc);
    }
    co_return nullptr;
  }

  // Closes what is past its deadline, and idle backend connections past their idle timeout.
  net::awaitable<void> sweep_loop(Worker& w) {
    net::steady_timer tick(w.ioc);
    const Clock::duration idle_timeout = to_duration(config.backend_keepalive.idle_timeout_s);
    while (!stopping.load()) {
      tick.expires_after(kSweepInterval);
      error_code ec;
      co_await tick.async_wait(redirect(ec));
      const Clock::time_point now = Clock::now();
      for (Connection* c : w.connections) {
        for (Deadline* d : {&c->client_deadline, &c->upstream_deadline}) d->enforce(now);
      }
      for (auto& [id, list] : w.idle) {
        size_t expired = 0;
        while (expired < list.size() && now - list[expired].since >= idle_timeout) ++expired;
        list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(expired));
      }
    }
  }

  // --- replies made here ---------------------------------------------------------------------

  net::awaitable<bool> send_local(Connection& c, unsigned version, int status,
                                  const std::string& content_type, std::string body,
                                  bool keep_alive, const std::string& request_id) {
    http::response<http::string_body> res{static_cast<http::status>(status), version};
    res.set(http::field::content_type, content_type);
    if (!request_id.empty()) res.set("X-Request-Id", request_id);
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    error_code ec;
    c.client_deadline.arm(c.client.socket(), deadline_in(config.request_timeout_s));
    co_await write_message(c.client, res, ec);
    c.client_deadline.disarm();
    co_return !ec && keep_alive;
  }

  net::awaitable<bool> send_error(Connection& c, unsigned version, int status,
                                  const std::string& message, const char* type, const char* code,
                                  bool keep_alive, const std::string& request_id) {
    metrics.count_reply(status);
    co_return co_await send_local(c, version, status, "application/json",
                                  error_body(message, type, code), keep_alive, request_id);
  }

  // --- the proxy -----------------------------------------------------------------------------

  // Proxies one request; true when the client connection may take another. `req` is forwarded
  // as it is, its hop-by-hop headers replaced.
  net::awaitable<bool> proxy(Worker& w, Connection& c, http::request<http::string_body>& req) {
    ClientWatch& watch = *c.watch;
    const unsigned version = req.version();
    const bool client_keep_alive = req.keep_alive() && !stopping.load();
    std::string request_id(req["X-Request-Id"]);
    const bool id_given = !request_id.empty();
    if (!id_given) request_id = make_request_id();
    const RequestShape shape =
        inspect_body(req.body(), pool.wants_affinity_key(),
                     static_cast<size_t>(config.prefix_affinity.prefix_chars));
    const RouteRequest route{shape.affinity_key};

    for (auto it = req.begin(); it != req.end();) it = is_hop_by_hop(*it) ? req.erase(it) : ++it;
    if (!id_given) req.set("X-Request-Id", request_id);
    if (!c.peer.empty()) {
      const beast::string_view v = req["X-Forwarded-For"];
      const std::string_view xff(v.data(), v.size());
      req.set("X-Forwarded-For", xff.empty() ? c.peer : fmt::format("{}, {}", xff, c.peer));
    }
    req.version(11);
    req.keep_alive(true);
    req.prepare_payload();

    std::vector<BackendId> tried;
    std::string last_error = "no attempt";
    std::mt19937 jitter(static_cast<uint32_t>(Clock::now().time_since_epoch().count()));
    bool keep = false;
    bool failed = false;  // every attempt failed: the client gets a 502
    for (int attempt = 0;; ++attempt) {
      if (attempt > 0) {
        metrics.count_retry();
        const double base = std::min(config.retries.backoff_s * std::pow(2.0, attempt - 1),
                                     config.retries.max_backoff_s);
        const double wait = base * (0.5 + 0.5 * std::uniform_real_distribution<>(0, 1)(jitter));
        net::steady_timer timer(w.ioc, to_duration(wait));
        error_code ignored;
        co_await timer.async_wait(redirect(ignored));
      }
      if (watch.gone) break;
      const std::shared_ptr<const BackendTarget> target = pool.acquire(route, tried);
      if (!target) {
        co_return co_await send_error(c, version, 503, "no backend available",
                                      "service_unavailable", "no_backend", client_keep_alive,
                                      request_id);
      }
      tried.push_back(target->id);
      const bool last = attempt >= config.retries.max_retries;
      req.set(http::field::host, target->host_header);
      const Clock::time_point t0 = Clock::now();

      // Books a failed attempt (the one place for connect, send and mid-reply failures). True
      // when it was the last attempt: the client then gets a 502 naming the last error.
      auto attempt_failed = [&](const error_code& ec, const char* when) -> bool {
        pool.release(target->id, AttemptOutcome::kFailure, seconds_since(t0));
        const std::string why =
            c.upstream_deadline.fired ? std::string("request timed out") : ec.message();
        last_error = fmt::format("{}: {}", target->url.text, why);
        log_warn("router: {} attempt {} on {} failed{}: {}", request_id, attempt + 1,
                 target->url.text, when, why);
        return last;
      };

      // Send and read the reply's header. A kept-alive connection that turns out dead before any
      // reply byte is not the backend's fault: one fresh connection is tried in its place.
      std::unique_ptr<beast::tcp_stream> up;
      std::optional<http::response_parser<http::buffer_body>> parser;
      beast::flat_buffer ubuf;
      error_code ec;
      for (int conn_try = 0; conn_try < 2; ++conn_try) {
        up = conn_try == 0 ? take_idle(w, target->id) : nullptr;
        const bool reused = up != nullptr;
        if (!up) up = co_await connect_backend(w, *target, ec);
        if (!up || watch.gone) break;
        watch.upstream = up.get();
        c.upstream_deadline.arm(up->socket(), t0 + to_duration(config.request_timeout_s));
        parser.emplace();
        parser->body_limit(std::numeric_limits<uint64_t>::max());  // boost::none is broken in 1.74
        ubuf.clear();
        co_await write_message(*up, req, ec);
        if (!ec) co_await http::async_read_header(*up, ubuf, *parser, redirect(ec));
        if (!ec || !reused || watch.gone || c.upstream_deadline.fired) break;
        watch.upstream = nullptr;
        c.upstream_deadline.disarm();
        up.reset();
      }
      if (!up && !ec) ec = net::error::host_unreachable;
      if (watch.gone) {
        watch.upstream = nullptr;
        c.upstream_deadline.disarm();
        pool.release(target->id, AttemptOutcome::kAbandoned, 0);
        break;
      }
      if (ec) {
        watch.upstream = nullptr;
        const bool answer = attempt_failed(ec, "");
        c.upstream_deadline.disarm();
        if (answer) {
          failed = true;
          break;
        }
        continue;
      }
      auto& msg = parser->get();
      const int status = msg.result_int();
      const AttemptOutcome outcome = status == 429   ? AttemptOutcome::kOverloaded
                                     : status >= 500 ? AttemptOutcome::kFailure
                                                     : AttemptOutcome::kSuccess;
      if ((status == 502 || status == 503 || status == 429) && !last) {
        watch.upstream = nullptr;  // the connection is dropped with its unread body
        c.upstream_deadline.disarm();
        pool.release(target->id, outcome, seconds_since(t0));
        log_info("router: {} got {} from {}, retrying", request_id, status, target->url.text);
        continue;
      }
      const bool up_keep_alive = msg.keep_alive();
      std::array<char, 16384> buf;
      if (shape.streaming) {
        // Committed: from here on the client sees this backend's reply, piece by piece.
        msg.keep_alive(client_keep_alive);
        msg.version(version);
        msg.set("X-Seekserve-Backend", target->url.text);
        msg.erase(http::field::keep_alive);
        msg.erase(http::field::proxy_connection);
        http::response_serializer<http::buffer_body> sr{msg};
        bool up_ok = true, client_ok = true;
        c.client_deadline.arm(c.client.socket(), t0 + to_duration(config.request_timeout_s));
        http::write_header(c.client.socket(), sr, ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
          ec = {};
          co_await http::async_write_header(c.client, sr, redirect(ec));
        }
        if (ec) client_ok = false;
        while (client_ok && !sr.is_done()) {
          if (!parser->is_done()) {
            msg.body().data = buf.data();
            msg.body().size = buf.size();
            co_await http::async_read_some(*up, ubuf, *parser, redirect(ec));
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
              up_ok = false;
              break;
            }
            // Nothing new (a chunk header only): an empty piece would end the chunked body.
            if (msg.body().size == buf.size() && !parser->is_done()) continue;
            msg.body().size = buf.size() - msg.body().size;
            // An empty buffer would be sent as an empty chunk, which is the end marker.
            msg.body().data = msg.body().size > 0 ? buf.data() : nullptr;
            msg.body().more = !parser->is_done();
          } else {
            msg.body().data = nullptr;
            msg.body().size = 0;
            msg.body().more = false;
          }
          co_await write_all(c.client, sr, ec);
          if (ec == http::error::need_buffer) ec = {};
          if (ec) {
            client_ok = false;
            break;
          }
        }
        watch.upstream = nullptr;
        c.upstream_deadline.disarm();
        c.client_deadline.disarm();
        if (watch.gone || !client_ok) {
          pool.release(target->id, AttemptOutcome::kAbandoned, 0);
          watch.gone = true;
          break;
        }
        if (!up_ok) {  // the backend failed mid-reply: the client sees the reply cut short
          pool.release(target->id, AttemptOutcome::kFailure, seconds_since(t0));
          metrics.count_reply(502);
          log_warn("router: {} backend {} failed mid-stream: {}", request_id, target->url.text,
                   ec.message());
          co_return false;
        }
        pool.release(target->id, outcome, seconds_since(t0));
        metrics.count_reply(status);
        if (up_keep_alive) put_idle(w, target->id, std::move(up));
        keep = client_keep_alive;
        break;
      }

      // Buffered: read the whole reply first, so a failure now can still go to another backend.
      std::string body;
      while (!parser->is_done()) {
        msg.body().data = buf.data();
        msg.body().size = buf.size();
        if (!parse_buffered(*parser, ubuf, ec) && !ec)
          co_await http::async_read(*up, ubuf, *parser, redirect(ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) break;
        body.append(buf.data(), buf.size() - msg.body().size);
        if (body.size() > kMaxBufferedReply) {
          ec = http::error::body_limit;
          break;
        }
      }
      watch.upstream = nullptr;
      if (watch.gone) {
        c.upstream_deadline.disarm();
        pool.release(target->id, AttemptOutcome::kAbandoned, 0);
        break;
      }
      if (ec) {
        const bool answer = attempt_failed(ec, " mid-reply");
        c.upstream_deadline.disarm();
        if (answer) {
          failed = true;
          break;
        }
        continue;
      }
      c.upstream_deadline.disarm();
      pool.release(target->id, outcome, seconds_since(t0));
      if (up_keep_alive) put_idle(w, target->id, std::move(up));
      http::response<http::string_body> res{std::move(msg.base()), std::move(body)};
      for (auto it = res.begin(); it != res.end();) it = is_hop_by_hop(*it) ? res.erase(it) : ++it;
      res.version(version);
      res.set("X-Seekserve-Backend", target->url.text);
      res.keep_alive(client_keep_alive);
      res.prepare_payload();
      metrics.count_reply(status);
      c.client_deadline.arm(c.client.socket(), t0 + to_duration(config.request_timeout_s));
      co_await write_message(c.client, res, ec);
      c.client_deadline.disarm();
      co_return !ec && client_keep_alive;
    }
    if (watch.gone) {
      metrics.count_client_disconnect();
      log_info("router: {} client went away; backend request closed", request_id);
      co_return false;
    }
    if (failed) {
      co_return co_await send_error(c, version, 502,
                                    "no backend could answer (last: " + last_error + ")",
                                    "bad_gateway", "backend_failed", client_keep_alive, request_id);
    }
    co_return keep;
  }

  net::awaitable<void> serve_connection(Worker& w, tcp::socket socket) {
    Connection c(std::move(socket), w.ioc.get_executor());
    w.connections.push_front(&c);
    const auto registered = w.connections.begin();
    {
      error_code ec;
      const tcp::endpoint peer = c.client.socket().remote_endpoint(ec);
      if (!ec) c.peer = peer.address().to_string();
    }
    for (;;) {
      // The next request: bytes the pending read already has, then more as needed.
      c.client_deadline.arm(c.client.socket(), deadline_in(kClientIdleTimeoutS));
      co_await finish_watch(*c.watch, c.buffer);
      if (c.watch->gone && c.buffer.size() == 0) break;
      http::request_parser<http::string_body> parser;
      parser.body_limit(static_cast<uint64_t>(config.max_body_bytes));
      error_code ec;
      parse_buffered(parser, c.buffer, ec);
      if (!ec && !parser.is_done())
        co_await http::async_read(c.client, c.buffer, parser, redirect(ec));
      c.client_deadline.disarm();
      if (ec) {
        if (ec == http::error::body_limit)
          co_await send_error(c, 11, 413, "request body too large", "invalid_request_error",
                              "body_too_large", false, "");
        else if (ec != http::error::end_of_stream && ec != net::error::eof &&
                 ec != net::error::connection_reset && ec != net::error::bad_descriptor &&
                 ec != net::error::operation_aborted)
          co_await send_error(c, 11, 400, "malformed HTTP request: " + ec.message(),
                              "invalid_request_error", "bad_request", false, "");
        break;
      }
      http::request<http::string_body> req = parser.release();
      struct InFlight {  // counted until the reply is done, however the handling ends
        Worker& w;
        explicit InFlight(Worker& worker) : w(worker) { ++w.activity, ++w.in_flight; }
        ~InFlight() { --w.in_flight, ++w.activity; }
      } in_flight(w);
      // Bytes beyond this request (pipelining) are parsed next; otherwise the read that waits
      // for the next request starts now and watches for a disconnect meanwhile.
      if (c.buffer.size() == 0 && !c.watch->gone) start_watch(c.client, c.watch);
      bool keep = false;
      const std::string_view target(req.target().data(), req.target().size());
      const std::string_view path = target.substr(0, target.find('?'));
      const bool local_keep = req.keep_alive() && !stopping.load();
      if (req.method() == http::verb::get && path == "/health") {
        const bool ok = pool.any_routable() && !stopping.load();
        const nlohmann::json j = {{"status", ok ? "ok" : "unavailable"}, {"backends", pool.size()}};
        keep = co_await send_local(c, req.version(), ok ? 200 : 503, "application/json", j.dump(),
                                   local_keep, "");
      } else if (req.method() == http::verb::get && path == "/metrics") {
        keep =
            co_await send_local(c, req.version(), 200, "text/plain; version=0.0.4; charset=utf-8",
                                metrics.render(pool), local_keep, "");
      } else if (auto it = req.method() == http::verb::get ? endpoints.find(std::string(path))
                                                           : endpoints.end();
                 it != endpoints.end()) {
        LocalReply reply = it->second();
        keep = co_await send_local(c, req.version(), reply.status, reply.content_type,
                                   std::move(reply.body), local_keep, "");
      } else {
        active.fetch_add(1);
        keep = co_await proxy(w, c, req);
        active.fetch_sub(1);
      }
      if (!keep) break;
    }
    c.client_deadline.disarm();
    c.upstream_deadline.disarm();
    w.connections.erase(registered);
    error_code ignored;
    c.client.socket().shutdown(tcp::socket::shutdown_both, ignored);
    c.client.socket().close(ignored);
    // The pending read, if any, ends with an error now; its handler holds the watch.
  }

  // --- active health checks (worker 0) -------------------------------------------------------

  net::awaitable<void> check_backend(Worker& w, std::shared_ptr<const BackendTarget> target) {
    error_code ec;
    bool ok = false;
    beast::tcp_stream s(w.ioc);
    for (const std::string& address : target->addresses) {
      const net::ip::address ip = net::ip::make_address(address, ec);
      if (ec) continue;
      s.expires_after(to_duration(config.health.timeout_s));
      co_await s.async_connect(tcp::endpoint(ip, static_cast<uint16_t>(target->url.port)),
                               redirect(ec));
      if (!ec) break;
    }
    if (!ec) {
      http::request<http::empty_body> req{http::verb::get, config.health.path, 11};
      req.set(http::field::host, fmt::format("{}:{}", target->url.host, target->url.port));
      req.keep_alive(false);
      co_await http::async_write(s, req, redirect(ec));
      if (!ec) {
        http::response_parser<http::string_body> res;
        res.body_limit(1 << 20);
        beast::flat_buffer b;
        co_await http::async_read(s, b, res, redirect(ec));
        ok = !ec && res.get().result_int() == 200;
      }
    }
    error_code ignored;
    s.socket().close(ignored);
    pool.report_health(target->id, ok);
    checking.erase(target->id);
    health_verdicts.fetch_add(1);
  }

  net::awaitable<void> health_loop(Worker& w) {
    net::steady_timer tick(w.ioc);
    while (!stopping.load()) {
      const Clock::time_point now = Clock::now();
      std::set<BackendId> known;
      for (const auto& target : pool.targets()) {
        known.insert(target->id);
        auto [it, added] = next_check.try_emplace(target->id, now);
        if (checking.contains(target->id) || it->second > now) continue;
        it->second = now + to_duration(config.health.interval_s);
        checking.insert(target->id);
        net::co_spawn(w.ioc, check_backend(w, target), net::detached);
      }
      std::erase_if(next_check, [&](const auto& kv) { return !known.contains(kv.first); });
      tick.expires_after(std::chrono::milliseconds(50));
      error_code ec;
      co_await tick.async_wait(redirect(ec));
    }
  }
};

RouterServer::RouterServer(const RouterConfig& config, BackendPool& pool, RouterMetrics& metrics)
    : impl_(std::make_unique<Impl>(config, pool, metrics)) {}

RouterServer::~RouterServer() {
  for (auto& w : impl_->workers) {
    w->ioc.stop();
    if (w->thread.joinable()) w->thread.join();
  }
}

void RouterServer::add_get_endpoint(const std::string& path, std::function<LocalReply()> handler) {
  impl_->endpoints[path] = std::move(handler);
}

Result<int> RouterServer::bind() {
  const RouterConfig& c = impl_->config;
  int threads = c.threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  error_code ec;
  const net::ip::address address = net::ip::make_address(c.host, ec);
  if (ec) return invalid_argument("host: '{}' is not an IP address to listen on", c.host);
  int port = c.port;
  for (int i = 0; i < threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->acceptor = open_listener(w->ioc, address, port, /*share_port=*/true, ec);
    if (!w->acceptor) return io_error("cannot listen on {}:{}: {}", c.host, port, ec.message());
    port = w->acceptor->local_endpoint().port();
    impl_->workers.push_back(std::move(w));
  }
  return port;
}

void RouterServer::start() {
  Impl& im = *impl_;
  im.initial_backends = im.pool.size();
  for (size_t i = 0; i < im.workers.size(); ++i) {
    Worker& w = *im.workers[i];
    net::co_spawn(
        w.ioc,
        accept_loop(
            *w.acceptor, im.stopping,
            [&im, &w](tcp::socket socket) { return im.serve_connection(w, std::move(socket)); },
            [](const error_code& ec) { log_warn("router: accept failed: {}", ec.message()); }),
        net::detached);
    net::co_spawn(w.ioc, im.sweep_loop(w), net::detached);
    if (i == 0) net::co_spawn(w.ioc, im.health_loop(w), net::detached);
    w.thread = std::thread([&w, spin = to_duration(im.config.busy_poll_s)] {
      auto guard = net::make_work_guard(w.ioc);
      if (spin <= Clock::duration::zero()) {
        w.ioc.run();
        return;
      }
      // Busy polling: an idle virtual CPU that halts is woken by the host only when it gets to
      // it (up to a scheduler tick), which is the router's P99 at low rates. The thread polls
      // while a request is in flight and for `spin` after the last one was read or answered;
      // then it sleeps in epoll. Timers (the sweep, health checks) do not extend the spin.
      Clock::time_point last_activity = Clock::now();
      uint64_t seen = w.activity;
      while (!w.ioc.stopped()) {
        if (w.in_flight > 0 || Clock::now() - last_activity < spin) {
          if (w.ioc.poll() == 0) _mm_pause();
        } else {
          w.ioc.run_one();
        }
        if (w.activity != seen) {
          seen = w.activity;
          last_activity = Clock::now();
        }
      }
    });
  }
}

void RouterServer::wait_first_health_round(double timeout_s) {
  const Clock::time_point deadline = Clock::now() + to_duration(timeout_s);
  while (impl_->health_verdicts.load() < impl_->initial_backends && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

int64_t RouterServer::active_requests() const {
  return impl_->active.load();
}

void RouterServer::stop(double drain_timeout_s) {
  Impl& im = *impl_;
  im.stopping.store(true);
  for (auto& w : im.workers) {
    Worker* wp = w.get();
    net::post(wp->ioc, [wp] {
      error_code ignored;
      wp->acceptor->close(ignored);
    });
  }
  const Clock::time_point deadline = Clock::now() + to_duration(drain_timeout_s);
  while (im.active.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (im.active.load() > 0)
    log_warn("router: {} requests still in flight after the drain timeout", im.active.load());
  for (auto& w : im.workers) {
    w->ioc.stop();
    if (w->thread.joinable()) w->thread.join();
  }
}

}  // namespace seekserve
