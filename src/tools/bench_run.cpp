#include "tools/bench_run.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <random>

#include <fmt/format.h>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

namespace seekserve {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr const char* kCancelled = "cancelled: the run was aborted";

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The client side of one request: parses the SSE answer as it arrives, or (stream == false) the
// one JSON answer at its end.
struct InFlight {
  BenchPrompt prompt;
  bool stream = true;
  std::string answer;  // stream == false: the JSON body
  Clock::time_point sent, last_chunk;
  RequestRecord rec;
  SseSplitter sse;
  std::vector<std::string> events;
  int status = 0;
  bool sse_ok = false, got_done = false, usage_seen = false;
  int64_t chunks = 0;
  std::string protocol_error;  // first problem with an HTTP 200 answer
  std::string error_body;      // start of a non-200 answer (for the message)

  void on_headers(int code, const HttpResponseParser& h) {
    status = code;
    if (code != 200) return;
    const std::string type = h.header("content-type");
    if (!stream) {
      sse_ok = type.find("application/json") != std::string::npos;
      if (!sse_ok) {
        protocol_error = fmt::format("not an OpenAI answer (HTTP 200 with Content-Type '{}')",
                                     type.empty() ? "none" : one_line_excerpt(type, 60));
      }
      return;
    }
    sse_ok = type.find("text/event-stream") != std::string::npos;
    if (!sse_ok) {
      protocol_error = fmt::format("not an OpenAI stream (HTTP 200 with Content-Type '{}')",
                                   type.empty() ? "none" : one_line_excerpt(type, 60));
    }
  }

  void on_body(std::string_view body) {
    if (status != 200 || !sse_ok) {
      if (error_body.size() < 2048) error_body.append(body.substr(0, 2048 - error_body.size()));
      return;
    }
    if (!stream) {
      constexpr size_t kMaxAnswer = size_t{64} << 20;
      if (answer.size() + body.size() > kMaxAnswer) {
        if (protocol_error.empty()) protocol_error = "answer larger than 64 MiB";
        return;
      }
      answer.append(body);
      return;
    }
    const Clock::time_point now = Clock::now();
    events.clear();
    sse.feed(body, events);
    for (const std::string& e : events) on_event(e, now);
  }

