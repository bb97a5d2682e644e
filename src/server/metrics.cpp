#include "server/metrics.h"

#include <fmt/format.h>

namespace seekserve {

namespace {
std::string number(double v) {
  return fmt::format("{}", v);
}
std::vector<double> latency_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
          0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0};
}
void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}
}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_[i];
  ++count_;
  sum_ += value;
}

void Histogram::render(const std::string& name, std::string& out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, number(bounds_[i]), cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, count_);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, number(sum_), name, count_);
}

ServerMetrics::ServerMetrics()
    : time_to_first_token(latency_buckets()),
      inter_token_latency(latency_buckets()),
      e2e_request_latency(latency_buckets()),
      request_queue_time(latency_buckets()) {}

void ServerMetrics::count_request(int http_status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_by_code_[http_status];
}

std::string ServerMetrics::render(const EngineStats& e) const {
  std::string out;
  auto histogram = [&out](const char* name, const char* help, const Histogram& h) {
    header(out, name, "histogram", help);
    h.render(name, out);
  };
  histogram("seekserve_time_to_first_token_seconds",
            "Time from receiving a request to its first generated token.", time_to_first_token);
  histogram("seekserve_inter_token_latency_seconds",
            "Time between consecutive generated tokens of a request.", inter_token_latency);
  histogram("seekserve_e2e_request_latency_seconds",
            "Time from receiving a request to its last token.", e2e_request_latency);
  histogram("seekserve_request_queue_time_seconds",
            "Time a request waited before it was first scheduled.", request_queue_time);
  auto gauge = [&out](const char* name, const char* help, double v) {
    header(out, name, "gauge", help);
    out += fmt::format("{} {}\n", name, number(v));
  };
  gauge("seekserve_num_requests_running", "Requests holding KV blocks in the running batch.",
        static_cast<double>(e.running));
  gauge("seekserve_num_requests_waiting", "Requests waiting to be scheduled (incl. preempted).",
        static_cast<double>(e.waiting));
  gauge("seekserve_kv_cache_usage_ratio", "Share of KV cache blocks held by requests (0..1).",
        e.kv_blocks > 0 ? static_cast<double>(e.kv_blocks_in_use) / static_cast<double>(e.kv_blocks)
                        : 0.0);
  gauge("seekserve_engine_busy_ratio",
        "Share of recent wall time the engine spent in steps (decaying average, ~10 s).",
        e.busy_ratio);
  auto counter = [&out](const char* name, const char* help, int64_t v) {
    header(out, name, "counter", help);
    out += fmt::format("{} {}\n", name, v);
  };
  header(out, "seekserve_requests_total", "counter", "HTTP generation requests by status code.");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [code, n] : requests_by_code_)
      out += fmt::format("seekserve_requests_total{{code=\"{}\"}} {}\n", code, n);
  }
  counter("seekserve_prompt_tokens_total", "Prompt tokens of requests that started running.",
          e.prompt_tokens);
  counter("seekserve_generation_tokens_total", "Tokens generated.", e.generation_tokens);
  counter("seekserve_preemptions_total",
          "Running requests preempted (blocks freed, recomputed later).", e.preemptions);
  counter("seekserve_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
          e.prefix_cache_queries);
  counter("seekserve_prefix_cache_hits_total",
          "Prompt tokens served from the prefix cache instead of being computed.",
          e.prefix_cache_hits);
  counter("seekserve_computed_tokens_total",
          "Tokens run through the model: prefill, decode and recompute after preemption (a "
          "request with n choices prefills its prompt once).",
          e.computed_tokens);
  header(out, "seekserve_engine_forward_seconds_total", "counter",
         "Time spent in the model's forward passes.");
  out += fmt::format("seekserve_engine_forward_seconds_total {}\n", number(e.forward_seconds));
  header(out, "seekserve_engine_forward_cpu_seconds_total", "counter",
         "CPU time of the engine thread inside forward passes (all of it with --threads 1).");
  out +=
      fmt::format("seekserve_engine_forward_cpu_seconds_total {}\n", number(e.forward_cpu_seconds));
  gauge("seekserve_engine_last_step_seconds", "The model's forward pass in the latest step.",
        e.last_step_ms / 1e3);
  gauge("seekserve_max_num_seqs", "Current --max-num-seqs (POST /admin/scheduler changes it).",
        static_cast<double>(e.max_num_seqs));
  return out;
}

}  // namespace seekserve
