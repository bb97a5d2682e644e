#include "tools/bench_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace seekserve {

using nlohmann::json;

Result<Slo> parse_slo(const std::string& text) {
  Slo slo;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(start, comma - start);
    start = comma + 1;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return invalid_argument("--slo: '{}' is not NAME=TIME", item);
    const std::string name = item.substr(0, eq);
    std::string value = item.substr(eq + 1);
    double scale = 1;
    for (auto [suffix, s] : {std::pair{"ms", 1e-3}, std::pair{"us", 1e-6}, std::pair{"s", 1.0}}) {
      const std::string suf = suffix;
      if (value.size() > suf.size() &&
          value.compare(value.size() - suf.size(), suf.size(), suf) == 0) {
        value.resize(value.size() - suf.size());
        scale = s;
        break;
      }
    }
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(value, &used);
      if (used != value.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      return invalid_argument("--slo: '{}' is not a time (500ms, 2s)", item);
    }
    if (!(v > 0)) return invalid_argument("--slo: '{}' must be positive", item);
    v *= scale;
    if (name == "ttft") {
      slo.ttft_s = v;
    } else if (name == "tpot") {
      slo.tpot_s = v;
    } else if (name == "e2e" || name == "e2el") {
      slo.e2e_s = v;
    } else {
      return invalid_argument("--slo: unknown figure '{}' (ttft, tpot, e2e)", name);
    }
  }
  if (slo.empty()) return invalid_argument("--slo: empty");
  return slo;
}

double percentile_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Distribution distribution_of(std::vector<double> values) {
  Distribution d;
  d.n = values.size();
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double ss = 0;
  for (double v : values) ss += (v - d.mean) * (v - d.mean);
  d.std = std::sqrt(ss / n);  // population std, as numpy.std
  d.min = values.front();
  d.max = values.back();
  d.median = percentile_sorted(values, 50);
  d.p90 = percentile_sorted(values, 90);
  d.p99 = percentile_sorted(values, 99);
  return d;
}

namespace {
double tpot_of(const RequestRecord& r) {
  if (!r.streamed || r.output_tokens <= 1 || r.ttft_s < 0) return -1;
  return (r.e2e_s - r.ttft_s) / static_cast<double>(r.output_tokens - 1);
}
std::string failure_key(const RequestRecord& r) {
  if (!r.error.empty()) return r.error;
  return fmt::format("HTTP {}", r.http_status);
}
}  // namespace

BenchSummary summarize(const std::vector<RequestRecord>& records, double duration_s,
                       const Slo& slo) {
  BenchSummary s;
  s.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  std::map<int, std::pair<std::vector<double>, std::vector<double>>> prio;
  int64_t good = 0;
  s.streamed = records.empty() || std::any_of(records.begin(), records.end(),
                                              [](const RequestRecord& r) { return r.streamed; });
  for (const RequestRecord& r : records) {
    if (!r.ok) {
      ++s.failed;
      ++s.failures[failure_key(r)];
      if (!r.detail.empty()) s.failure_examples.emplace(failure_key(r), r.detail);
      continue;
    }
    ++s.completed;
    ++s.completed_by_status[r.http_status];
    s.input_tokens += r.prompt_tokens;
    s.output_tokens += r.output_tokens;
    s.usage_from_server = s.usage_from_server && r.usage_from_server;
    if (r.ttft_s >= 0) ttft.push_back(r.ttft_s);
    const double t = tpot_of(r);
    if (t >= 0) tpot.push_back(t);
    itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
    e2e.push_back(r.e2e_s);
    if (r.ttft_s >= 0) prio[r.priority].first.push_back(r.ttft_s);
    prio[r.priority].second.push_back(r.e2e_s);
    bool meets = true;
    if (slo.ttft_s) meets = meets && r.ttft_s >= 0 && r.ttft_s <= *slo.ttft_s;
    if (slo.tpot_s) meets = meets && std::max(t, 0.0) <= *slo.tpot_s;
    if (slo.e2e_s) meets = meets && r.e2e_s <= *slo.e2e_s;
    if (meets) ++good;
  }
  const double d = duration_s > 0 ? duration_s : 1e-9;
  s.request_throughput = static_cast<double>(s.completed) / d;
  s.input_throughput = static_cast<double>(s.input_tokens) / d;
  s.output_throughput = static_cast<double>(s.output_tokens) / d;
  s.total_token_throughput = static_cast<double>(s.input_tokens + s.output_tokens) / d;
  if (!slo.empty()) s.goodput = static_cast<double>(good) / d;
  s.ttft = distribution_of(std::move(ttft));
  s.tpot = distribution_of(std::move(tpot));
  s.itl = distribution_of(std::move(itl));
  s.e2e = distribution_of(std::move(e2e));
  if (prio.size() > 1) {
    for (auto& [p, v] : prio) {
      s.by_priority[p] = {distribution_of(std::move(v.first)),
                          distribution_of(std::move(v.second))};
    }
  }
  return s;
}

