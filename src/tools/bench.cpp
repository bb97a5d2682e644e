// `seekserve bench`: a load generator for any OpenAI-compatible endpoint (docs/BENCH.md).

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "formats/model_tokenizer.h"
#include "formats/tokenizer.h"
#include "tools/bench_metrics.h"
#include "tools/bench_run.h"
#include "tools/bench_workload.h"
#include "tools/command.h"
#include "tools/loadgen_client.h"

namespace seekserve {
namespace {

using nlohmann::json;

struct BenchOptions {
  std::string url, endpoint = "completions", model, api_key;
  int64_t concurrency = 0;
  double rate = 0;
  std::string arrival = "poisson";
  int64_t num_requests = 0;
  double duration = 0;
  int64_t warmup = 2;
  std::string input_len = "128", output_len = "32";
  int64_t prefix_groups = 0, prefix_len = 0;
  std::string priority_mix, dataset, tokenizer_file, tokenizer_model;
  bool no_ignore_eos = false, no_stream = false;
  double temperature = -1;
  uint64_t seed = 0;
  double timeout = 300;
  std::string slo, json_path, sweep, svg_path = "bench-sweep.svg", progress = "auto";
  double max_failure_ratio = 0;
};

struct Sweep {
  std::string parameter;  // "concurrency" or "rate"
  std::vector<double> values;
};

Result<Sweep> parse_sweep(const std::string& text) {
  Sweep s;
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    return invalid_argument("--sweep: '{}' is not concurrency=1,2,4 or rate=1,5,10", text);
  }
  s.parameter = text.substr(0, eq);
  if (s.parameter != "concurrency" && s.parameter != "rate") {
    return invalid_argument("--sweep: '{}' is not concurrency or rate", s.parameter);
  }
  size_t start = eq + 1;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(start, comma - start);
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(item, &used);
      if (used != item.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      return invalid_argument("--sweep: '{}' is not a number", item);
    }
    if (!(v > 0) || (s.parameter == "concurrency" && v != static_cast<int64_t>(v))) {
      return invalid_argument("--sweep: {} must be a positive {}", item,
                              s.parameter == "concurrency" ? "integer" : "number");
    }
    s.values.push_back(v);
    start = comma + 1;
  }
  return s;
}

std::string label_of(const LoadShape& shape) {
  if (shape.rate > 0) {
    return fmt::format("rate={}/s{}", shape.rate, shape.poisson ? "" : " constant");
  }
  return fmt::format("concurrency={}", shape.concurrency);
}

// GET /v1/models: the served model's id, and a check that the target speaks OpenAI at all.
Result<std::string> probe_model(boost::asio::io_context& io, LoadgenClient& client,
                                double timeout_s) {
  LoadgenRequest req;
  req.method = "GET";
  req.path = client.url().base_path + "/v1/models";
  req.timeout_s = timeout_s;
  std::string body;
  LoadgenOutcome outcome;
  LoadgenCallbacks cb;
  cb.on_body = [&body](std::string_view b) {
    if (body.size() < (1 << 20)) body.append(b);
  };
  cb.on_done = [&outcome](const LoadgenOutcome& o) { outcome = o; };
  client.send(std::move(req), std::move(cb));
  io.restart();
  io.run();
  const std::string where = fmt::format("http://{}:{}", client.url().host, client.url().port);
  if (!outcome.error.empty()) return io_error("{}: {}", where, outcome.error);
  json j = json::parse(body, nullptr, false);
  if (outcome.status != 200 || j.is_discarded() || !j.is_object() || !j.contains("data") ||
      !j["data"].is_array() || j["data"].empty() || !j["data"][0].is_object() ||
      !j["data"][0].contains("id") || !j["data"][0]["id"].is_string()) {
    return io_error(
        "{} does not look like an OpenAI-compatible server: GET /v1/models answered HTTP {} "
        "'{}' (give --model NAME to skip this check)",
        where, outcome.status, one_line_excerpt(body, 80));
  }
  return j["data"][0]["id"].get<std::string>();
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return io_error("cannot write {}", path);
  out << text;
  out.close();
  if (!out) return io_error("cannot write {}", path);
  return Status::ok_status();
}

