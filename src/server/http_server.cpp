#include "server/http_server.h"

// GCC 12 reports Asio's awaitable frames (its own operator new/delete pair) as mismatched
// when a large coroutine is inlined: a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <sys/socket.h>

#include <array>
#include <cctype>
#include <chrono>
#include <cstring>
#include <list>
#include <random>
#include <string_view>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/log.h"
#include "server/http_io.h"
#include "server/reasoning_splitter.h"

namespace seekserve {

using nlohmann::json;

namespace {

using namespace http_io;  // NOLINT: net, beast, http, tcp, error_code, Clock and the helpers

constexpr double kFirstRequestTimeoutS = 30;     // a new connection's first request, all of it
constexpr double kKeepAliveIdleS = 5;            // a kept-alive connection waiting for a request
constexpr double kReadTimeoutS = 30;             // the rest of a request once its header is in
constexpr double kWriteTimeoutS = 10;            // a reply the client does not read
constexpr int kMaxRequestsPerConnection = 1000;  // nginx's keepalive_requests
constexpr auto kProbeInterval = std::chrono::milliseconds(1000);  // silence before a probe write
constexpr size_t kMaxHeaderBytes = 64 << 10;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

using Request = http::request<http::string_body>;

std::string header(const Request& req, http::field f) {
  const beast::string_view v = req[f];
  return std::string(v.data(), v.size());
}

// X-Request-Id when the client (or the router) sent a sane one (1..128 characters of
// A-Z a-z 0-9 - _ . : + / =, enough for UUIDs, ULIDs and base64), else a new one.
std::string request_id_of(const Request& req) {
  const beast::string_view v = req["X-Request-Id"];
  std::string id(v.data(), v.size());
  bool ok = !id.empty() && id.size() <= 128;
  for (char c : id)
    ok =
        ok && (std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-_.:+/=", c) != nullptr);
  return ok ? id : random_hex();
}

// Wakes a connection's coroutine from other threads (the engine's events) and from handlers on
// its own thread (the pending read ending). `signalled` holds a wake-up that came while the
// coroutine was not waiting.
struct Wake {
  explicit Wake(const net::any_io_executor& ex) : timer(ex) {}
  net::steady_timer timer;
  bool signalled = false;
  void signal() {
    signalled = true;
    timer.cancel();
  }
};

// Waits until signalled or `timeout` passes.
net::awaitable<void> wait_for_wake(Wake& w, Clock::duration timeout) {
  if (!w.signalled) {
    w.timer.expires_after(timeout);
    error_code ignored;
    co_await w.timer.async_wait(redirect(ignored));
  }
  w.signalled = false;
}

// The one read kept pending on a connection from the moment a request has been parsed. While
// the request runs it is the disconnect probe: an error (reset) means the client is gone; the
// end of its stream means it shut down its sending side, which an HTTP/1.1 client may do and
// still read the reply (half-close), and which also looks like a full close until the server
// writes (the client's system then answers with a reset). Bytes it reads are the next request.
struct ClientWatch {
  tcp::socket* socket = nullptr;  // null once the connection is closed
  bool running = false;
  bool eof = false;   // the client shut down its sending side (or closed)
  bool gone = false;  // reset or error: nobody reads the reply
  size_t n = 0;
  std::array<char, 4096> data{};
};

struct Connection {
  Connection(tcp::socket socket, const net::any_io_executor& ex)
      : stream(std::move(socket)),
        watch(std::make_shared<ClientWatch>()),
        wake(std::make_shared<Wake>(ex)) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::shared_ptr<ClientWatch> watch;
  std::shared_ptr<Wake> wake;
  Deadline deadline;
};

void start_watch(Connection& c) {
  c.watch->socket = &c.stream.socket();
  c.watch->running = true;
  c.watch->n = 0;
  c.stream.socket().async_read_some(
      net::buffer(c.watch->data), [watch = c.watch, wake = c.wake](error_code ec, size_t n) {
        watch->running = false;
        watch->n = n;
        if (ec == net::error::eof) {
          watch->eof = true;
          // From now on only an error on the socket (the reset a closed client's system sends
          // when written to) tells that nobody reads.
          if (watch->socket)
            watch->socket->async_wait(tcp::socket::wait_error, [watch, wake](error_code) {
              watch->gone = true;
              wake->signal();
            });
        } else if (ec) {
          watch->gone = true;
        }
        wake->signal();
      });
}

// Waits for the pending read to end (the client's next bytes, or its end), then moves what it
// read into the connection's buffer.
net::awaitable<void> finish_watch(Connection& c) {
  while (c.watch->running) co_await wait_for_wake(*c.wake, std::chrono::hours(1));
  if (c.watch->n > 0) {
    auto space = c.buffer.prepare(c.watch->n);
    std::memcpy(space.data(), c.watch->data.data(), c.watch->n);
    c.buffer.commit(c.watch->n);
    c.watch->n = 0;
  }
}

std::string chunk(std::string_view data) {
  std::string out = fmt::format("{:x}\r\n", data.size());
  out.append(data);
  out += "\r\n";
  return out;
}

// What one choice of a reply has produced so far.
struct ChoiceState {
  ReasoningSplitter splitter{false};
  std::string content, reasoning;
  std::string finish_reason;
  std::vector<TokenLogprobs> logprobs;  // non-streaming: all; streaming: not yet sent
  int64_t text_bytes = 0;               // completions: bytes of text (text_offset)
  int64_t logprob_bytes = 0;            // completions: bytes of the tokens already reported
  bool finished = false;
};

// State of one generation reply, shared by the content provider and its releaser.
struct Generation {
  Engine* engine = nullptr;
  ServerMetrics* metrics = nullptr;
  const Tokenizer* tokenizer = nullptr;
  std::shared_ptr<RequestChannel> channel;
  ApiRequest req;
  std::string rid;          // request id (logs)
  std::string response_id;  // "chatcmpl-…" / "cmpl-…"
  std::string model;
  int64_t created = 0;
  EngineClock::time_point arrival, last_token;
  Clock::time_point last_write;
  std::vector<EngineEvent> backlog;  // events not yet turned into output
  std::vector<ChoiceState> choices;
  Usage usage;
  int n_finished = 0;
  bool got_token = false, sent_role = false, finished = false;

  void init() {
    choices.resize(static_cast<size_t>(req.n));
    for (ChoiceState& c : choices) c.splitter = ReasoningSplitter(req.starts_in_reasoning);
  }

  // Logprobs of the tokens of choice `c` not yet sent, as the chunk's "logprobs" (stream).
  json take_logprobs(ChoiceState& c) {
    if (req.logprobs < 0) return nullptr;
    json j = req.chat ? chat_logprobs_json(*tokenizer, c.logprobs)
                      : completion_logprobs_json(*tokenizer, c.logprobs, c.logprob_bytes);
    for (const TokenLogprobs& t : c.logprobs)
      c.logprob_bytes += static_cast<int64_t>(tokenizer->token_bytes(t.token).size());
    c.logprobs.clear();
    return j;
  }

  // Turns text into SSE chunks (stream) or accumulates it. A streamed token with logprobs
  // gets a chunk even when its text is held back (its logprobs travel with it).
  void add_text(int32_t index, const std::string& text, std::string& out) {
    ChoiceState& c = choices[static_cast<size_t>(index)];
    if (text.empty() && !(req.stream && !c.logprobs.empty())) return;
    add_piece(index, c.splitter.push(text), out);
  }
  void add_piece(int32_t index, const ReasoningSplitter::Piece& p, std::string& out) {
    ChoiceState& c = choices[static_cast<size_t>(index)];
    if (!req.stream) {
      c.reasoning += p.reasoning;
      c.content += p.content;
      return;
    }
    const bool pending_logprobs = !c.logprobs.empty();
    if (req.chat) {
      if (!p.reasoning.empty())
        out += sse(chat_chunk_json(response_id, created, model, index,
                                   {{"reasoning_content", p.reasoning}}, "", take_logprobs(c)));
      if (!p.content.empty() || (pending_logprobs && !c.logprobs.empty()))
        out += sse(chat_chunk_json(response_id, created, model, index, {{"content", p.content}}, "",
                                   take_logprobs(c)));
    } else if (!p.content.empty() || pending_logprobs) {
      out += sse(completion_chunk_json(response_id, created, model, index, p.content, "",
                                       take_logprobs(c)));
    }
  }
  static std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

  void on_event(EngineEvent& ev, std::string& out) {
    const int32_t index = std::clamp<int32_t>(ev.index, 0, req.n - 1);
    ChoiceState& c = choices[static_cast<size_t>(index)];
    switch (ev.kind) {
      case EngineEvent::Kind::kStarted:
        metrics->request_queue_time.observe(ev.queue_seconds);
        break;
      case EngineEvent::Kind::kToken: {
        const double since =
            std::chrono::duration<double>(ev.time - (got_token ? last_token : arrival)).count();
        (got_token ? metrics->inter_token_latency : metrics->time_to_first_token).observe(since);
        got_token = true;
        last_token = ev.time;
        if (ev.token >= 0) {
          TokenLogprobs t{ev.token, ev.logprob, {}};
          for (const TokenLogprob& x : ev.top_logprobs) t.top.emplace_back(x.id, x.logprob);
          c.logprobs.push_back(std::move(t));
        }
        add_text(index, ev.text, out);
        break;
      }
      case EngineEvent::Kind::kFinished: {
        if (c.finished) break;
        add_text(index, ev.text, out);
        add_piece(index, c.splitter.finish(), out);
        c.finish_reason = ev.finish_reason;
        c.finished = true;
        // Usage over all choices: the prompt once, the completions summed.
        usage.prompt_tokens = ev.prompt_tokens;
        usage.completion_tokens += ev.completion_tokens;
        if (index == 0) usage.cached_tokens = ev.cached_tokens;
        if (req.stream) {
          if (req.chat) {
            out += sse(chat_chunk_json(response_id, created, model, index, json::object(),
                                       c.finish_reason, take_logprobs(c)));
          } else {
            out += sse(completion_chunk_json(response_id, created, model, index, "",
                                             c.finish_reason, take_logprobs(c)));
          }
        }
        if (++n_finished < req.n) break;
        metrics->e2e_request_latency.observe(
            std::chrono::duration<double>(ev.time - arrival).count());
        finished = true;
        if (req.stream) {
          if (req.include_usage)
            out += sse(usage_chunk_json(response_id, created, model, req.chat, usage));
          out += "data: [DONE]\n\n";
        } else {
          std::vector<ChoiceOutput> outs;
          for (ChoiceState& x : choices) {
            ChoiceOutput o;
            o.content = x.content;
            if (req.chat && req.starts_in_reasoning) o.reasoning = x.reasoning;
            o.finish_reason = x.finish_reason;
            if (req.logprobs >= 0)
              o.logprobs = req.chat ? chat_logprobs_json(*tokenizer, x.logprobs)
                                    : completion_logprobs_json(*tokenizer, x.logprobs);
            outs.push_back(std::move(o));
          }
          out += dump(req.chat ? chat_completion_json(response_id, created, model, outs, usage)
                               : completion_json(response_id, created, model, outs, usage));
        }
        log_info("[{}] finished: {} prompt + {} generated tokens, {}", rid, usage.prompt_tokens,
                 usage.completion_tokens, c.finish_reason);
        break;
      }
      case EngineEvent::Kind::kError: {
        // After the 200 went out: report in the body (stream: an error event).
        ApiError e = api_error_from_status(ev.error);
        finished = true;
        if (req.stream) {
          out += "data: " + error_body(e) + "\n\ndata: [DONE]\n\n";
        } else {
          out += error_body(e);
        }
        log_warn("[{}] failed while running: {}", rid, ev.error.to_string());
        break;
      }
    }
  }
};

struct Worker {
  net::io_context ioc{1};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::list<Connection*> connections;  // for the deadline sweep
  std::thread thread;
};

// A reply made in one piece.
struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

}  // namespace

struct HttpServer::Impl {
  HttpServer* owner;
  Engine& engine;
  ApiContext api;
  HttpOptions opt;
  ServerMetrics metrics;
  int64_t started_at = unix_now();
  std::atomic<bool> stopping{false};
  const std::string no_id_{};                      // replies without a request id
  std::vector<std::unique_ptr<Worker>> workers{};  // last: their coroutines use the above

