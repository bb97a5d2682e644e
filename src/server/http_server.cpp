#include "server/http_server.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string_view>

#include "core/log.h"
#include "server/reasoning_splitter.h"

namespace seekserve {

using nlohmann::json;

namespace {

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

// X-Request-Id when the client (or the router) sent a sane one (1..128 characters of
// A-Z a-z 0-9 - _ . : + / =, enough for UUIDs, ULIDs and base64), else a new one.
std::string request_id_of(const httplib::Request& req) {
  std::string id = req.get_header_value("X-Request-Id");
  bool ok = !id.empty() && id.size() <= 128;
  for (char c : id)
    ok =
        ok && (std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-_.:+/=", c) != nullptr);
  return ok ? id : random_hex();
}

// One end of a TCP connection as cpp-httplib reports it to a handler.
struct ConnectionEnds {
  std::string remote_addr;
  int remote_port = 0, local_port = 0;
};

bool socket_matches(int fd, const ConnectionEnds& c) {
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof(local), pl = sizeof(peer);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0)
    return false;
  auto port_of = [](const sockaddr_storage& a) {
    if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
    if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
    return uint16_t{0};
  };
  if (port_of(peer) != c.remote_port || port_of(local) != c.local_port) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  if (peer.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(peer).sin_addr, buf, sizeof(buf));
  else if (peer.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr, buf, sizeof(buf));
  return c.remote_addr == buf;
}

// The socket of a connection. cpp-httplib 0.11 does not hand it to handlers, so it is found
// among the process's sockets by its two ends (unique while the connection is open); a
// connection stays on one pool thread for its life, so the answer is cached per thread and
// checked (two system calls) on the connection's later requests. -1 when not found.
int connection_socket(const ConnectionEnds& c) {
  thread_local int cached = -1;
  if (cached >= 0 && socket_matches(cached, c)) return cached;
  cached = -1;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != 0) continue;
    if (socket_matches(static_cast<int>(fd), c)) {
      cached = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return cached;
}

// What the client has done to its connection. An HTTP/1.1 client may legitimately shut down its
// sending side once its request is out and still read the reply (half-close): only a reset, an
// error, or a failed write means it is gone. A client that closed its socket entirely looks
// half-closed until the server writes to it (its system answers data with a reset).
enum class PeerState { kOpen, kHalfClosed, kGone };

PeerState peer_state(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  const int r = poll(&p, 1, 0);
  if (r < 0) return errno == EINTR ? PeerState::kOpen : PeerState::kGone;
  if (r == 0) return PeerState::kOpen;
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return PeerState::kGone;
  if (p.revents & POLLRDHUP) return PeerState::kHalfClosed;
  if (p.revents & POLLIN) {  // data (a pipelined request), the end of its stream, or an error
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return PeerState::kHalfClosed;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return PeerState::kGone;
  }
  return PeerState::kOpen;
}

// Writes all of `data`, waiting up to `timeout_ms` at a time for room; false when the peer is
// gone (reset, error) or does not read.
bool send_all(int fd, std::string_view data, int timeout_ms = 10000) {
  while (!data.empty()) {
    pollfd p{fd, POLLOUT, 0};
    const int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL))) return false;
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
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
  std::atomic<int>* in_flight = nullptr;
  std::shared_ptr<RequestChannel> channel;
  ApiRequest req;
  std::string rid;          // request id (logs)
  std::string response_id;  // "chatcmpl-…" / "cmpl-…"
  std::string model;
  int64_t created = 0;
  EngineClock::time_point arrival, last_token;
  std::chrono::steady_clock::time_point last_write;
  std::vector<EngineEvent> backlog;  // events not yet turned into output
  std::vector<ChoiceState> choices;
  Usage usage;
  int n_finished = 0;
  bool got_token = false, sent_role = false, finished = false;
  ConnectionEnds conn;    // the connection the request came on
  bool provided = false;  // provide() ran: cpp-httplib wrote the status line and headers
  std::string unsent;     // output whose write failed (cpp-httplib refused it: half-closed)

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

