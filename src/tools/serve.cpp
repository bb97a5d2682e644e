// serve: the OpenAI-compatible server. Options come from one table (the CLI11 options below):
// defaults, then a YAML file (--config), then SEEKSERVE_* environment variables, then flags.

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <yaml-cpp/yaml.h>

#include "core/log.h"
#include "engine/engine.h"
#include "formats/chat_template.h"
#include "model/model_weights.h"
#include "server/http_server.h"
#include "tools/command.h"
#include "tools/make_model.h"

namespace seekserve {
namespace {

struct ServeOptions {
  std::string config;
  std::string model;
  std::string served_model_name;
  std::string host = "127.0.0.1";
  int port = 8000;
  int threads = 0;
  std::string api_key;
  int64_t max_num_batched_tokens = 4096;
  int64_t max_num_seqs = 32;
  int64_t max_num_seqs_limit = 0;
  int max_n = 16;
  double max_step_ms = 250;
  std::string scheduling_policy = "priority";
  int64_t max_queue = 256;
  int64_t max_queue_tokens = 0;
  int64_t kv_blocks = 0;
  std::string kv_memory = "1GiB";
  std::string kv_dtype = "f32";
  int64_t block_size = 16;
  bool prefix_cache = true;
  std::string chat_template;
  double request_timeout = 600;
  std::string priority_range = "0:100";
  std::string api_key_file;
  int64_t max_body_bytes = 8 << 20;
  int http_threads = 0;
  double drain_timeout = 30;
  std::string log_level = "info";
};

// "1GiB", "512MiB", "2G", "1000000" -> bytes.
Result<uint64_t> parse_bytes(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return invalid_argument("--kv-memory: '{}' is not a size (like 2GiB or 512MiB)", text);
  }
  std::string unit = text.substr(used);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  double mult = 1;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "KB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MiB" || unit == "MB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB" || unit == "GB")
    mult = 1024.0 * 1024 * 1024;
  else
    return invalid_argument("--kv-memory: unknown unit '{}' in '{}'", unit, text);
  if (!(v > 0)) return invalid_argument("--kv-memory: '{}' must be positive", text);
  return static_cast<uint64_t>(v * mult);
}

uint64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

// Applies YAML values to options not given as flags or environment variables.
Status apply_config_file(CLI::App* sub, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return invalid_argument("--config {}: {}", path, e.what());
  }
  if (!root.IsMap()) return invalid_argument("--config {}: expected a map of option: value", path);
  for (const auto& kv : root) {
    std::string key = kv.first.as<std::string>();
    std::replace(key.begin(), key.end(), '_', '-');
    CLI::Option* opt = nullptr;
    try {
      opt = sub->get_option("--" + key);
    } catch (const std::exception&) {
      return invalid_argument("--config {}: unknown option '{}'", path, key);
    }
    if (key == "config" || opt->count() > 0) continue;  // flags and env win
    if (!kv.second.IsScalar())
      return invalid_argument("--config {}: '{}' must be a single value", path, key);
    try {
      opt->add_result(kv.second.as<std::string>());
      opt->run_callback();
    } catch (const std::exception& e) {
      return invalid_argument("--config {}: {}: {}", path, key, e.what());
    }
  }
  return Status::ok_status();
}

std::string default_model_name(const std::string& path) {
  std::filesystem::path p(path);
  if (!p.has_filename()) p = p.parent_path();
  std::string name = p.filename().string();
  if (name.ends_with(".gguf")) name.resize(name.size() - 5);
  return name.empty() ? "model" : name;
}