Status run_bench(const BenchOptions& o) {
  // Everything about the input is checked before any request goes out.
  SEEK_ASSIGN_OR_RETURN(HttpUrl url, parse_http_url(o.url));
  if (o.endpoint != "chat" && o.endpoint != "completions") {
    return invalid_argument("--endpoint: '{}' is not chat or completions", o.endpoint);
  }
  if (o.arrival != "poisson" && o.arrival != "constant") {
    return invalid_argument("--arrival: '{}' is not poisson or constant", o.arrival);
  }
  if (o.concurrency < 0 || o.rate < 0 || o.num_requests < 0 || o.duration < 0 || o.warmup < 0 ||
      !(o.timeout > 0) || o.prefix_groups < 0 || o.prefix_len < 0 || o.max_failure_ratio < 0) {
    return invalid_argument("counts, rates, durations and timeouts must not be negative");
  }
  if ((o.prefix_groups > 0) != (o.prefix_len > 0)) {
    return invalid_argument("--prefix-groups and --prefix-len go together");
  }
  std::optional<Sweep> sweep;
  if (!o.sweep.empty()) {
    SEEK_ASSIGN_OR_RETURN(sweep, parse_sweep(o.sweep));
  }
  WorkloadOptions w;
  w.chat = o.endpoint == "chat";
  SEEK_ASSIGN_OR_RETURN(w.input_len, parse_length_spec(o.input_len, "--input-len"));
  SEEK_ASSIGN_OR_RETURN(w.output_len, parse_length_spec(o.output_len, "--output-len"));
  w.prefix_groups = o.prefix_groups;
  w.prefix_len = o.prefix_len;
  if (!o.priority_mix.empty()) {
    SEEK_ASSIGN_OR_RETURN(w.priorities, parse_priority_mix(o.priority_mix));
  }
  w.dataset = o.dataset;
  w.ignore_eos = !o.no_ignore_eos;
  w.stream = !o.no_stream;
  if (o.temperature >= 0) w.temperature = o.temperature;
  w.seed = o.seed;
  Slo slo;
  if (!o.slo.empty()) {
    SEEK_ASSIGN_OR_RETURN(slo, parse_slo(o.slo));
    if (slo.tpot_s && o.no_stream) {
      return invalid_argument(
          "--slo tpot=…: TPOT is not defined with --no-stream (use ttft or e2e)");
    }
  }
  std::unique_ptr<Tokenizer> tokenizer;
  if (!o.tokenizer_file.empty() || !o.tokenizer_model.empty()) {
    Result<Tokenizer> t = !o.tokenizer_file.empty() ? Tokenizer::load_json(o.tokenizer_file)
                                                    : [&]() -> Result<Tokenizer> {
      SEEK_ASSIGN_OR_RETURN(TokenizerData data, load_model_tokenizer(o.tokenizer_model));
      return Tokenizer::create(data);
    }();
    if (!t.ok()) return t.status();
    tokenizer = std::make_unique<Tokenizer>(std::move(t).value());
  }

  LoadShape base;
  base.concurrency = o.concurrency;
  base.rate = o.rate;
  base.poisson = o.arrival == "poisson";
  base.num_requests = o.num_requests;
  base.duration_s = o.duration;
  base.warmup = o.warmup;
  base.timeout_s = o.timeout;
  if (base.rate > 0 && base.concurrency > 0) {
    return invalid_argument("give --concurrency (closed loop) or --rate (open loop), not both");
  }
  if (sweep) {
    if (sweep->parameter == "concurrency" && base.rate > 0) {
      return invalid_argument("--sweep concurrency=… is a closed loop: drop --rate");
    }
    if (sweep->parameter == "rate" && base.concurrency > 0) {
      return invalid_argument("--sweep rate=… is an open loop: drop --concurrency");
    }
  } else if (base.rate == 0 && base.concurrency == 0) {
    base.concurrency = 1;
  }
  if (base.num_requests == 0 && base.duration_s == 0) base.num_requests = 100;

  ProgressMode progress = ProgressMode::kNone;
  if (o.progress == "auto") {
    progress = isatty(STDERR_FILENO) ? ProgressMode::kTerminal : ProgressMode::kLines;
  } else if (o.progress == "tty") {
    progress = ProgressMode::kTerminal;
  } else if (o.progress == "lines") {
    progress = ProgressMode::kLines;
  } else if (o.progress != "none") {
    return invalid_argument("--progress: '{}' is not auto, tty, lines or none", o.progress);
  }

  boost::asio::io_context io;
  LoadgenClient client(io, url, o.api_key);
  SEEK_RETURN_IF_ERROR(client.resolve());
  w.model = o.model;
  if (w.model.empty()) {
    SEEK_ASSIGN_OR_RETURN(w.model, probe_model(io, client, std::min(o.timeout, 30.0)));
  }
  SEEK_ASSIGN_OR_RETURN(std::unique_ptr<Workload> workload, Workload::create(w, tokenizer.get()));

  json config = {{"url", o.url},
                 {"endpoint", workload->path()},
                 {"model", w.model},
                 {"input_len", o.input_len},
                 {"output_len", o.output_len},
                 {"input_len_exact", tokenizer != nullptr && o.dataset.empty()},
                 {"prefix_groups", o.prefix_groups},
                 {"prefix_len", o.prefix_len},
                 {"priority_mix", o.priority_mix},
                 {"dataset", o.dataset},
                 {"ignore_eos", w.ignore_eos},
                 {"stream", w.stream},
                 {"num_requests", base.num_requests},
                 {"duration_s", base.duration_s},
                 {"warmup", base.warmup},
                 {"timeout_s", base.timeout_s},
                 {"arrival", o.arrival},
                 {"seed", o.seed},
                 {"slo", o.slo}};

  std::vector<LoadShape> shapes;
  if (sweep) {
    for (size_t i = 0; i < sweep->values.size(); ++i) {
      LoadShape s = base;
      if (sweep->parameter == "concurrency") {
        s.concurrency = static_cast<int64_t>(sweep->values[i]);
        s.rate = 0;
      } else {
        s.rate = sweep->values[i];
        s.concurrency = 0;
      }
      if (i > 0) s.warmup = 0;  // the first level's warm-up warms the server for all
      shapes.push_back(s);
    }
  } else {
    shapes.push_back(base);
  }

  std::vector<BenchSummary> levels;
  int64_t next_index = 0;
  bool aborted = false;
  std::string abort_reason;
  for (LoadShape& shape : shapes) {
    shape.label = label_of(shape);
    RunResult run = run_load(io, client, *workload, shape, next_index, progress);
    next_index += static_cast<int64_t>(run.records.size());
    BenchSummary s = summarize(run.records, run.duration_s, slo);
    s.label = shape.label;
    add_warmup(s, run.warmup);
    s.aborted = run.aborted;
    s.abort_reason = run.abort_reason;
    s.cancelled = run.cancelled;
    const std::string table = format_summary(s, slo);
    std::fwrite(table.data(), 1, table.size(), stdout);
    std::fflush(stdout);
    levels.push_back(std::move(s));
    if (run.aborted) {
      aborted = true;
      abort_reason = run.abort_reason;
      break;
    }
  }

  json out;
  if (sweep) {
    const std::string sweep_table = format_sweep_table(levels);
    std::fwrite(sweep_table.data(), 1, sweep_table.size(), stdout);
    const std::string title =
        fmt::format("{} {} — {} sweep", w.model, workload->path(), sweep->parameter);
    SEEK_RETURN_IF_ERROR(write_file(o.svg_path, sweep_svg(levels, title)));
    std::printf("chart: %s\n", o.svg_path.c_str());
    out = {{"config", config},
           {"sweep", {{"parameter", sweep->parameter}, {"values", sweep->values}}},
           {"svg", o.svg_path},
           {"levels", json::array()}};
    for (const BenchSummary& s : levels) out["levels"].push_back(summary_to_json(s));
  } else {
    out = summary_to_json(levels.front());
    out["config"] = config;
  }
  out["aborted"] = aborted;
  out["abort_reason"] = abort_reason;
  if (!o.json_path.empty()) {
    SEEK_RETURN_IF_ERROR(write_file(o.json_path, out.dump(2) + "\n"));
  }
  if (aborted) {
    return io_error("{} ({}): figures above are partial", abort_reason, o.url);
  }
  int64_t failed = 0, total = 0;
  for (const BenchSummary& s : levels) {
    failed += s.failed;
    total += s.failed + s.completed;
  }
  if (failed > 0 &&
      static_cast<double>(failed) > o.max_failure_ratio * static_cast<double>(total)) {
    return io_error("{} of {} requests failed (allowed: --max-failure-ratio {})", failed, total,
                    o.max_failure_ratio);
  }
  return Status::ok_status();
}

}  // namespace