  Reply error_reply(const ApiError& e) {
    metrics.count_request(e.status);
    return Reply{e.status, "application/json", error_body(e), {}};
  }

  // The key the request names when keys are configured (`key`; nullptr when the server is
  // open). Else a 401 reply.
  std::optional<Reply> check_key(const Request& req, const ApiKey** key = nullptr) {
    if (key) *key = nullptr;
    if (opt.api_keys.open()) return std::nullopt;
    if (const ApiKey* k = opt.api_keys.find(header(req, http::field::authorization))) {
      if (key) *key = k;
      return std::nullopt;
    }
    ApiError e;
    e.status = 401;
    e.type = "authentication_error";
    e.code = "invalid_api_key";
    e.message = "missing or invalid API key (send 'Authorization: Bearer <key>')";
    return error_reply(e);
  }

  // /admin/*: a key marked admin (--api-key, or `admin` in --api-key-file) when keys are
  // configured: 401 without a valid key, 403 with a key that is not an admin's.
  std::optional<Reply> check_admin(const Request& req) {
    const ApiKey* key = nullptr;
    if (auto denied = check_key(req, &key)) return denied;
    if (key == nullptr || key->admin) return std::nullopt;
    ApiError e;
    e.status = 403;
    e.type = "permission_error";
    e.message = "this API key may not use /admin";
    return error_reply(e);
  }