  void on_event(const std::string& data, Clock::time_point now) {
    if (!protocol_error.empty()) return;
    if (data == "[DONE]") {
      got_done = true;
      return;
    }
    json j = json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      protocol_error =
          "not an OpenAI stream (an event is not JSON: '" + one_line_excerpt(data, 60) + "')";
      return;
    }
    if (j.contains("error")) {
      const json& e = j["error"];
      protocol_error = "error event in the stream: " +
                       (e.is_object() && e.contains("message") && e["message"].is_string()
                            ? e["message"].get<std::string>()
                            : e.dump());
      return;
    }
    if (j.contains("usage") && j["usage"].is_object()) {
      const json& u = j["usage"];
      if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer() &&
          u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
        rec.prompt_tokens = u["prompt_tokens"].get<int64_t>();
        rec.output_tokens = u["completion_tokens"].get<int64_t>();
        usage_seen = true;
      }
    }
    if (!j.contains("choices") || !j["choices"].is_array()) {
      protocol_error = "not an OpenAI stream (a chunk has no \"choices\")";
      return;
    }
    if (j["choices"].empty()) return;
    const json& c = j["choices"][0];
    bool text = false;
    auto nonempty = [](const json& o, const char* key) {
      return o.contains(key) && o[key].is_string() && !o[key].get_ref<const std::string&>().empty();
    };
    if (c.contains("delta") && c["delta"].is_object()) {
      text = nonempty(c["delta"], "content") || nonempty(c["delta"], "reasoning_content");
    } else {
      text = nonempty(c, "text");
    }
    if (!text) return;
    ++chunks;
    if (rec.ttft_s < 0) {
      rec.ttft_s = seconds_between(sent, now);
    } else {
      rec.itl_s.push_back(seconds_between(last_chunk, now));
    }
    last_chunk = now;
  }

  // A non-streaming answer: {"choices": [...], "usage": {...}}. Its text arrives all at once, so
  // TTFT = e2e; TPOT and ITL are not defined (rec.streamed = false).
  void on_answer() {
    json j = json::parse(answer, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      rec.error = "not an OpenAI answer (not JSON: '" + one_line_excerpt(answer, 60) + "')";
      return;
    }
    if (j.contains("error")) {
      const json& e = j["error"];
      rec.error = "error in the answer: " +
                  (e.is_object() && e.contains("message") && e["message"].is_string()
                       ? e["message"].get<std::string>()
                       : e.dump());
      return;
    }
    if (!j.contains("choices") || !j["choices"].is_array()) {
      rec.error = "not an OpenAI answer (no \"choices\")";
      return;
    }
    rec.ttft_s = rec.e2e_s;
    rec.ok = true;
    if (j.contains("usage") && j["usage"].is_object()) {
      const json& u = j["usage"];
      if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer() &&
          u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
        rec.prompt_tokens = u["prompt_tokens"].get<int64_t>();
        rec.output_tokens = u["completion_tokens"].get<int64_t>();
        rec.usage_from_server = true;
        return;
      }
    }
    // No usage: the prompt's own count, and one "chunk" per choice that carries text.
    rec.prompt_tokens = std::max<int64_t>(prompt.input_tokens, 0);
    for (const json& c : j["choices"]) {
      const bool text = (c.contains("text") && c["text"].is_string() &&
                         !c["text"].get_ref<const std::string&>().empty()) ||
                        (c.contains("message") && c["message"].is_object() &&
                         c["message"].contains("content") && c["message"]["content"].is_string());
      if (text) ++rec.output_tokens;
    }
  }

  void on_done(const LoadgenOutcome& out) {
    rec.e2e_s = seconds_between(sent, Clock::now());
    rec.streamed = stream;
    rec.http_status = out.status;
    rec.priority = prompt.priority;
    if (!out.error.empty()) {
      rec.error = out.error;
    } else if (out.status != 200) {
      // Failures are keyed by status ("HTTP 429"); the server's message is kept as detail.
      json j = json::parse(error_body, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object() &&
          j["error"].contains("message") && j["error"]["message"].is_string()) {
        rec.detail = j["error"]["message"].get<std::string>();
      } else {
        rec.detail = "not an OpenAI error body: '" + error_body.substr(0, 80) + "'";
      }
    } else if (!protocol_error.empty()) {
      rec.error = protocol_error;
    } else if (!stream) {
      on_answer();
    } else if (!got_done) {
      rec.error = "the stream ended without 'data: [DONE]'";
    } else {
      rec.ok = true;
      rec.usage_from_server = usage_seen;
      if (!usage_seen) {
        rec.prompt_tokens = std::max<int64_t>(prompt.input_tokens, 0);
        rec.output_tokens = chunks;
      }
    }
  }
};

struct Runner {
  Runner(asio::io_context& io_, LoadgenClient& client_, const Workload& workload_,
         const LoadShape& shape_, ProgressMode progress_)
      : io(io_), client(client_), workload(workload_), shape(shape_), progress(progress_) {}
  asio::io_context& io;
  LoadgenClient& client;
  const Workload& workload;
  LoadShape shape;
  ProgressMode progress;
  RunResult result;

  // Phase state.
  bool warming = false, stopping = false, arrivals_done = false;
  int64_t next_index = 0, issued = 0, finished = 0, ok = 0, failed = 0;
  int64_t target = 0;  // requests to send in this phase (0: until the deadline)
  int64_t concurrency = 0;
  Clock::time_point phase_start, deadline, last_answer;
  bool has_deadline = false;
  std::vector<RequestRecord>* sink = nullptr;
  std::map<std::string, int64_t> early_failures;
  std::mt19937_64 arrivals{12345};
  asio::steady_timer arrival_timer{io};
  asio::steady_timer progress_timer{io};
  Clock::time_point next_arrival;