  // One call of the chunked content provider: relay what the engine produced, probe the
  // connection when idle, and report false (cancel) when the client is gone.
  bool provide(httplib::DataSink& sink) {
    provided = true;
    std::string out = std::move(unsent);  // what a failed write left (see serve_raw)
    unsent.clear();
    if (req.stream && req.chat && !sent_role) {
      for (int32_t i = 0; i < req.n; ++i)
        out += sse(chat_chunk_json(response_id, created, model, i,
                                   {{"role", "assistant"}, {"content", ""}}, ""));
      sent_role = true;
    }
    if (backlog.empty()) channel->pop_all(backlog, std::chrono::milliseconds(100));
    std::vector<EngineEvent> events;
    events.swap(backlog);
    for (EngineEvent& ev : events) {
      if (!finished) on_event(ev, out);
    }
    const auto now = std::chrono::steady_clock::now();
    if (out.empty() && now - last_write > std::chrono::seconds(1)) {
      // A write is the only way to learn the client left: SSE comment, or JSON whitespace.
      out = req.stream ? ": keep-alive\n\n" : " ";
    }
    if (!out.empty()) {
      if (!sink.write(out.data(), out.size())) {
        unsent = std::move(out);
        return false;
      }
      last_write = now;
    }
    if (finished) {
      sink.done();
      return true;
    }
    return sink.is_writable();
  }

  // The status line and headers of a reply this thread writes itself (chunked, and the
  // connection closes after it). False when the client is gone.
  bool write_raw_headers(int fd) {
    return send_all(fd, fmt::format("HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: "
                                    "no-cache\r\nX-Request-Id: {}\r\nTransfer-Encoding: "
                                    "chunked\r\nConnection: close\r\n\r\n",
                                    req.stream ? "text/event-stream" : "application/json", rid));
  }

  // The rest of the reply, after the headers, written by this thread on the socket as chunks
  // (what cpp-httplib would have written); the sending side is shut down at the end. False when
  // the client is gone (a failed write, a reset) before the end.
  bool serve_raw(int fd) {
    bool ok = true, done = false;
    httplib::DataSink sink;
    sink.write = [&](const char* data, size_t n) {
      if (!ok || n == 0) return ok;
      std::string frame = fmt::format("{:x}\r\n", n);
      frame.append(data, n);
      frame += "\r\n";
      return ok = send_all(fd, frame);
    };
    sink.done = [&] {
      done = true;
      if (ok) ok = send_all(fd, "0\r\n\r\n");
    };
    sink.is_writable = [&] { return ok && peer_state(fd) != PeerState::kGone; };
    while (provide(sink) && !done) {
    }
    if (done && ok) shutdown(fd, SHUT_WR);
    return done && ok;
  }
};

}  // namespace

struct HttpServer::Impl {
  HttpServer* owner;
  Engine& engine;
  ApiContext api;
  HttpOptions opt;
  httplib::Server svr;
  ServerMetrics metrics;
  int64_t started_at = unix_now();