  json scheduler_json() {
    const EngineStats st = engine.stats();
    const EngineOptions& o = engine.options();
    return {{"max_num_seqs", st.max_num_seqs},
            {"max_num_batched_tokens", st.max_num_batched_tokens},
            {"max_num_seqs_limit", o.max_num_seqs_limit},
            {"max_step_ms", o.max_step_ms},
            {"scheduling_policy", o.policy == SchedulingPolicy::kFcfs ? "fcfs" : "priority"},
            {"max_queue", o.max_queue},
            {"running", st.running},
            {"waiting", st.waiting}};
  }

  // POST /admin/scheduler {"max_num_seqs": N, "max_num_batched_tokens": M} (either or both):
  // handed to the engine thread, which applies it before its next step.
  Reply set_scheduler(const Request& req) {
    const json body = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
    auto bad = [&](const std::string& message) {
      return error_reply(api_error_from_status(invalid_argument("{}", message)));
    };
    if (!body.is_object() || body.empty())
      return bad("the body must be a JSON object with max_num_seqs and/or max_num_batched_tokens");
    EngineLimits limits;
    for (const auto& [k, v] : body.items()) {
      if (k != "max_num_seqs" && k != "max_num_batched_tokens")
        return bad(fmt::format("{}: not a setting that can change at run time", k));
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        return bad(fmt::format("{}: must be a positive integer", k));
      (k == "max_num_seqs" ? limits.max_num_seqs : limits.max_num_batched_tokens) =
          v.get<int64_t>();
    }
    if (Status st = engine.set_limits(limits); !st.ok()) return bad(st.message());
    log_info("scheduler limits changed: max_num_seqs {}, max_num_batched_tokens {}",
             engine.stats().max_num_seqs, engine.stats().max_num_batched_tokens);
    return Reply{200, "application/json", dump(scheduler_json()), {}};
  }

