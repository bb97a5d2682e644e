#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <string>

namespace seekserve {
namespace {
// The one piece of process-wide state: read on every log call, written once at start-up.
std::atomic<LogLevel> g_log_level{LogLevel::kInfo};
}  // namespace

void set_log_level(LogLevel level) {
  g_log_level.store(level, std::memory_order_relaxed);
}
LogLevel log_level() {
  return g_log_level.load(std::memory_order_relaxed);
}

void log_line(LogLevel level, std::string_view message) {
  static constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
  std::string line = fmt::format("[{}] {}\n", kNames[static_cast<int>(level)], message);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace seekserve