  void reply_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(error_body(e), "application/json");
    metrics.count_request(e.status);
  }

  // True when the server is open or the request names a configured key (`key` gets it; nullptr
  // when open); else replies 401.
  bool authorized(const httplib::Request& req, httplib::Response& res,
                  const ApiKey** key = nullptr) {
    if (key) *key = nullptr;
    if (opt.api_keys.open()) return true;
    if (const ApiKey* k = opt.api_keys.find(req.get_header_value("Authorization"))) {
      if (key) *key = k;
      return true;
    }
    ApiError e;
    e.status = 401;
    e.type = "authentication_error";
    e.code = "invalid_api_key";
    e.message = "missing or invalid API key (send 'Authorization: Bearer <key>')";
    reply_error(res, e);
    return false;
  }

  void generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    const auto arrival = EngineClock::now();
    const std::string rid = request_id_of(req);
    res.set_header("X-Request-Id", rid);
    if (owner->draining()) {
      ApiError e;
      e.status = 503;
      e.type = "service_unavailable";
      e.message = "the server is shutting down";
      reply_error(res, e);
      return;
    }
    const ApiKey* key = nullptr;
    if (!authorized(req, res, &key)) return;
    const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      reply_error(res, api_error_from_status(invalid_argument("the body is not valid JSON")));
      return;
    }
    // The key decides how far `priority` may go (a client must not starve everyone).
    ApiContext ctx = api;
    if (key) {
      ctx.priority_min = key->priority.min;
      ctx.priority_max = key->priority.max;
    }
    Result<ApiRequest> parsed = parse_api_request(body, chat, ctx);
    if (!parsed.ok()) {
      log_info("[{}] {} refused: {}", rid, req.path, parsed.status().message());
      reply_error(res, api_error_from_status(parsed.status()));
      return;
    }
    auto g = std::make_shared<Generation>();
    g->engine = &engine;
    g->metrics = &metrics;
    g->in_flight = &owner->in_flight_;
    g->req = std::move(*parsed);
    g->rid = rid;
    g->response_id = (chat ? "chatcmpl-" : "cmpl-") + rid;
    g->model = api.model_name;
    g->created = unix_now();
    g->arrival = arrival;
    g->tokenizer = api.tokenizer;
    g->init();

    GenerationRequest gr;
    gr.request_id = rid;
    gr.prompt = g->req.prompt;
    gr.sampling = g->req.sampling;
    gr.max_tokens = g->req.max_tokens;
    gr.priority = g->req.priority;
    gr.n = g->req.n;
    gr.logprobs = g->req.logprobs;
    gr.deadline = arrival + std::chrono::duration_cast<EngineClock::duration>(
                                std::chrono::duration<double>(g->req.timeout_s));
    Result<std::shared_ptr<RequestChannel>> ch = engine.submit(std::move(gr));
    if (!ch.ok()) {
      ApiError e = api_error_from_status(ch.status());
      if (e.status == 429)
        res.set_header("Retry-After", std::to_string(engine.retry_after_seconds()));
      log_info("[{}] {} refused: {}", rid, req.path, ch.status().message());
      reply_error(res, e);
      return;
    }
    g->channel = *ch;
    log_info("[{}] {} accepted: {} prompt tokens, max_tokens {}, priority {}{}", rid, req.path,
             g->req.prompt.size(), g->req.max_tokens, g->req.priority,
             g->req.stream ? ", stream" : "");
    // Wait until the engine schedules it (or drops it) so queue timeouts get their own status.
    // Nothing is written meanwhile, so a client that leaves is noticed on its socket: the
    // request is taken out of the queue (the engine drops it at its next step).
    // Meanwhile the client may half-close (shut down its sending side and wait for the reply):
    // cpp-httplib would not write to it any more, so the reply is committed (200) and written on
    // the socket by this thread; errors that come later go in the body, as after any 200.
    g->conn = {req.remote_addr, req.remote_port, req.local_port};
    int fd = -2;  // not looked up yet
    auto socket = [&] {
      if (fd == -2) fd = connection_socket(g->conn);
      return fd;
    };
    bool raw = false;  // this thread writes the reply (the client half-closed)
    auto gone_while_queued = [&] {
      log_info("[{}] client went away while queued: removing it", rid);
      engine.cancel(g->channel->id());
      metrics.count_request(499);  // nginx's "client closed request"
    };
    for (;;) {
      if (!g->channel->pop_all(g->backlog, std::chrono::milliseconds(100)) && socket() >= 0) {
        const PeerState ps = peer_state(fd);
        if (ps == PeerState::kGone) {
          gone_while_queued();
          return;
        }
        if (ps == PeerState::kHalfClosed && !raw) {
          log_info("[{}] client half-closed its connection while queued: committing the reply",
                   rid);
          raw = true;
          // Writing is also the probe: a client that closed entirely answers with a reset.
          if (!g->write_raw_headers(fd)) {
            gone_while_queued();
            return;
          }
        }
      }
      bool started = false;
      for (const EngineEvent& ev : g->backlog) {
        if (ev.kind == EngineEvent::Kind::kError && !raw) {
          ApiError e = api_error_from_status(ev.error);
          if (ev.timed_out) {
            e.status = 408;
            e.type = "timeout_error";
          } else if (e.status == 429) {
            e.status = 503;
            e.type = "service_unavailable";
          }
          log_info("[{}] dropped before running: {}", rid, ev.error.message());
          reply_error(res, e);
          return;
        }
        started = true;  // kStarted (or anything after it)
      }
      if (started) break;
    }
    metrics.count_request(200);
    g->last_write = std::chrono::steady_clock::now();
    if (!raw && socket() >= 0 && peer_state(fd) == PeerState::kHalfClosed) {
      log_info("[{}] client half-closed its connection: writing the reply itself", rid);
      raw = g->write_raw_headers(fd);
      if (!raw) {
        log_info("[{}] client went away: cancelling", rid);
        engine.cancel(g->channel->id());
        return;
      }
    }
    if (raw) {
      ++owner->in_flight_;
      if (!g->serve_raw(fd)) {
        log_info("[{}] client went away: cancelling", rid);
        engine.cancel(g->channel->id());
      }
      --owner->in_flight_;
      return;  // cpp-httplib's own reply finds the connection half-closed and is not sent
    }
    ++owner->in_flight_;
    res.set_header("Cache-Control", "no-cache");
    auto provider = [g](size_t, httplib::DataSink& sink) { return g->provide(sink); };
    // Runs when cpp-httplib is done with the reply, the connection still open. Unfinished means
    // cpp-httplib stopped writing: the client reset or closed, or only half-closed (cpp-httplib
    // cannot tell); a half-closed client gets the rest written by this thread.
    auto releaser = [g](bool) {
      // Not provided yet: whether the headers went out is unknown, so nothing more is written.
      const int fd = !g->finished && g->provided ? connection_socket(g->conn) : -1;
      bool served = g->finished;
      if (fd >= 0 && peer_state(fd) == PeerState::kHalfClosed) {
        log_info("[{}] client half-closed its connection: writing the rest itself", g->rid);
        served = g->serve_raw(fd);
      }
      if (!served) {
        log_info("[{}] client went away: cancelling", g->rid);
        g->engine->cancel(g->channel->id());
      }
      --*g->in_flight;
    };
    res.set_chunked_content_provider(g->req.stream ? "text/event-stream" : "application/json",
                                     provider, releaser);
  }

  // /admin/*: needs a key marked admin (--api-key, or `admin` in --api-key-file) when keys are
  // configured: 401 without a valid key, 403 with a key that is not an admin's.
  bool admin_authorized(const httplib::Request& req, httplib::Response& res) {
    const ApiKey* key = nullptr;
    if (!authorized(req, res, &key)) return false;
    if (key == nullptr || key->admin) return true;
    ApiError e;
    e.status = 403;
    e.type = "permission_error";
    e.message = "this API key may not use /admin";
    reply_error(res, e);
    return false;
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
  void set_scheduler(const httplib::Request& req, httplib::Response& res) {
    const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    auto bad = [&](const std::string& message) {
      ApiError e = api_error_from_status(invalid_argument("{}", message));
      res.status = e.status;
      res.set_content(error_body(e), "application/json");
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
    res.set_content(dump(scheduler_json()), "application/json");
  }

  void routes() {
    auto guarded = [this](auto fn) {
      return [this, fn](const httplib::Request& req, httplib::Response& res) {
        try {
          fn(req, res);
        } catch (const std::exception& e) {
          log_error("handler failed: {}", e.what());
          reply_error(res, api_error_from_status(internal_error("{}", e.what())));
        }
      };
    };
    svr.Post("/v1/chat/completions",
             guarded([this](const auto& q, auto& r) { generate(q, r, /*chat=*/true); }));
    svr.Post("/v1/completions",
             guarded([this](const auto& q, auto& r) { generate(q, r, /*chat=*/false); }));
    svr.Get("/v1/models", guarded([this](const httplib::Request& q, httplib::Response& r) {
              if (!authorized(q, r)) return;
              json m = {{"id", api.model_name},
                        {"object", "model"},
                        {"created", started_at},
                        {"owned_by", "seekserve"},
                        {"max_model_len", api.max_model_len}};
              r.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}),
                            "application/json");
            }));
    svr.Get("/health", guarded([this](const httplib::Request&, httplib::Response& r) {
              const EngineStats st = engine.stats();
              std::string status = "ok";
              if (owner->draining()) {
                status = "draining";
              } else if (st.seconds_since_heartbeat > opt.health_stale_s) {
                status = "engine stalled";
              }
              r.status = status == "ok" ? 200 : 503;
              r.set_content(dump(json{{"status", status},
                                      {"running", st.running},
                                      {"waiting", st.waiting},
                                      {"seconds_since_engine_step", st.seconds_since_heartbeat}}),
                            "application/json");
            }));
    svr.Get("/admin/scheduler", guarded([this](const httplib::Request& q, httplib::Response& r) {
              if (!admin_authorized(q, r)) return;
              r.set_content(dump(scheduler_json()), "application/json");
            }));
    svr.Post("/admin/scheduler", guarded([this](const httplib::Request& q, httplib::Response& r) {
               if (!admin_authorized(q, r)) return;
               set_scheduler(q, r);
             }));
    svr.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& r) {
              r.set_content(metrics.render(engine.stats()), "text/plain; version=0.0.4");
            }));
    svr.set_exception_handler(
        [this](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          reply_error(res, api_error_from_status(internal_error("unexpected failure")));
        });
  }
};