  Reply health() {
    const EngineStats st = engine.stats();
    std::string status = "ok";
    if (owner->draining()) {
      status = "draining";
    } else if (st.seconds_since_heartbeat > opt.health_stale_s) {
      status = "engine stalled";
    }
    return Reply{status == "ok" ? 200 : 503,
                 "application/json",
                 dump(json{{"status", status},
                           {"running", st.running},
                           {"waiting", st.waiting},
                           {"seconds_since_engine_step", st.seconds_since_heartbeat}}),
                 {}};
  }

  Reply models(const Request& req) {
    if (auto denied = check_key(req)) return *denied;
    json m = {{"id", api.model_name},
              {"object", "model"},
              {"created", started_at},
              {"owned_by", "seekserve"},
              {"max_model_len", api.max_model_len}};
    return Reply{
        200, "application/json", dump(json{{"object", "list"}, {"data", json::array({m})}}), {}};
  }

  // Writes a reply made in one piece (header and body in one write). True when the connection
  // may take another request.
  // (`r` by reference, from a named local of the caller: GCC 12 destroys a temporary in a
  // co_await operand twice.)
  net::awaitable<bool> send(Connection& c, unsigned version, Reply& r, bool keep_alive,
                            const std::string& request_id) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    res.set(http::field::content_type, r.content_type);
    if (!request_id.empty()) res.set("X-Request-Id", request_id);
    for (auto& [k, v] : r.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    res.body() = std::move(r.body);
    res.prepare_payload();
    error_code ec;
    c.deadline.arm_in(c.stream.socket(), kWriteTimeoutS);
    co_await write_message(c.stream, res, ec);
    c.deadline.disarm();
    co_return !ec && keep_alive;
  }

