#include "tools/command.h"

#include <cstdio>
#include <string>

namespace seekserve {

int report_failure(const Status& status) {
  std::string line = "seekserve: error: " + status.message() + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  return status.is_bad_input() ? 2 : 1;
}

int exit_code_for(const Status& status) {
  return status.ok() ? 0 : report_failure(status);
}

void add_version_command(CLI::App& app, CommandContext& ctx) {
  CLI::App* sub = app.add_subcommand("version", "Print the version and exit");
  sub->callback([&ctx] {
    std::puts("seekserve 0.1.0");
    ctx.exit_code = 0;
  });
}

}  // namespace seekserve