void add_warmup(BenchSummary& s, const std::vector<RequestRecord>& warmup) {
  for (const RequestRecord& r : warmup) {
    if (r.ok) {
      ++s.warmup_completed;
      s.warmup_input_tokens += r.prompt_tokens;
      s.warmup_output_tokens += r.output_tokens;
    } else {
      ++s.warmup_failed;
    }
  }
}

namespace {
json dist_json(const Distribution& d) {
  return {{"n", d.n},           {"mean", d.mean * 1e3},     {"std", d.std * 1e3},
          {"min", d.min * 1e3}, {"median", d.median * 1e3}, {"p50", d.median * 1e3},
          {"p90", d.p90 * 1e3}, {"p99", d.p99 * 1e3},       {"max", d.max * 1e3}};
}
}  // namespace

json summary_to_json(const BenchSummary& s) {
  json j;
  j["label"] = s.label;
  j["duration_s"] = s.duration_s;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["failures"] = json::object();
  for (const auto& [k, v] : s.failures) j["failures"][k] = v;
  j["failure_examples"] = json::object();
  for (const auto& [k, v] : s.failure_examples) j["failure_examples"][k] = v;
  j["completed_by_status"] = json::object();
  for (const auto& [k, v] : s.completed_by_status) j["completed_by_status"][std::to_string(k)] = v;
  j["total_input_tokens"] = s.input_tokens;
  j["total_output_tokens"] = s.output_tokens;
  j["token_counts_from_server_usage"] = s.usage_from_server;
  j["request_throughput"] = s.request_throughput;
  j["input_token_throughput"] = s.input_throughput;
  j["output_token_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_token_throughput;
  j["goodput"] = s.goodput ? json(*s.goodput) : json(nullptr);
  j["ttft_ms"] = dist_json(s.ttft);
  j["streamed"] = s.streamed;
  j["tpot_ms"] = s.streamed ? dist_json(s.tpot) : json(nullptr);  // not defined without a stream
  j["itl_ms"] = s.streamed ? dist_json(s.itl) : json(nullptr);
  j["e2e_ms"] = dist_json(s.e2e);
  j["by_priority"] = json::object();
  for (const auto& [p, d] : s.by_priority) {
    j["by_priority"][std::to_string(p)] = {{"ttft_ms", dist_json(d.first)},
                                           {"e2e_ms", dist_json(d.second)}};
  }
  j["warmup"] = {{"completed", s.warmup_completed},
                 {"failed", s.warmup_failed},
                 {"input_tokens", s.warmup_input_tokens},
                 {"output_tokens", s.warmup_output_tokens}};
  j["aborted"] = s.aborted;
  j["abort_reason"] = s.abort_reason;
  j["cancelled"] = s.cancelled;
  return j;
}

std::string format_summary(const BenchSummary& s, const Slo& slo) {
  std::string out;
  auto row = [&out](const std::string& name, const std::string& value) {
    out += fmt::format("{:<40}{:>14}\n", name, value);
  };
  auto section = [&out](const std::string& title) { out += fmt::format("{:-^54}\n", title); };
  out += fmt::format("{:=^54}\n", " Serving Benchmark Result ");
  if (!s.label.empty()) row("Load:", s.label);
  row("Successful requests:", std::to_string(s.completed));
  row("Failed requests:", std::to_string(s.failed));
  for (const auto& [reason, n] : s.failures) {
    auto ex = s.failure_examples.find(reason);
    out += fmt::format("  {:>6} × {}{}\n", n, reason,
                       ex == s.failure_examples.end() ? "" : " (" + ex->second + ")");
  }
  row("Benchmark duration (s):", fmt::format("{:.2f}", s.duration_s));
  row("Total input tokens:", std::to_string(s.input_tokens));
  row("Total generated tokens:", std::to_string(s.output_tokens));
  row("Request throughput (req/s):", fmt::format("{:.2f}", s.request_throughput));
  if (s.goodput) row("Request goodput (req/s):", fmt::format("{:.2f}", *s.goodput));
  row("Input token throughput (tok/s):", fmt::format("{:.2f}", s.input_throughput));
  row("Output token throughput (tok/s):", fmt::format("{:.2f}", s.output_throughput));
  row("Total token throughput (tok/s):", fmt::format("{:.2f}", s.total_token_throughput));
  auto dist = [&](const char* title, const char* name, const Distribution& d) {
    section(title);
    row(fmt::format("Mean {} (ms):", name), fmt::format("{:.2f}", d.mean * 1e3));
    row(fmt::format("Median {} (ms):", name), fmt::format("{:.2f}", d.median * 1e3));
    row(fmt::format("P90 {} (ms):", name), fmt::format("{:.2f}", d.p90 * 1e3));
    row(fmt::format("P99 {} (ms):", name), fmt::format("{:.2f}", d.p99 * 1e3));
  };
  dist("Time to First Token", "TTFT", s.ttft);
  if (s.streamed) {
    dist("Time per Output Token (excl. 1st token)", "TPOT", s.tpot);
    dist("Inter-token Latency", "ITL", s.itl);
  } else {
    section("Time per Output Token (excl. 1st token)");
    row("TPOT (ms):", "n/a");
    section("Inter-token Latency");
    row("ITL (ms):", "n/a");
    out += "(--no-stream: one answer per request, so TTFT = E2EL; TPOT and ITL are not defined)\n";
  }
  dist("End-to-end Latency", "E2EL", s.e2e);
  if (!s.by_priority.empty()) {
    section("By priority (median / P99 ms)");
    for (const auto& [p, d] : s.by_priority) {
      row(fmt::format("priority {} TTFT / E2EL:", p),
          fmt::format("{:.0f}/{:.0f} {:.0f}/{:.0f}", d.first.median * 1e3, d.first.p99 * 1e3,
                      d.second.median * 1e3, d.second.p99 * 1e3));
    }
  }
  if (!slo.empty()) {
    std::string text;
    if (slo.ttft_s) text += fmt::format(" ttft<={}ms", *slo.ttft_s * 1e3);
    if (slo.tpot_s) text += fmt::format(" tpot<={}ms", *slo.tpot_s * 1e3);
    if (slo.e2e_s) text += fmt::format(" e2e<={}ms", *slo.e2e_s * 1e3);
    out += "SLO:" + text + "\n";
  }
  if (!s.usage_from_server && s.completed > 0) {
    out += "note: some answers carried no usage; their tokens were counted as text chunks\n";
  }
  if (s.warmup_completed + s.warmup_failed > 0) {
    out += fmt::format("warm-up (excluded): {} completed, {} failed\n", s.warmup_completed,
                       s.warmup_failed);
  }
  if (s.aborted) {
    out += fmt::format("ABORTED: {} ({} in flight cancelled)\n", s.abort_reason, s.cancelled);
  }
  out += fmt::format("{:=^54}\n", "");
  return out;
}

std::string format_sweep_table(const std::vector<BenchSummary>& levels) {
  std::string out =
      fmt::format("{:<24}{:>6}{:>6}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10}\n", "level", "ok", "fail",
                  "req/s", "out tok/s", "TTFT p50", "TTFT p99", "E2E p50", "E2E p99");
  for (const BenchSummary& s : levels) {
    out += fmt::format("{:<24}{:>6}{:>6}{:>9.2f}{:>10.1f}{:>10.1f}{:>10.1f}{:>10.1f}{:>10.1f}\n",
                       s.label, s.completed, s.failed, s.request_throughput, s.output_throughput,
                       s.ttft.median * 1e3, s.ttft.p99 * 1e3, s.e2e.median * 1e3, s.e2e.p99 * 1e3);
  }
  out += "(latencies in ms)\n";
  return out;
}

namespace {
std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}
// A "nice" axis maximum and step: 1, 2 or 5 × 10^k.
std::pair<double, double> nice_axis(double max_value) {
  if (!(max_value > 0)) max_value = 1;
  const double raw = max_value / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  return {step * std::ceil(max_value / step), step};
}
std::string tick(double v) {
  if (v == std::floor(v)) return fmt::format("{:.0f}", v);
  return fmt::format("{:g}", v);
}
}  // namespace