  // Writes raw bytes of a reply this side frames (chunked). False when the client is gone.
  net::awaitable<bool> send_raw(Connection& c, std::string_view data) {
    error_code ec;
    c.deadline.arm_in(c.stream.socket(), kWriteTimeoutS);
    co_await write_bytes(c.stream, data, ec);
    c.deadline.disarm();
    co_return !ec;
  }

  // POST /v1/chat/completions and /v1/completions. True when the connection may take another
  // request.
  net::awaitable<bool> generate(Connection& c, const Request& req, bool chat, bool keep_alive) {
    const auto arrival = EngineClock::now();
    const std::string rid = request_id_of(req);
    const unsigned version = req.version();
    auto reply = [&](Reply& r) { return send(c, version, r, keep_alive, rid); };
    Reply r;  // an answer in one piece
    if (owner->draining()) {
      ApiError e;
      e.status = 503;
      e.type = "service_unavailable";
      e.message = "the server is shutting down";
      r = error_reply(e);
      co_return co_await reply(r);
    }
    const ApiKey* key = nullptr;
    if (auto denied = check_key(req, &key)) co_return co_await reply(*denied);
    const json body = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      r = error_reply(api_error_from_status(invalid_argument("the body is not valid JSON")));
      co_return co_await reply(r);
    }
    // The key decides how far `priority` may go (a client must not starve everyone).
    ApiContext ctx = api;
    if (key) {
      ctx.priority_min = key->priority.min;
      ctx.priority_max = key->priority.max;
    }
    const std::string path(req.target().data(), req.target().size());
    Result<ApiRequest> parsed = parse_api_request(body, chat, ctx);
    if (!parsed.ok()) {
      log_info("[{}] {} refused: {}", rid, path, parsed.status().message());
      r = error_reply(api_error_from_status(parsed.status()));
      co_return co_await reply(r);
    }
    Generation g;
    g.engine = &engine;
    g.metrics = &metrics;
    g.tokenizer = api.tokenizer;
    g.req = std::move(*parsed);
    g.rid = rid;
    g.response_id = (chat ? "chatcmpl-" : "cmpl-") + rid;
    g.model = api.model_name;
    g.created = unix_now();
    g.arrival = arrival;
    g.init();

    GenerationRequest gr;
    gr.request_id = rid;
    gr.prompt = g.req.prompt;
    gr.sampling = g.req.sampling;
    gr.max_tokens = g.req.max_tokens;
    gr.priority = g.req.priority;
    gr.n = g.req.n;
    gr.logprobs = g.req.logprobs;
    gr.deadline = arrival + std::chrono::duration_cast<EngineClock::duration>(
                                std::chrono::duration<double>(g.req.timeout_s));
    Result<std::shared_ptr<RequestChannel>> ch = engine.submit(std::move(gr));
    if (!ch.ok()) {
      r = error_reply(api_error_from_status(ch.status()));
      if (r.status == 429)
        r.headers.emplace_back("Retry-After", std::to_string(engine.retry_after_seconds()));
      log_info("[{}] {} refused: {}", rid, path, ch.status().message());
      co_return co_await reply(r);
    }
    g.channel = *ch;
    log_info("[{}] {} accepted: {} prompt tokens, max_tokens {}, priority {}{}", rid, path,
             g.req.prompt.size(), g.req.max_tokens, g.req.priority, g.req.stream ? ", stream" : "");
    // The engine's events wake this coroutine on its own thread. However this ends (a reply,
    // a client gone, the server stopping), the engine stops calling in, and an unfinished
    // request is cancelled (its KV blocks freed at the engine's next step).
    g.channel->set_notifier([wake = c.wake, ex = c.stream.get_executor()] {
      net::post(ex, [wake] { wake->signal(); });
    });
    struct Release {
      Generation& g;
      std::atomic<int>& in_flight;
      Release(Generation& gen, std::atomic<int>& n) : g(gen), in_flight(n) { ++in_flight; }
      ~Release() {
        g.channel->set_notifier(nullptr);
        if (!g.finished) {
          log_info("[{}] client went away: cancelling", g.rid);
          g.engine->cancel(g.channel->id());
        }
        --in_flight;
      }
    } release(g, owner->in_flight_);
    ClientWatch& watch = *c.watch;

