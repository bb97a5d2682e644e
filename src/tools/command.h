#pragma once
// How subcommands plug into the `seekserve` binary. Each tool adds its subcommand to the CLI11
// app and, when it runs, stores its exit code in `exit_code`:
//   0 success, 1 runtime failure, 2 bad input (bad flag, bad or hostile file).

#include <CLI/CLI.hpp>

#include "core/status.h"

namespace seekserve {

struct CommandContext {
  int exit_code = 0;
};

// Prints "seekserve: error: <message>" (one line) to stderr and returns the exit code for it.
int report_failure(const Status& status);
// 0 for an ok status, else report_failure(status).
int exit_code_for(const Status& status);

void add_version_command(CLI::App& app, CommandContext& ctx);
void add_chat_template_command(CLI::App& app, CommandContext& ctx);
// tokenize TEXT / detokenize IDS with a model's tokenizer (src/tools/tokenize_command.cpp).
void add_tokenize_command(CLI::App& app, CommandContext& ctx);
void add_detokenize_command(CLI::App& app, CommandContext& ctx);
// inspect FILE|DIR (src/tools/inspect.cpp).
void add_inspect_command(CLI::App& app, CommandContext& ctx);
// make-model --preset NAME --out PATH (src/tools/make_model.cpp).
void add_make_model_command(CLI::App& app, CommandContext& ctx);
// generate / logits / perplexity: the engine, one sequence at a time (src/tools/generate.cpp).
void add_generate_command(CLI::App& app, CommandContext& ctx);
void add_logits_command(CLI::App& app, CommandContext& ctx);
void add_perplexity_command(CLI::App& app, CommandContext& ctx);
// serve: the OpenAI-compatible HTTP server (src/tools/serve.cpp).
void add_serve_command(CLI::App& app, CommandContext& ctx);
// estimate MODEL: memory and capacity planning (src/tools/estimate.cpp).
void add_estimate_command(CLI::App& app, CommandContext& ctx);
// quantize IN OUT --dtype T (src/tools/quantize.cpp).
void add_quantize_command(CLI::App& app, CommandContext& ctx);
// route --config router.yaml: the load balancer over replicas (src/tools/route.cpp).
void add_route_command(CLI::App& app, CommandContext& ctx);

}  // namespace seekserve