std::string sweep_svg(const std::vector<BenchSummary>& levels, const std::string& title) {
  constexpr double kW = 720, kH = 440, kL = 80, kR = 170, kT = 50, kB = 60;
  const double pw = kW - kL - kR, ph = kH - kT - kB;
  double xmax = 0, ymax = 0;
  for (const BenchSummary& s : levels) {
    xmax = std::max(xmax, s.request_throughput);
    ymax = std::max({ymax, s.e2e.p99 * 1e3, s.ttft.p99 * 1e3});
  }
  auto [xtop, xstep] = nice_axis(xmax);
  auto [ytop, ystep] = nice_axis(ymax);
  auto px = [&](double x) { return kL + x / xtop * pw; };
  auto py = [&](double y) { return kT + ph - y / ytop * ph; };
  std::string svg = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">{3}</text>\n",
      kW, kH, kL + pw / 2, xml_escape(title));
  // Grid and ticks.
  for (double y = 0; y <= ytop + ystep / 2; y += ystep) {
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        kL, py(y), kL + pw, kL - 6, py(y) + 4, tick(y));
  }
  for (double x = 0; x <= xtop + xstep / 2; x += xstep) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#eee\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        px(x), kT, kT + ph, kT + ph + 18, tick(x));
  }
  svg += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n"
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">request throughput (req/s)</text>\n"
      "<text transform=\"translate(20,{}) rotate(-90)\" text-anchor=\"middle\">latency "
      "(ms)</text>\n",
      kL, kT, pw, ph, kL + pw / 2, kH - 16, kT + ph / 2);
  struct Series {
    const char* name;
    const char* color;
    const char* dash;
    double (*value)(const BenchSummary&);
  };
  const Series series[] = {
      {"E2E P50", "#1f77b4", "", [](const BenchSummary& s) { return s.e2e.median * 1e3; }},
      {"E2E P99", "#d62728", "", [](const BenchSummary& s) { return s.e2e.p99 * 1e3; }},
      {"TTFT P50", "#2ca02c", "6,4", [](const BenchSummary& s) { return s.ttft.median * 1e3; }},
      {"TTFT P99", "#ff7f0e", "6,4", [](const BenchSummary& s) { return s.ttft.p99 * 1e3; }},
  };
  int legend = 0;
  for (const Series& se : series) {
    std::string points;
    for (const BenchSummary& s : levels) {
      points += fmt::format("{:.1f},{:.1f} ", px(s.request_throughput), py(se.value(s)));
    }
    svg += fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\" "
        "points=\"{}\"/>\n",
        se.color, *se.dash ? se.dash : "none", points);
    for (const BenchSummary& s : levels) {
      svg += fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"><title>{}: "
          "{:.1f} ms at {:.2f} req/s</title></circle>\n",
          px(s.request_throughput), py(se.value(s)), se.color, xml_escape(s.label), se.value(s),
          s.request_throughput);
    }
    const double ly = kT + 10 + 20 * legend++;
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\" "
        "stroke-dasharray=\"{4}\"/><text x=\"{5}\" y=\"{6}\">{7}</text>\n",
        kL + pw + 14, ly, kL + pw + 44, se.color, *se.dash ? se.dash : "none", kL + pw + 50, ly + 4,
        se.name);
  }
  // Level labels beside the P99 E2E points.
  for (const BenchSummary& s : levels) {
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" fill=\"#555\">{}</text>\n",
                       px(s.request_throughput) + 5, py(s.e2e.p99 * 1e3) - 6, xml_escape(s.label));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace seekserve