    // Until the engine schedules it (or drops it): nothing is written, so queue timeouts and
    // errors get their own status. A client that resets is taken out of the queue; one that
    // half-closes gets the reply committed (200, chunked): writing is also the probe that
    // tells a full close (the client's system answers with a reset).
    bool committed = false;  // a 200 is decided: the rest goes in chunks
    bool head_sent = false;  // its status line and headers are out
    const std::string head = fmt::format(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nX-Request-Id: "
        "{}\r\nTransfer-Encoding: chunked\r\n{}\r\n",
        g.req.stream ? "text/event-stream" : "application/json", rid,
        keep_alive ? "" : "Connection: close\r\n");
    for (bool started = false; !started;) {
      g.channel->pop_all(g.backlog, std::chrono::milliseconds(0));
      for (const EngineEvent& ev : g.backlog) {
        if (ev.kind == EngineEvent::Kind::kError && !committed) {
          ApiError e = api_error_from_status(ev.error);
          if (ev.timed_out) {
            e.status = 408;
            e.type = "timeout_error";
          } else if (e.status == 429) {
            e.status = 503;
            e.type = "service_unavailable";
          }
          log_info("[{}] dropped before running: {}", rid, ev.error.message());
          g.finished = true;  // nothing to cancel
          r = error_reply(e);
          co_return co_await reply(r);
        }
        started = true;  // kStarted (or anything after it)
      }
      if (started) break;
      if (watch.gone) {
        log_info("[{}] client went away while queued: removing it", rid);
        metrics.count_request(499);  // nginx's "client closed request"
        co_return false;
      }
      if (watch.eof && !committed) {
        log_info("[{}] client half-closed its connection while queued: committing the reply", rid);
        committed = true;
        metrics.count_request(200);
        head_sent = true;
        if (!co_await send_raw(c, head)) co_return false;
        g.last_write = Clock::now();
      }
      co_await wait_for_wake(*c.wake, kProbeInterval);
    }
    // Streams commit now (their events go out as they come); a full reply is written in one
    // piece when it is complete, unless the client half-closes first.
    if (g.req.stream && !committed) {
      committed = true;
      metrics.count_request(200);
    }
    std::string out = g.req.stream && !head_sent ? head : std::string();
    if (g.req.stream && g.req.chat) {
      std::string role;
      for (int32_t i = 0; i < g.req.n; ++i)
        role += Generation::sse(chat_chunk_json(g.response_id, g.created, g.model, i,
                                                {{"role", "assistant"}, {"content", ""}}, ""));
      out += chunk(role);
    }
    for (;;) {
      std::vector<EngineEvent> events;
      events.swap(g.backlog);
      std::string text;
      for (EngineEvent& ev : events) {
        if (!g.finished) g.on_event(ev, text);
      }
      if (g.finished && !committed) {  // the whole reply, in one write
        const EngineEvent* err = nullptr;
        for (const EngineEvent& ev : events)
          if (ev.kind == EngineEvent::Kind::kError) err = &ev;
        if (err) {
          r = error_reply(api_error_from_status(err->error));
        } else {
          metrics.count_request(200);
          r.body = std::move(text);
        }
        co_return co_await reply(r);
      }
      if (committed) {
        if (!text.empty()) out += chunk(text);
        if (g.finished) out += "0\r\n\r\n";
      }
      const auto now = Clock::now();
      if (committed && out.empty() && now - g.last_write >= kProbeInterval) {
        // A write is the only way to learn whether a half-closed client is still there.
        out = chunk(g.req.stream ? ": keep-alive\n\n" : " ");
      }
      if (!out.empty()) {
        if (!co_await send_raw(c, out)) co_return false;
        out.clear();
        g.last_write = now;
      }
      if (g.finished) co_return keep_alive && !watch.eof;
      if (watch.gone) co_return false;
      if (watch.eof && !committed) {
        log_info("[{}] client half-closed its connection: committing the reply", rid);
        committed = true;
        metrics.count_request(200);
        out = head;
        head_sent = true;
      }
      if (out.empty()) co_await wait_for_wake(*c.wake, kProbeInterval);
      g.channel->pop_all(g.backlog, std::chrono::milliseconds(0));
    }
  }

