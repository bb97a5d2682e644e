#pragma once
// generate, logits and perplexity: the engine from the command line, one sequence at a time.

#include "tools/command.h"

namespace seekserve {

void add_generate_command(CLI::App& app, CommandContext& ctx);
void add_logits_command(CLI::App& app, CommandContext& ctx);
void add_perplexity_command(CLI::App& app, CommandContext& ctx);

}  // namespace seekserve