  // Whether a request sent (or due) at `at` belongs to this phase.
  bool more_to_send(Clock::time_point at) const {
    if (stopping) return false;
    if (target > 0 && issued >= target) return false;
    if (has_deadline && at >= deadline) return false;
    return true;
  }
  bool more_to_send() const { return more_to_send(Clock::now()); }
  bool open_loop() const { return shape.rate > 0 && !warming; }

  void abort(const std::string& reason) {
    if (stopping && result.aborted) return;
    stopping = true;
    result.aborted = true;
    result.abort_reason = reason;
    arrival_timer.cancel();
    client.abort_all(kCancelled);
  }

  void send_one() {
    auto f = std::make_shared<InFlight>();
    f->stream = workload.options().stream;
    f->prompt = workload.make(next_index++);
    ++issued;
    LoadgenRequest req;
    req.path = client.url().base_path + workload.path();
    req.body = f->prompt.body;
    req.timeout_s = shape.timeout_s;
    f->sent = Clock::now();
    f->rec.start_s = seconds_between(phase_start, f->sent);
    LoadgenCallbacks cb;
    cb.on_headers = [f](int code, const HttpResponseParser& h) { f->on_headers(code, h); };
    cb.on_body = [f](std::string_view b) { f->on_body(b); };
    cb.on_done = [this, f](const LoadgenOutcome& out) {
      f->on_done(out);
      on_finished(std::move(f->rec));
    };
    client.send(std::move(req), std::move(cb));
  }

  void on_finished(RequestRecord rec) {
    if (rec.error == kCancelled) {  // cut short by an abort: neither completed nor failed
      ++result.cancelled;
      maybe_end_phase();
      return;
    }
    ++finished;
    last_answer = Clock::now();
    if (rec.ok) {
      ++ok;
    } else {
      ++failed;
      if (ok == 0) {
        ++early_failures[rec.error.empty() ? fmt::format("HTTP {}", rec.http_status) : rec.error];
      }
    }
    sink->push_back(std::move(rec));
    // A target that fails every one of the first requests is not worth loading further.
    const int64_t threshold = std::max<int64_t>(
        1, std::min<int64_t>(concurrency > 0 ? concurrency : 8, target > 0 ? target : INT64_MAX));
    if (ok == 0 && failed >= threshold && !stopping) {
      auto worst =
          std::max_element(early_failures.begin(), early_failures.end(),
                           [](const auto& a, const auto& b) { return a.second < b.second; });
      abort(fmt::format("{} ({})",
                        failed == 1 ? std::string("the first request failed")
                                    : fmt::format("the first {} requests all failed", failed),
                        worst->first));
    }
    if (!open_loop() && more_to_send()) send_one();
    maybe_end_phase();
  }

  void maybe_end_phase() {
    if (client.in_flight() > 0) return;
    if (open_loop() ? !arrivals_done && !stopping : more_to_send()) return;
    arrival_timer.cancel();
    progress_timer.cancel();
    io.stop();
  }