Status run_serve(ServeOptions o) {
  if (o.log_level == "debug")
    set_log_level(LogLevel::kDebug);
  else if (o.log_level == "info")
    set_log_level(LogLevel::kInfo);
  else if (o.log_level == "warn")
    set_log_level(LogLevel::kWarn);
  else if (o.log_level == "error")
    set_log_level(LogLevel::kError);
  else
    return invalid_argument("--log-level: '{}' is not debug, info, warn or error", o.log_level);
  if (o.port < 0 || o.port > 65535) return invalid_argument("--port: {} is not 0..65535", o.port);
  SEEK_ASSIGN_OR_RETURN(PriorityRange priority,
                        parse_priority_range(o.priority_range, "--priority-range"));
  std::vector<ApiKey> keys;
  if (!o.api_key.empty()) keys.push_back({o.api_key, priority, /*admin=*/true});
  if (!o.api_key_file.empty()) {
    std::ifstream in(o.api_key_file);
    if (!in) return invalid_argument("--api-key-file {}: cannot read it", o.api_key_file);
    std::stringstream text;
    text << in.rdbuf();
    SEEK_ASSIGN_OR_RETURN(std::vector<ApiKey> more,
                          parse_api_keys(text.str(), o.api_key_file, priority));
    for (ApiKey& k : more) {
      if (k.key == o.api_key)
        return invalid_argument("--api-key-file {}: repeats --api-key", o.api_key_file);
      keys.push_back(std::move(k));
    }
  }
  if (!(o.request_timeout > 0)) return invalid_argument("--request-timeout must be positive");
  SEEK_ASSIGN_OR_RETURN(SchedulingPolicy policy, scheduling_policy_from_name(o.scheduling_policy));
  auto kv_dtype = dtype_from_name(o.kv_dtype);
  if (!kv_dtype) return invalid_argument("--kv-dtype: '{}' is not f32, bf16 or fp8", o.kv_dtype);

  // Signals are handled by one thread (sigtimedwait): block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (o.model.empty()) {
    SEEK_ASSIGN_OR_RETURN(o.model, ensure_demo_model());
  }
  SEEK_ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> weights, load_model_weights(o.model));
  SEEK_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::create(weights->tokenizer));
  const ModelConfig config = weights->config;

  std::optional<ChatTemplateKind> tmpl;
  if (!o.chat_template.empty()) {
    SEEK_ASSIGN_OR_RETURN(ChatTemplateKind k, chat_template_from_name(o.chat_template));
    tmpl = k;
  } else if (tokenizer.chat_template()) {
    tmpl = detect_chat_template(*tokenizer.chat_template());
  }
  if (!tmpl)
    log_warn(
        "the model's chat template is not built in: /v1/chat/completions is off (name one "
        "with --chat-template)");

  // KV cache size: --kv-blocks, else as many blocks as --kv-memory holds.
  if (o.block_size <= 0 || o.block_size > 1024)
    return invalid_argument("--block-size: {} is not 1..1024", o.block_size);
  SEEK_ASSIGN_OR_RETURN(KvCache probe, KvCache::create(config, 1, o.block_size, *kv_dtype));
  const uint64_t block_bytes = probe.bytes_per_token() * static_cast<uint64_t>(o.block_size);
  int64_t n_blocks = o.kv_blocks;
  if (n_blocks <= 0) {
    SEEK_ASSIGN_OR_RETURN(uint64_t budget, parse_bytes(o.kv_memory));
    n_blocks = static_cast<int64_t>(budget / block_bytes);
    if (n_blocks < 1)
      return invalid_argument("--kv-memory {}: less than one KV block ({} bytes)", o.kv_memory,
                              block_bytes);
  }
  const uint64_t kv_bytes = block_bytes * static_cast<uint64_t>(n_blocks);
  const uint64_t available = mem_available_bytes();
  if (available > 0 && kv_bytes > available) {
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("the KV cache ({} blocks, {:.2f} GiB) does not fit in the {:.2f} GiB "
                              "of memory available; lower --kv-memory or --kv-blocks",
                              n_blocks, static_cast<double>(kv_bytes) / (1 << 30),
                              static_cast<double>(available) / (1 << 30)));
  }

  ThreadPool pool(o.threads);
  auto model = std::make_unique<Model>(std::move(weights), pool);
  EngineOptions eo;
  eo.max_num_batched_tokens = o.max_num_batched_tokens;
  eo.max_num_seqs = o.max_num_seqs;
  eo.max_num_seqs_limit = o.max_num_seqs_limit > 0 ? o.max_num_seqs_limit : 4 * o.max_num_seqs;
  if (eo.max_num_seqs_limit < o.max_num_seqs)
    return invalid_argument("--max-num-seqs-limit {} < --max-num-seqs {}", o.max_num_seqs_limit,
                            o.max_num_seqs);
  if (o.max_n < 1) return invalid_argument("--max-n: {} must be at least 1", o.max_n);
  // A request's n choices run at once: n is also bounded by --max-num-seqs-limit.
  o.max_n = static_cast<int>(std::min<int64_t>(o.max_n, eo.max_num_seqs_limit));
  eo.max_step_ms = o.max_step_ms;
  eo.policy = policy;
  eo.max_queue = o.max_queue;
  eo.max_queue_tokens = o.max_queue_tokens;
  eo.n_blocks = n_blocks;
  eo.block_size = o.block_size;
  eo.kv_dtype = *kv_dtype;
  eo.prefix_cache = o.prefix_cache;
  SEEK_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                        Engine::start(std::move(model), tokenizer, eo));
  log_info("KV cache: {} blocks of {} tokens ({:.1f} MiB, {}); max model length {}", n_blocks,
           o.block_size, static_cast<double>(kv_bytes) / (1 << 20), o.kv_dtype,
           engine->max_model_len());

  ApiContext api;
  api.tokenizer = &tokenizer;
  api.model_name = o.served_model_name.empty() ? default_model_name(o.model) : o.served_model_name;
  api.chat_template = tmpl;
  api.max_model_len = engine->max_model_len();
  api.priority_min = priority.min;
  api.priority_max = priority.max;
  api.max_n = o.max_n;
  api.default_timeout_s = o.request_timeout;
  HttpOptions ho;
  ho.host = o.host;
  ho.port = o.port;
  ho.api_keys = ApiKeys(std::move(keys));
  ho.max_body_bytes = o.max_body_bytes;
  ho.http_threads = o.http_threads;
  HttpServer server(*engine, api, ho);
  SEEK_ASSIGN_OR_RETURN(int port, server.bind());

  const std::string url = fmt::format("http://{}:{}", o.host, port);
  std::printf(
      "seekserve: serving '%s' at %s\n  try: curl %s/v1/chat/completions -H 'Content-Type: "
      "application/json'%s -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
      "\"Hello\"}],\"max_tokens\":32}'\n",
      api.model_name.c_str(), url.c_str(), url.c_str(),
      ho.api_keys.open() ? "" : " -H 'Authorization: Bearer $KEY'", api.model_name.c_str());
  std::fflush(stdout);

  // SIGTERM/SIGINT: drain (readiness off, new requests refused, running ones finish within
  // --drain-timeout), then stop. A second signal stops at once.
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    while (!done) {
      if (sigtimedwait(&signals, nullptr, &tick) < 0) continue;
      log_info("signal received: draining (up to {} s)", o.drain_timeout);
      server.begin_drain();
      const auto until = std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(o.drain_timeout));
      while (!done && std::chrono::steady_clock::now() < until) {
        const EngineStats st = engine->stats();
        if (st.running == 0 && st.waiting == 0 && server.in_flight() == 0) break;
        if (sigtimedwait(&signals, nullptr, &tick) >= 0) break;  // second signal
      }
      server.stop();
      return;
    }
  });
  server.run();
  done = true;
  signal_thread.join();
  log_info("stopped");
  return Status::ok_status();
}

}  // namespace

