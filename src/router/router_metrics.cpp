#include "router/router_metrics.h"

#include <fmt/format.h>

namespace seekserve {
namespace {

// A label value with \, " and newline escaped.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

void RouterMetrics::add_source(std::function<void(std::string&)> source) {
  std::lock_guard lock(mutex_);
  sources_.push_back(std::move(source));
}

std::string RouterMetrics::render(const BackendPool& pool) const {
  const std::vector<BackendSnapshot> backends = pool.snapshot();
  std::string out;
  out.reserve(4096 + 2048 * backends.size());
  std::vector<std::function<void(std::string&)>> sources;
  {
    std::lock_guard lock(mutex_);
    header(out, "seekserve_router_requests_total", "counter",
           "Replies the router sent to clients, by HTTP status.");
    for (int code = 0; code < kCodes; ++code) {
      const uint64_t n = replies_by_code_[code].load(std::memory_order_relaxed);
      if (n > 0) out += fmt::format("seekserve_router_requests_total{{code=\"{}\"}} {}\n", code, n);
    }
    sources = sources_;
  }
  header(out, "seekserve_router_retries_total", "counter",
         "Attempts on another backend after a failed, refused or overloaded one.");
  out += fmt::format("seekserve_router_retries_total {}\n", retries_.load());
  header(out, "seekserve_router_client_disconnects_total", "counter",
         "Clients that went away before their reply ended.");
  out += fmt::format("seekserve_router_client_disconnects_total {}\n", disconnects_.load());

  size_t routable = 0;
  for (const BackendSnapshot& b : backends)
    if (b.healthy && !b.ejected && !b.draining) ++routable;
  header(out, "seekserve_router_replicas", "gauge", "Backends known to the router.");
  out += fmt::format("seekserve_router_replicas {}\n", backends.size());
  header(out, "seekserve_router_healthy_replicas", "gauge",
         "Backends that are healthy, not ejected and not draining.");
  out += fmt::format("seekserve_router_healthy_replicas {}\n", routable);

  auto per_backend = [&](const char* name, const char* type, const char* help, auto value) {
    header(out, name, type, help);
    for (const BackendSnapshot& b : backends)
      out += fmt::format("{}{{backend=\"{}\"}} {}\n", name, label(b.url), value(b));
  };
  per_backend("seekserve_router_backend_in_flight", "gauge",
              "Requests the router has open on the backend.",
              [](const BackendSnapshot& b) { return b.in_flight; });
  per_backend("seekserve_router_backend_healthy", "gauge",
              "1 when the backend's active health checks pass.",
              [](const BackendSnapshot& b) { return b.healthy ? 1 : 0; });
  per_backend("seekserve_router_backend_ejected", "gauge",
              "1 while the backend is ejected after consecutive failures.",
              [](const BackendSnapshot& b) { return b.ejected ? 1 : 0; });
  per_backend("seekserve_router_backend_draining", "gauge",
              "1 while the backend gets no new requests (scale-down).",
              [](const BackendSnapshot& b) { return b.draining ? 1 : 0; });
  per_backend("seekserve_router_backend_ejections_total", "counter",
              "Times the backend was ejected.",
              [](const BackendSnapshot& b) { return b.ejections; });
  per_backend("seekserve_router_backend_health_check_failures_total", "counter",
              "Failed active health checks of the backend.",
              [](const BackendSnapshot& b) { return b.health_checks_failed; });

  header(out, "seekserve_router_backend_requests_total", "counter",
         "Attempts on the backend by outcome: ok (below 500, not 429), overloaded (429), failed "
         "(connect error, reset, timeout, 5xx).");
  for (const BackendSnapshot& b : backends) {
    const std::string l = label(b.url);
    out +=
        fmt::format("seekserve_router_backend_requests_total{{backend=\"{}\",outcome=\"ok\"}} {}\n",
                    l, b.requests_ok);
    out += fmt::format(
        "seekserve_router_backend_requests_total{{backend=\"{}\",outcome=\"overloaded\"}} {}\n", l,
        b.requests_overloaded);
    out += fmt::format(
        "seekserve_router_backend_requests_total{{backend=\"{}\",outcome=\"failed\"}} {}\n", l,
        b.requests_failed);
  }

  header(out, "seekserve_router_backend_latency_seconds", "histogram",
         "Time from sending a request to the backend to the end of its reply.");
  for (const BackendSnapshot& b : backends) {
    const std::string l = label(b.url);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBackendLatencyBucketCount; ++i) {
      cumulative += b.latency_buckets[i];
      const std::string le = i + 1 < kBackendLatencyBucketCount
                                 ? fmt::format("{}", kBackendLatencyBuckets[i])
                                 : "+Inf";
      out += fmt::format(
          "seekserve_router_backend_latency_seconds_bucket{{backend=\"{}\",le=\"{}\"}} {}\n", l, le,
          cumulative);
    }
    out += fmt::format("seekserve_router_backend_latency_seconds_sum{{backend=\"{}\"}} {}\n", l,
                       b.latency_sum_s);
    out += fmt::format("seekserve_router_backend_latency_seconds_count{{backend=\"{}\"}} {}\n", l,
                       b.latency_count);
  }
  for (const auto& source : sources) source(out);
  return out;
}

}  // namespace seekserve