  // Open loop: sends every arrival that is due (a late timer catches up, so the offered rate
  // holds on a busy machine), then waits for the next one.
  void schedule_arrival() {
    const Clock::time_point now = Clock::now();
    while (more_to_send(next_arrival) && next_arrival <= now) {
      send_one();
      const double gap = shape.poisson ? std::exponential_distribution<double>(shape.rate)(arrivals)
                                       : 1.0 / shape.rate;
      next_arrival +=
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap));
    }
    if (!more_to_send(next_arrival)) {
      arrivals_done = true;
      maybe_end_phase();
      return;
    }
    arrival_timer.expires_at(next_arrival);
    arrival_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) schedule_arrival();
    });
  }

  void print_progress(bool final_line) {
    if (progress == ProgressMode::kNone) return;
    const double elapsed = seconds_between(phase_start, Clock::now());
    double fraction = 0;
    if (target > 0) fraction = static_cast<double>(finished) / static_cast<double>(target);
    if (has_deadline && shape.duration_s > 0) fraction = std::min(1.0, elapsed / shape.duration_s);
    const int width = 24;
    const int filled = static_cast<int>(fraction * width + 0.5);
    const std::string bar = std::string(static_cast<size_t>(filled), '#') +
                            std::string(static_cast<size_t>(width - filled), '.');
    const std::string text = fmt::format(
        "{} [{}] {}{} done ({} failed), {} in flight, {:.3g} req/s, {:.1f}s",
        warming ? fmt::format("warm-up ({} at once)", concurrency) : shape.label, bar, finished,
        target > 0 ? fmt::format("/{}", target) : "", failed, client.in_flight(),
        elapsed > 0 ? static_cast<double>(ok) / elapsed : 0.0, elapsed);
    if (progress == ProgressMode::kTerminal) {
      std::fprintf(stderr, "\r\033[K%s%s", text.c_str(), final_line ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s\n", text.c_str());
    }
    std::fflush(stderr);
  }

  void schedule_progress() {
    const auto every = progress == ProgressMode::kTerminal ? std::chrono::milliseconds(250)
                                                           : std::chrono::milliseconds(5000);
    progress_timer.expires_after(every);
    progress_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      print_progress(false);
      schedule_progress();
    });
  }

  void run_phase(bool warmup_phase, int64_t n, double duration_s) {
    warming = warmup_phase;
    stopping = result.aborted;
    issued = finished = ok = failed = 0;
    early_failures.clear();
    target = n;
    sink = warmup_phase ? &result.warmup : &result.records;
    phase_start = last_answer = Clock::now();
    has_deadline = duration_s > 0;
    deadline = phase_start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(duration_s));
    concurrency = warmup_phase ? std::max<int64_t>(1, shape.concurrency > 0 ? shape.concurrency : 8)
                               : shape.concurrency;
    if (warmup_phase) concurrency = std::min(concurrency, n);
    io.restart();
    if (progress != ProgressMode::kNone) schedule_progress();
    arrivals_done = false;
    if (open_loop()) {
      next_arrival = phase_start;
      schedule_arrival();
    } else {
      for (int64_t i = 0; i < concurrency && more_to_send(); ++i) send_one();
    }
    maybe_end_phase();
    io.run();
    progress_timer.cancel();
    if (!warmup_phase) result.duration_s = seconds_between(phase_start, last_answer);
    if (progress != ProgressMode::kNone && (issued > 0 || result.aborted)) print_progress(true);
  }
};

}  // namespace

RunResult run_load(asio::io_context& io, LoadgenClient& client, const Workload& workload,
                   const LoadShape& shape, int64_t first_index, ProgressMode progress) {
  Runner r(io, client, workload, shape, progress);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  bool interrupted = false;
  std::function<void()> arm = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      interrupted = true;
      r.abort("interrupted");
      r.maybe_end_phase();
      arm();
    });
  };
  arm();
  if (shape.warmup > 0) {
    r.next_index = -shape.warmup;  // warm-up prompts have their own (negative) indices
    r.run_phase(true, shape.warmup, 0);
    int64_t ok = 0;
    for (const RequestRecord& rec : r.result.warmup) ok += rec.ok ? 1 : 0;
    if (ok == 0 && !r.result.aborted) {
      const RequestRecord& first = r.result.warmup.front();
      r.result.aborted = true;
      r.result.abort_reason = fmt::format(
          "every warm-up request failed ({})",
          first.error.empty() ? fmt::format("HTTP {}", first.http_status) : first.error);
    }
  }
  if (!r.result.aborted) {
    r.next_index = first_index;
    r.run_phase(false, shape.num_requests, shape.duration_s);
  }
  signals.cancel();
  io.restart();
  io.poll();  // let cancelled handlers run before the runner goes away
  (void)interrupted;
  return std::move(r.result);
}

}  // namespace seekserve
