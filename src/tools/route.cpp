// route: the router, an OpenAI-compatible front door over several backends (src/router/).
// Options: defaults, then the YAML file (--config), then flags.

#include <pthread.h>
#include <signal.h>

#include <cstdio>

#include "core/log.h"
#include "router/backend_pool.h"
#include "router/control_plane.h"
#include "router/pool_control.h"
#include "router/router_config.h"
#include "router/router_metrics.h"
#include "router/router_server.h"
#include "tools/command.h"

namespace seekserve {
namespace {

struct RouteFlags {
  std::string config;
  std::string host;
  int port = -1;
  int threads = -1;
  std::string policy;
  std::vector<std::string> backends;
  std::string log_level;
};

Status run_route(const RouteFlags& f) {
  RouterConfig config;
  if (!f.config.empty()) {
    SEEK_ASSIGN_OR_RETURN(config, load_router_config(f.config));
  }
  if (!f.host.empty()) config.host = f.host;
  if (f.port >= 0) config.port = f.port;
  if (f.threads >= 0) config.threads = f.threads;
  if (!f.policy.empty()) config.policy = f.policy;
  if (!f.log_level.empty()) config.log_level = f.log_level;
  if (!f.backends.empty()) {
    config.backends.clear();
    for (size_t i = 0; i < f.backends.size(); ++i) {
      BackendSpec spec;
      SEEK_ASSIGN_OR_RETURN(spec.url,
                            parse_backend_url(f.backends[i], fmt::format("--backend {}", i + 1)));
      config.backends.push_back(spec);
    }
  }
  SEEK_RETURN_IF_ERROR(validate_router_config(config));
  // replicas: / scaling_policy: / alerts: (src/router/control_plane.h), checked before anything
  // starts.
  SEEK_ASSIGN_OR_RETURN(
      ControlConfig control_config,
      parse_control_config(config.replicas, config.scaling_policy, config.alerts));
  set_log_level(config.log_level == "debug"   ? LogLevel::kDebug
                : config.log_level == "warn"  ? LogLevel::kWarn
                : config.log_level == "error" ? LogLevel::kError
                                              : LogLevel::kInfo);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  SEEK_ASSIGN_OR_RETURN(std::unique_ptr<BalancingPolicy> policy, make_balancing_policy(config));
  BackendPool pool(config, std::move(policy));
  for (size_t i = 0; i < config.backends.size(); ++i) {
    auto id = pool.add_backend(config.backends[i].url.text, config.backends[i].weight);
    if (!id.ok()) return id.status().with_context(fmt::format("backends[{}]", i));
  }
  RouterMetrics metrics;
  RouterServer server(config, pool, metrics);
  RouterPoolControl pool_control(pool);
  ControlPlane control(std::move(control_config), pool_control,
                       [&pool] { return scrape_targets(pool); });
  metrics.add_source([&control](std::string& out) { control.render_metrics(out); });
  server.add_get_endpoint("/alerts", [&control] {
    return LocalReply{200, "application/json", control.alerts_json()};
  });
  SEEK_ASSIGN_OR_RETURN(int port, server.bind());
  server.start();
  control.start();
  // The first verdict on every backend, so the printed URL serves at once (a backend that does
  // not answer is not an error: it stays unhealthy and is checked again every interval).
  server.wait_first_health_round(config.health.timeout_s + 1);
  size_t healthy = 0;
  for (const BackendSnapshot& b : pool.snapshot()) healthy += b.healthy ? 1 : 0;
  std::printf("seekserve: routing at http://%s:%d over %zu backends (%zu healthy), policy %s\n",
              config.host.c_str(), port, pool.size(), healthy, pool.policy_name());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  log_info("router: signal {}: draining (at most {}s)", sig, config.drain_timeout_s);
  server.stop(config.drain_timeout_s);
  control.stop();  // after the router's own drain: then the replicas have nothing in flight
  return Status::ok_status();
}

}  // namespace

void add_route_command(CLI::App& app, CommandContext& ctx) {
  auto flags = std::make_shared<RouteFlags>();
  CLI::App* sub = app.add_subcommand(
      "route",
      "Load-balance OpenAI-compatible requests over several backends (see docs/ROUTER.md)");
  sub->add_option("--config", flags->config, "router YAML file");
  sub->add_option("--host", flags->host, "listen address (default 127.0.0.1, or the file's)");
  sub->add_option("--port", flags->port, "listen port, 0 = any free one (default 8080)");
  sub->add_option("--threads", flags->threads, "I/O threads, 0 = one per core (default 0)");
  sub->add_option("--policy", flags->policy,
                  "round_robin | least_connections | weighted | power_of_two | prefix_affinity");
  sub->add_option("--backend", flags->backends,
                  "backend URL (repeatable; replaces the file's list, weight 1)");
  sub->add_option("--log-level", flags->log_level, "debug, info, warn, error (default info)");
  sub->callback([flags, &ctx] { ctx.exit_code = exit_code_for(run_route(*flags)); });
}

}  // namespace seekserve