  // Routes one request. True when the connection may take another.
  net::awaitable<bool> route(Connection& c, const Request& req, bool keep_alive) {
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
    const bool post = req.method() == http::verb::post;
    const unsigned v = req.version();
    try {
      if (path == "/v1/chat/completions" && post)
        co_return co_await generate(c, req, /*chat=*/true, keep_alive);
      if (path == "/v1/completions" && post)
        co_return co_await generate(c, req, /*chat=*/false, keep_alive);
      Reply r;
      if (path == "/health" && get) {
        r = health();
      } else if (path == "/metrics" && get) {
        r = Reply{200, "text/plain; version=0.0.4", metrics.render(engine.stats()), {}};
      } else if (path == "/v1/models" && get) {
        r = models(req);
      } else if (path == "/admin/scheduler" && (get || post)) {
        if (auto denied = check_admin(req)) {
          r = std::move(*denied);
        } else {
          r = post ? set_scheduler(req)
                   : Reply{200, "application/json", dump(scheduler_json()), {}};
        }
      } else if (path == "/v1/chat/completions" || path == "/v1/completions" || path == "/health" ||
                 path == "/metrics" || path == "/v1/models" || path == "/admin/scheduler") {
        ApiError e;
        e.status = 405;
        e.message = fmt::format("{} does not take {}", path, std::string(req.method_string()));
        r = error_reply(e);
        r.headers.emplace_back("Allow", path.starts_with("/v1/c")    ? "POST"
                                        : path == "/admin/scheduler" ? "GET, POST"
                                                                     : "GET");
      } else {
        ApiError e;
        e.status = 404;
        e.code = "not_found";
        e.message = fmt::format("no such endpoint: {}", path);
        r = error_reply(e);
      }
      if (req.method() == http::verb::head) r.body.clear();
      co_return co_await send(c, v, r, keep_alive, no_id_);
    } catch (const std::exception& e) {
      log_error("handler failed: {}", e.what());
    }
    Reply failed = error_reply(api_error_from_status(internal_error("unexpected failure")));
    co_return co_await send(c, v, failed, false, no_id_);
  }

  net::awaitable<void> serve_connection(Worker& w, tcp::socket socket) {
    Connection c(std::move(socket), w.ioc.get_executor());
    w.connections.push_front(&c);
    const auto registered = w.connections.begin();
    for (int served = 0;; ++served) {
      // The next request: bytes the pending read already has, then more as needed.
      c.deadline.arm_in(c.stream.socket(), served == 0 ? kFirstRequestTimeoutS : kKeepAliveIdleS);
      co_await finish_watch(c);
      if ((c.watch->gone || c.watch->eof) && c.buffer.size() == 0) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(kMaxHeaderBytes));
      parser.body_limit(static_cast<uint64_t>(opt.max_body_bytes));
      error_code ec;
      parse_buffered(parser, c.buffer, ec);
      if (!ec && !parser.is_header_done())
        co_await http::async_read_header(c.stream, c.buffer, parser, redirect(ec));
      if (!ec && !parser.is_done()) {
        c.deadline.arm_in(c.stream.socket(), kReadTimeoutS);
        // curl and others wait (a second) for "100 Continue" before sending a large body.
        if (beast::iequals(parser.get()[http::field::expect], "100-continue"))
          co_await send_raw(c, "HTTP/1.1 100 Continue\r\n\r\n");
        co_await http::async_read(c.stream, c.buffer, parser, redirect(ec));
      }
      c.deadline.disarm();
      if (ec) {
        if (ec == http::error::body_limit) {
          ApiError e;
          e.status = 413;
          e.code = "body_too_large";
          e.message = fmt::format("the request body is larger than {} bytes (--max-body-bytes)",
                                  opt.max_body_bytes);
          Reply r = error_reply(e);
          co_await send(c, 11, r, false, no_id_);
        } else if (ec == http::error::header_limit) {
          ApiError e;
          e.status = 431;
          e.message = "the request's header is too large";
          Reply r = error_reply(e);
          co_await send(c, 11, r, false, no_id_);
        } else if (ec != http::error::end_of_stream && ec != net::error::eof &&
                   ec != net::error::connection_reset && ec != net::error::bad_descriptor &&
                   ec != net::error::operation_aborted) {
          Reply r = error_reply(
              api_error_from_status(invalid_argument("malformed HTTP request: {}", ec.message())));
          co_await send(c, 11, r, false, no_id_);
        }
        break;
      }
      Request req = parser.release();
      const bool keep_alive =
          req.keep_alive() && !stopping.load() && served + 1 < kMaxRequestsPerConnection;
      // Bytes beyond this request (pipelining) are parsed next; otherwise the read that waits
      // for the next request starts now and watches for a disconnect meanwhile.
      if (c.buffer.size() == 0 && !c.watch->eof && !c.watch->gone) start_watch(c);
      if (!co_await route(c, req, keep_alive)) break;
    }
    c.deadline.disarm();
    c.watch->socket = nullptr;
    w.connections.erase(registered);
    error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    c.stream.socket().close(ignored);
    // The pending read, if any, ends with an error now; its handler holds what it touches.
  }