HttpServer::HttpServer(Engine& engine, ApiContext api, HttpOptions options, int64_t max_num_seqs,
                       int64_t max_queue)
    : impl_(new Impl{this, engine, std::move(api), std::move(options), {}, {}}) {
  const size_t threads = impl_->opt.http_threads > 0
                             ? static_cast<size_t>(impl_->opt.http_threads)
                             : static_cast<size_t>(max_num_seqs + max_queue + 8);
  impl_->svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl_->svr.set_payload_max_length(static_cast<size_t>(impl_->opt.max_body_bytes));
  // Replies go out in several small writes (headers, chunks, the last chunk): without
  // TCP_NODELAY, Nagle's algorithm holds the later ones for the client's delayed ACK (~40 ms).
  impl_->svr.set_tcp_nodelay(true);
  impl_->svr.set_keep_alive_timeout(5);
  // cpp-httplib closes a keep-alive connection after 5 requests by default: a client then pays
  // a new connection (and a cold pool thread) every 5 requests. nginx's default is 1000.
  impl_->svr.set_keep_alive_max_count(1000);
  impl_->svr.set_read_timeout(30);
  impl_->svr.set_write_timeout(10);
  impl_->routes();
}

HttpServer::~HttpServer() = default;

Result<int> HttpServer::bind() {
  if (impl_->opt.port == 0) {
    const int port = impl_->svr.bind_to_any_port(impl_->opt.host);
    if (port <= 0) return io_error("cannot listen on {}: no free port", impl_->opt.host);
    return port;
  }
  if (!impl_->svr.bind_to_port(impl_->opt.host, impl_->opt.port))
    return io_error("cannot listen on {}:{} (in use, or not allowed)", impl_->opt.host,
                    impl_->opt.port);
  return impl_->opt.port;
}

void HttpServer::run() {
  impl_->svr.listen_after_bind();
}

void HttpServer::stop() {
  impl_->svr.stop();
}

}  // namespace seekserve