void add_bench_command(CLI::App& app, CommandContext& ctx) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Load generator for an OpenAI-compatible server: TTFT, TPOT, ITL, e2e, throughput");
  sub->add_option("--url", o->url, "Server base URL, http://HOST:PORT")->required();
  sub->add_option("--endpoint", o->endpoint, "chat (/v1/chat/completions) or completions")
      ->capture_default_str();
  sub->add_option("--model", o->model, "Model id to request (default: the first of /v1/models)");
  sub->add_option("--api-key", o->api_key, "Sent as Authorization: Bearer KEY")
      ->envname("OPENAI_API_KEY");
  sub->add_option("-c,--concurrency", o->concurrency,
                  "Closed loop: clients each sending the next request when one ends (default 1)");
  sub->add_option("-r,--rate", o->rate, "Open loop: requests per second regardless of answers");
  sub->add_option("--arrival", o->arrival, "Open-loop arrivals: poisson or constant")
      ->capture_default_str();
  sub->add_option("-n,--num-requests", o->num_requests,
                  "Measured requests (default 100 unless --duration)");
  sub->add_option("--duration", o->duration, "Seconds to keep sending (answers are awaited)");
  sub->add_option("--warmup", o->warmup, "Requests sent first and left out of the figures")
      ->capture_default_str();
  sub->add_option("--input-len", o->input_len,
                  "Prompt tokens: N or MIN:MAX (uniform); exact with --tokenizer/-m")
      ->capture_default_str();
  sub->add_option("--output-len", o->output_len, "max_tokens: N or MIN:MAX (uniform)")
      ->capture_default_str();
  sub->add_option("--prefix-groups", o->prefix_groups,
                  "Shared-prefix workload: N distinct prefixes, requests cycle through them");
  sub->add_option("--prefix-len", o->prefix_len, "Tokens of each shared prefix (of --input-len)");
  sub->add_option("--priority-mix", o->priority_mix,
                  "Per-request priority by ratio, PRIORITY:WEIGHT,... (e.g. 0:3,10:1)");
  sub->add_option("--dataset", o->dataset,
                  "JSONL of {\"prompt\": ...} or {\"messages\": [...]} (optional max_tokens, "
                  "priority); replaces synthetic prompts");
  auto* tf = sub->add_option("--tokenizer", o->tokenizer_file,
                             "tokenizer.json that makes --input-len token-exact");
  auto* tm = sub->add_option("-m,--tokenizer-model", o->tokenizer_model,
                             "Model folder or GGUF whose tokenizer makes --input-len token-exact");
  tf->excludes(tm);
  tm->excludes(tf);
  sub->add_flag("--no-ignore-eos", o->no_ignore_eos,
                "Do not send ignore_eos (outputs may end before --output-len)");
  sub->add_flag("--no-stream", o->no_stream,
                "Non-streaming requests (one JSON answer): TTFT = E2EL, no TPOT or ITL");
  sub->add_option("--temperature", o->temperature, "Sampling temperature to send");
  sub->add_option("--seed", o->seed, "Seed of the synthetic prompts and arrivals")
      ->capture_default_str();
  sub->add_option("--timeout", o->timeout, "Seconds one request may take")->capture_default_str();
  sub->add_option("--slo", o->slo, "Goodput SLO, e.g. ttft=500ms,tpot=50ms[,e2e=2s]");
  sub->add_option("--json", o->json_path, "Write every figure as JSON to FILE");
  sub->add_option("--sweep", o->sweep,
                  "Run each level: concurrency=1,2,4,8 or rate=1,5,10; draws --svg");
  sub->add_option("--svg", o->svg_path, "Sweep chart (throughput vs P50/P99 latency)")
      ->capture_default_str();
  sub->add_option("--progress", o->progress, "auto (a live line on a terminal), tty, lines, none")
      ->capture_default_str();
  sub->add_option("--max-failure-ratio", o->max_failure_ratio,
                  "Exit 0 while failed/total is at most this (e.g. 0.5 when 429s are expected)")
      ->capture_default_str();
  sub->callback([o, &ctx] { ctx.exit_code = exit_code_for(run_bench(*o)); });
}

}  // namespace seekserve