  net::awaitable<void> sweep_loop(Worker& w) {
    net::steady_timer tick(w.ioc);
    while (!stopping.load()) {
      tick.expires_after(kSweepInterval);
      error_code ec;
      co_await tick.async_wait(redirect(ec));
      const Clock::time_point now = Clock::now();
      for (Connection* c : w.connections) c->deadline.enforce(now);
    }
  }
};

HttpServer::HttpServer(Engine& engine, ApiContext api, HttpOptions options)
    : impl_(new Impl{this, engine, std::move(api), std::move(options), {}}) {}

HttpServer::~HttpServer() {
  stop();
  for (auto& w : impl_->workers)
    if (w->thread.joinable()) w->thread.join();
}

Result<int> HttpServer::bind() {
  Impl& im = *impl_;
  const int threads = im.opt.http_threads > 0 ? im.opt.http_threads : kDefaultHttpThreads;
  error_code ec;
  const net::ip::address address = net::ip::make_address(im.opt.host, ec);
  if (ec) return invalid_argument("--host: '{}' is not an IP address to listen on", im.opt.host);
  int port = im.opt.port;
  for (int i = 0; i < threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->acceptor = open_listener(w->ioc, address, port, threads > 1, ec);
    if (!w->acceptor)
      return io_error("cannot listen on {}:{}: {}", im.opt.host, port == 0 ? im.opt.port : port,
                      ec.message());
    port = w->acceptor->local_endpoint().port();
    im.workers.push_back(std::move(w));
  }
  return port;
}

void HttpServer::run() {
  Impl& im = *impl_;
  if (im.workers.empty()) return;
  for (auto& w : im.workers) {
    Worker* wp = w.get();
    net::co_spawn(
        w->ioc,
        accept_loop(
            *w->acceptor, im.stopping,
            [&im, wp](tcp::socket socket) { return im.serve_connection(*wp, std::move(socket)); },
            [](const error_code& ec) { log_warn("accept failed: {}", ec.message()); }),
        net::detached);
    net::co_spawn(w->ioc, im.sweep_loop(*w), net::detached);
  }
  for (size_t i = 1; i < im.workers.size(); ++i) {
    Worker* w = im.workers[i].get();
    w->thread = std::thread([w] {
      auto guard = net::make_work_guard(w->ioc);
      w->ioc.run();
    });
  }
  {
    Worker* w = im.workers[0].get();
    auto guard = net::make_work_guard(w->ioc);
    w->ioc.run();
  }
  for (size_t i = 1; i < im.workers.size(); ++i)
    if (im.workers[i]->thread.joinable()) im.workers[i]->thread.join();
}

void HttpServer::stop() {
  Impl& im = *impl_;
  im.stopping.store(true);
  for (auto& w : im.workers) w->ioc.stop();
}

}  // namespace seekserve
