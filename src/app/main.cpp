// seekserve: one binary, many subcommands. Wiring only; each subcommand lives in src/tools/.

#include <exception>

#include <CLI/CLI.hpp>

#include "tools/command.h"

int main(int argc, char** argv) {
  using namespace seekserve;
  CLI::App app{"seekserve: serve DeepSeek-family language models fast on your own hardware"};
  app.require_subcommand(1);
  CommandContext ctx;
  add_version_command(app, ctx);
  add_chat_template_command(app, ctx);
  add_tokenize_command(app, ctx);
  add_detokenize_command(app, ctx);
  add_inspect_command(app, ctx);
  add_make_model_command(app, ctx);
  add_generate_command(app, ctx);
  add_logits_command(app, ctx);
  add_perplexity_command(app, ctx);
  add_serve_command(app, ctx);
  add_estimate_command(app, ctx);
  add_quantize_command(app, ctx);
  add_route_command(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // bad input
  } catch (const std::exception& e) {
    return report_failure(internal_error("{}", e.what()));
  }
  return ctx.exit_code;
}