void add_serve_command(CLI::App& app, CommandContext& ctx) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* sub = app.add_subcommand(
      "serve", "Serve a model over an OpenAI-compatible HTTP API (see README, Serving)");
  auto add = [sub](const std::string& name, auto& var, const std::string& help) {
    std::string env = "SEEKSERVE_" + name;
    std::transform(env.begin(), env.end(), env.begin(),
                   [](char c) { return c == '-' ? '_' : static_cast<char>(std::toupper(c)); });
    return sub->add_option("--" + name, var, help)->capture_default_str()->envname(env);
  };
  sub->add_option("--config", o->config,
                  "YAML file of options (keys as the long flags without '--'); "
                  "SEEKSERVE_* environment variables override it, flags override both");
  add("model", o->model, "HF model folder or .gguf file (default: the demo model, tiny-v3)");
  add("served-model-name", o->served_model_name,
      "Model id clients send and /v1/models lists (default: the model's folder/file name)");
  add("host", o->host, "Address to listen on");
  add("port", o->port, "Port (0 = pick a free one and print it)");
  add("threads", o->threads, "Worker threads for the model (0 = physical cores)");
  add("api-key", o->api_key, "Require 'Authorization: Bearer KEY' on /v1/* (empty = open)");
  add("max-num-batched-tokens", o->max_num_batched_tokens, "Tokens per engine step at most");
  add("max-num-seqs", o->max_num_seqs, "Requests running (holding KV blocks) at once at most");
  add("max-num-seqs-limit", o->max_num_seqs_limit,
      "Largest max_num_seqs POST /admin/scheduler may set (0 = 4 x --max-num-seqs)");
  add("max-n", o->max_n, "Largest 'n' (choices per request) accepted");
  add("max-step-ms", o->max_step_ms,
      "Target engine step time; bounds prefill chunks so streams keep flowing");
  add("scheduling-policy", o->scheduling_policy,
      "fcfs (arrival order) or priority (request 'priority' first; may preempt running ones)");
  add("max-queue", o->max_queue, "Requests waiting at most; beyond: 429 + Retry-After");
  add("max-queue-tokens", o->max_queue_tokens,
      "Prompt tokens waiting at most; beyond: 429 (0 = no bound)");
  add("kv-blocks", o->kv_blocks, "KV cache blocks (0 = as many as --kv-memory holds)");
  add("kv-memory", o->kv_memory, "KV cache memory budget (like 2GiB, 512MiB)");
  add("kv-dtype", o->kv_dtype, "KV cache type: f32, bf16 or fp8");
  add("block-size", o->block_size, "Tokens per KV block");
  add("prefix-cache", o->prefix_cache, "Share identical prompt prefixes' KV blocks (true/false)");
  add("chat-template", o->chat_template,
      "Chat template name (deepseek-v3, deepseek-r1, chatml, llama3, llama3.1; default: "
      "detected from the tokenizer)");
  add("request-timeout", o->request_timeout,
      "Seconds a request may take (queue + run) unless it sends 'timeout'");
  add("priority-range", o->priority_range,
      "MIN:MAX a request's 'priority' is clamped to (keys in --api-key-file may have their own)");
  add("api-key-file", o->api_key_file,
      "File of API keys, one a line: KEY [MIN:MAX] [admin] (priority range; may use /admin)");
  add("max-body-bytes", o->max_body_bytes, "Largest request body accepted");
  add("http-threads", o->http_threads, "HTTP I/O threads (0 = 2)");
  add("drain-timeout", o->drain_timeout, "Seconds SIGTERM waits for running requests");
  add("log-level", o->log_level, "debug, info, warn or error");
  sub->callback([sub, o, &ctx] {
    Status s;
    std::string config = o->config;
    if (config.empty())
      if (const char* env = std::getenv("SEEKSERVE_CONFIG"); env && *env) config = env;
    if (!config.empty()) s = apply_config_file(sub, config);
    if (s.ok()) s = run_serve(*o);
    ctx.exit_code = exit_code_for(s);
  });
}

}  // namespace seekserve
