#include "router/replica_supervisor.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include <httplib.h>

#include "core/log.h"

namespace seekserve {

namespace {

bool port_is_free(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(host == "127.0.0.1" ? INADDR_LOOPBACK : INADDR_ANY);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::string substitute_port(const std::string& command, int port) {
  std::string out;
  std::string p = std::to_string(port);
  for (size_t i = 0; i < command.size();) {
    if (command.compare(i, 6, "{port}") == 0) {
      out += p;
      i += 6;
    } else {
      out += command[i++];
    }
  }
  return out;
}

Result<std::pair<int, int>> parse_port_range(const std::string& text) {
  size_t dash = text.find('-');
  auto number = [](std::string_view s) -> std::optional<int> {
    int v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
  };
  std::optional<int> first = number(std::string_view(text).substr(0, dash));
  std::optional<int> last =
      dash == std::string::npos ? first : number(std::string_view(text).substr(dash + 1));
  if (!first || !last) return invalid_argument("expected FIRST-LAST, got '{}'", text);
  if (*first < 1 || *last > 65535 || *first > *last)
    return invalid_argument("'{}' is not a range within 1-65535", text);
  return std::make_pair(*first, *last);
}

// Counted against the target: everything but a replica on its way out.
bool is_active(ReplicaState s) {
  return s != ReplicaState::kDraining && s != ReplicaState::kStopping;
}

}  // namespace

Result<ReplicaConfig> parse_replica_config(const YAML::Node& node) {
  const std::string f = "replicas";
  SEEK_RETURN_IF_ERROR(
      yaml_check_keys(node, f,
                      {"command", "min", "max", "port_range", "host", "weight", "startup_timeout",
                       "restart_backoff", "drain_timeout", "stop_timeout",
                       "replace_unhealthy_after", "replace_grace", "log_dir"}));
  ReplicaConfig c;
  SEEK_ASSIGN_OR_RETURN(c.command, yaml_scalar(node["command"], f + ".command"));
  if (c.command.find("{port}") == std::string::npos)
    return invalid_argument("{}.command: must contain {{port}} (where the replica listens)", f);
  if (node["min"]) {
    SEEK_ASSIGN_OR_RETURN(c.min, yaml_integer(node["min"], f + ".min"));
  }
  if (c.min < 1) return invalid_argument("{}.min: must be at least 1", f);
  c.max = c.min;
  if (node["max"]) {
    SEEK_ASSIGN_OR_RETURN(c.max, yaml_integer(node["max"], f + ".max"));
  }
  if (c.max < c.min) return invalid_argument("{}.max: {} is below min {}", f, c.max, c.min);
  if (node["port_range"]) {
    SEEK_ASSIGN_OR_RETURN(std::string range, yaml_scalar(node["port_range"], f + ".port_range"));
    Result<std::pair<int, int>> r = parse_port_range(range);
    if (!r.ok()) return r.status().with_context(f + ".port_range");
    c.port_first = r->first;
    c.port_last = r->second;
  }
  if (c.port_last - c.port_first + 1 < c.max)
    return invalid_argument("{}.port_range: {}-{} has fewer ports than max {}", f, c.port_first,
                            c.port_last, c.max);
  if (node["host"]) {
    SEEK_ASSIGN_OR_RETURN(c.host, yaml_scalar(node["host"], f + ".host"));
  }
  if (node["weight"]) {
    SEEK_ASSIGN_OR_RETURN(int64_t weight, yaml_integer(node["weight"], f + ".weight"));
    if (weight < 1 || weight > 1000) return invalid_argument("{}.weight: must be 1..1000", f);
    c.weight = static_cast<int>(weight);
  }
  struct DurationField {
    const char* key;
    ControlDuration* value;
  };
  for (DurationField d : {DurationField{"startup_timeout", &c.startup_timeout},
                          DurationField{"restart_backoff", &c.restart_backoff},
                          DurationField{"drain_timeout", &c.drain_timeout},
                          DurationField{"stop_timeout", &c.stop_timeout},
                          DurationField{"replace_grace", &c.replace_grace}}) {
    if (!node[d.key]) continue;
    SEEK_ASSIGN_OR_RETURN(*d.value, yaml_duration(node[d.key], f + "." + d.key));
    if (d.value->count() <= 0) return invalid_argument("{}.{}: must be above 0", f, d.key);
  }
  if (node["replace_unhealthy_after"]) {
    // 0 turns replacement off; a negative duration is refused by yaml_duration.
    SEEK_ASSIGN_OR_RETURN(c.replace_unhealthy_after, yaml_duration(node["replace_unhealthy_after"],
                                                                   f + ".replace_unhealthy_after"));
  }
  c.restart_backoff_max = std::max(c.restart_backoff_max, c.restart_backoff);
  if (node["log_dir"]) {
    SEEK_ASSIGN_OR_RETURN(c.log_dir, yaml_scalar(node["log_dir"], f + ".log_dir"));
  }
  return c;
}

const char* replica_state_name(ReplicaState state) {
  switch (state) {
    case ReplicaState::kStarting:
      return "starting";
    case ReplicaState::kReady:
      return "ready";
    case ReplicaState::kDraining:
      return "draining";
    case ReplicaState::kStopping:
      return "stopping";
    case ReplicaState::kBackoff:
      return "backoff";
    case ReplicaState::kReplacing:
      return "replacing";
  }
  return "unknown";
}

struct ReplicaSupervisor::Replica {
  ReplicaInfo info;
  SteadyTime since;       // entered the current state
  SteadyTime ready_at;    // last became ready
  SteadyTime deadline;    // starting: startup; draining: drain; stopping, replacing: SIGKILL
  SteadyTime restart_at;  // backoff
  std::optional<SteadyTime> failing_since;  // ready: the pool holds it unhealthy since
  ControlDuration backoff{0};               // the delay before the latest restart
  bool sigkilled = false;
};

ReplicaSupervisor::ReplicaSupervisor(ReplicaConfig config, BackendPoolControl& pool)
    : config_(std::move(config)), pool_(pool), target_(config_.min) {}

ReplicaSupervisor::~ReplicaSupervisor() {
  stop();
}

void ReplicaSupervisor::start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

int64_t ReplicaSupervisor::set_target(int64_t replicas) {
  std::lock_guard<std::mutex> lock(mutex_);
  target_ = std::clamp(replicas, config_.min, config_.max);
  wake_.notify_all();
  return target_;
}

int64_t ReplicaSupervisor::target() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return target_;
}

int64_t ReplicaSupervisor::active_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t n = 0;
  for (const auto& r : replicas_) n += is_active(r->info.state);
  return n;
}

std::vector<ReplicaInfo> ReplicaSupervisor::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<ReplicaInfo> out;
  for (const auto& r : replicas_) out.push_back(r->info);
  return out;
}

std::vector<std::string> ReplicaSupervisor::ready_urls() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& r : replicas_)
    if (r->info.state == ReplicaState::kReady) out.push_back(r->info.url);
  return out;
}

std::string ReplicaSupervisor::render_metrics() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out =
      "# HELP seekserve_router_supervised_replicas Replica processes the router runs, by state.\n"
      "# TYPE seekserve_router_supervised_replicas gauge\n";
  for (ReplicaState s :
       {ReplicaState::kStarting, ReplicaState::kReady, ReplicaState::kDraining,
        ReplicaState::kStopping, ReplicaState::kBackoff, ReplicaState::kReplacing}) {
    int n = 0;
    for (const auto& r : replicas_) n += r->info.state == s;
    out += fmt::format("seekserve_router_supervised_replicas{{state=\"{}\"}} {}\n",
                       replica_state_name(s), n);
  }
  out += fmt::format(
      "# HELP seekserve_router_replicas_target Replicas the supervisor keeps.\n"
      "# TYPE seekserve_router_replicas_target gauge\nseekserve_router_replicas_target {}\n"
      "# HELP seekserve_router_replica_restarts_total Replicas restarted after they exited or "
      "were replaced.\n"
      "# TYPE seekserve_router_replica_restarts_total counter\n"
      "seekserve_router_replica_restarts_total {}\n"
      "# HELP seekserve_router_replica_starts_total Replica processes spawned.\n"
      "# TYPE seekserve_router_replica_starts_total counter\n"
      "seekserve_router_replica_starts_total {}\n"
      "# HELP seekserve_router_replica_stops_total Replicas stopped by scale-down.\n"
      "# TYPE seekserve_router_replica_stops_total counter\n"
      "seekserve_router_replica_stops_total {}\n"
      "# HELP seekserve_router_replica_replacements_total Live replicas the supervisor killed and "
      "replaced, by reason.\n"
      "# TYPE seekserve_router_replica_replacements_total counter\n"
      "seekserve_router_replica_replacements_total{{reason=\"health_check\"}} {}\n"
      "seekserve_router_replica_replacements_total{{reason=\"startup_timeout\"}} {}\n",
      target_, restarts_total_, started_total_, stopped_total_, replaced_unhealthy_,
      replaced_startup_);
  return out;
}

int ReplicaSupervisor::choose_port() const {
  int span = config_.port_last - config_.port_first + 1;
  // Start after the last port used, so a restarted replica does not race its predecessor's
  // socket in TIME_WAIT.
  int start = 0;
  for (const auto& r : replicas_) start = std::max(start, r->info.port - config_.port_first + 1);
  for (int k = 0; k < span; ++k) {
    int port = config_.port_first + (start + k) % span;
    bool taken = false;
    for (const auto& r : replicas_) taken |= r->info.port == port && r->info.pid > 0;
    if (!taken && port_is_free(config_.host, port)) return port;
  }
  return -1;
}

Status ReplicaSupervisor::spawn(Replica& r, SteadyTime now) {
  int port = choose_port();
  if (port < 0)
    return io_error("replicas.port_range {}-{}: no free port", config_.port_first,
                    config_.port_last);
  std::string command = "exec " + substitute_port(config_.command, port);
  std::string log_path = config_.log_dir.empty()
                             ? std::string()
                             : fmt::format("{}/replica-{}.log", config_.log_dir, port);
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return io_error("fork: {}", strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // the router died before prctl
    if (!log_path.empty()) {
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv("/bin/sh", const_cast<char* const*>(argv));
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so a kill(-pid) right away reaches it
  r.info.pid = pid;
  r.info.port = port;
  r.info.url = fmt::format("http://{}:{}", config_.host, port);
  r.info.state = ReplicaState::kStarting;
  r.since = now;
  r.deadline = now + config_.startup_timeout;
  r.sigkilled = false;
  r.failing_since.reset();
  ++started_total_;
  log_info("replica {} starting on port {} (pid {}): {}", r.info.slot, port, pid,
           command.substr(5));
  return Status::ok_status();
}

void ReplicaSupervisor::reap(Replica& r, int wait_status, SteadyTime now) {
  std::string how = WIFSIGNALED(wait_status)
                        ? fmt::format("killed by signal {}", WTERMSIG(wait_status))
                        : fmt::format("exited with {}", WEXITSTATUS(wait_status));
  if (r.info.backend_id) {
    pool_.remove_backend(*r.info.backend_id);
    r.info.backend_id.reset();
  }
  kill(-r.info.pid, SIGKILL);  // anything the command left behind in its group
  r.info.pid = -1;
  if (r.info.state == ReplicaState::kDraining || r.info.state == ReplicaState::kStopping) {
    log_info("replica {} on port {} stopped ({})", r.info.slot, r.info.port, how);
    r.info.state = ReplicaState::kStopping;  // erased by tick()
    r.deadline = now;
    r.sigkilled = true;
    return;
  }
  if (r.info.state == ReplicaState::kReplacing) {
    log_info("replica {} on port {} replaced ({}); starting a fresh one", r.info.slot, r.info.port,
             how);
    r.info.state = ReplicaState::kBackoff;
    r.restart_at = now;
    r.since = now;
    return;
  }
  // Unexpected: restart after a backoff that doubles while it keeps failing, and starts over
  // once a replica stayed ready for a minute.
  bool was_stable =
      r.info.state == ReplicaState::kReady && now - r.ready_at > std::chrono::minutes(1);
  if (was_stable || r.backoff.count() == 0)
    r.backoff = config_.restart_backoff;
  else
    r.backoff = std::min(config_.restart_backoff_max, r.backoff * 2);
  log_warn("replica {} on port {} {} while {}; restarting in {}", r.info.slot, r.info.port, how,
           replica_state_name(r.info.state), format_duration(r.backoff));
  r.info.state = ReplicaState::kBackoff;
  r.restart_at = now + r.backoff;
  r.since = now;
}

void ReplicaSupervisor::replace(Replica& r, SteadyTime now) {
  log_warn(
      "replica {} on port {} (pid {}): health check failing for {} (process alive): "
      "replacing it (SIGTERM, SIGKILL after {})",
      r.info.slot, r.info.port, r.info.pid,
      format_duration(std::chrono::duration_cast<ControlDuration>(now - *r.failing_since)),
      format_duration(config_.replace_grace));
  terminate(r, ReplicaState::kReplacing, now, config_.replace_grace);
  r.failing_since.reset();
  ++replaced_unhealthy_;
}

void ReplicaSupervisor::terminate(Replica& r, ReplicaState next, SteadyTime now,
                                  ControlDuration grace) {
  if (r.info.backend_id) {
    pool_.remove_backend(*r.info.backend_id);
    r.info.backend_id.reset();
  }
  kill(-r.info.pid, SIGTERM);
  r.info.state = next;
  r.since = now;
  r.deadline = now + grace;
  r.sigkilled = false;
}

void ReplicaSupervisor::tick(SteadyTime now) {
  // Runs with mutex_ held except around the blocking health probes (see below).
  std::unique_lock<std::mutex> lock(mutex_);
  for (auto& rp : replicas_) {
    Replica& r = *rp;
    if (r.info.pid <= 0) continue;
    int wait_status = 0;
    pid_t got = waitpid(r.info.pid, &wait_status, WNOHANG);
    if (got == r.info.pid) reap(r, wait_status, now);
  }
  // Stopped replicas leave; the others advance.
  replicas_.erase(std::remove_if(replicas_.begin(), replicas_.end(),
                                 [](const auto& r) {
                                   return r->info.state == ReplicaState::kStopping &&
                                          r->info.pid <= 0;
                                 }),
                  replicas_.end());
  std::vector<std::pair<int64_t, std::string>> to_probe;
  for (auto& rp : replicas_) {
    Replica& r = *rp;
    switch (r.info.state) {
      case ReplicaState::kStarting:
        if (now > r.deadline) {
          if (!r.sigkilled) {  // once: it may take a tick to be reaped
            log_warn("replica {} on port {} not ready after {}: killing it", r.info.slot,
                     r.info.port, format_duration(config_.startup_timeout));
            kill(-r.info.pid, SIGKILL);
            r.sigkilled = true;
            ++replaced_startup_;
          }
        } else {
          to_probe.emplace_back(r.info.slot, r.info.url);
        }
        break;
      case ReplicaState::kDraining:
        if (pool_.in_flight(*r.info.backend_id) == 0 || now > r.deadline) {
          if (now > r.deadline)
            log_warn("replica {}: drain timeout with {} requests in flight", r.info.slot,
                     pool_.in_flight(*r.info.backend_id));
          terminate(r, ReplicaState::kStopping, now, config_.stop_timeout);
          ++stopped_total_;
          log_info("replica {} on port {} drained: SIGTERM", r.info.slot, r.info.port);
        }
        break;
      case ReplicaState::kStopping:
      case ReplicaState::kReplacing:
        if (now > r.deadline && !r.sigkilled) {
          log_warn(
              "replica {} on port {} (pid {}) still running {} after SIGTERM: SIGKILL", r.info.slot,
              r.info.port, r.info.pid,
              format_duration(r.info.state == ReplicaState::kReplacing ? config_.replace_grace
                                                                       : config_.stop_timeout));
          kill(-r.info.pid, SIGKILL);
          r.sigkilled = true;
        }
        break;
      case ReplicaState::kBackoff:
        if (now >= r.restart_at && !stopping_) {
          ++r.info.restarts;
          ++restarts_total_;
          Status s = spawn(r, now);
          if (!s.ok()) {
            log_error("replica {}: {}", r.info.slot, s.message());
            r.restart_at = now + r.backoff;
          }
        }
        break;
      case ReplicaState::kReady:
        if (config_.replace_unhealthy_after.count() == 0 || !r.info.backend_id) break;
        if (!pool_.health_failing(*r.info.backend_id)) {
          if (r.failing_since)
            log_info("replica {} on port {} passes its health check again", r.info.slot,
                     r.info.port);
          r.failing_since.reset();
        } else if (!r.failing_since) {
          r.failing_since = now;
          log_warn(
              "replica {} on port {} (pid {}) fails its health check; replaced unless it "
              "recovers within {}",
              r.info.slot, r.info.port, r.info.pid,
              format_duration(config_.replace_unhealthy_after));
        } else if (now - *r.failing_since >= config_.replace_unhealthy_after) {
          replace(r, now);
        }
        break;
    }
  }
  // Reconcile the count with the target.
  if (!stopping_) {
    int64_t active = 0;
    for (const auto& r : replicas_) active += is_active(r->info.state);
    while (active < target_) {
      auto r = std::make_unique<Replica>();
      r->info.slot = next_slot_++;
      Status s = spawn(*r, now);
      if (!s.ok()) {
        log_error("replica: {}", s.message());
        break;
      }
      replicas_.push_back(std::move(r));
      ++active;
    }
    while (active > target_) {
      // Cheapest first: one waiting to restart, then one still starting, then the newest ready.
      Replica* victim = nullptr;
      for (ReplicaState s : {ReplicaState::kBackoff, ReplicaState::kStarting, ReplicaState::kReady})
        for (auto it = replicas_.rbegin(); !victim && it != replicas_.rend(); ++it)
          if ((*it)->info.state == s) victim = it->get();
      if (!victim) break;
      log_info("replica {} on port {}: scaling down from {}", victim->info.slot, victim->info.port,
               replica_state_name(victim->info.state));
      if (victim->info.state == ReplicaState::kReady) {
        pool_.begin_drain(*victim->info.backend_id);
        victim->info.state = ReplicaState::kDraining;
        victim->deadline = now + config_.drain_timeout;
      } else {
        if (victim->info.pid > 0) kill(-victim->info.pid, SIGTERM);
        victim->info.state = ReplicaState::kStopping;
        victim->deadline = now + config_.stop_timeout;
        victim->sigkilled = victim->info.pid <= 0;
      }
      victim->since = now;
      --active;
    }
  }
  // Readiness probes block (up to 1 s each): not under the lock.
  lock.unlock();
  std::vector<int64_t> ready;
  for (const auto& [slot, url] : to_probe) {
    httplib::Client client(url);
    client.set_connection_timeout(0, 300000);
    client.set_read_timeout(1, 0);
    httplib::Result res = client.Get("/health");
    if (res && res->status == 200) ready.push_back(slot);
  }
  lock.lock();
  for (int64_t slot : ready) {
    for (auto& rp : replicas_) {
      Replica& r = *rp;
      if (r.info.slot != slot || r.info.state != ReplicaState::kStarting) continue;
      r.info.backend_id = pool_.add_backend(r.info.url, config_.weight);
      r.info.state = ReplicaState::kReady;
      r.ready_at = std::chrono::steady_clock::now();
      log_info("replica {} ready at {} after {:.1f} s; added to the pool", r.info.slot, r.info.url,
               std::chrono::duration<double>(r.ready_at - r.since).count());
      r.since = r.ready_at;
    }
  }
}

void ReplicaSupervisor::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    tick(std::chrono::steady_clock::now());
    lock.lock();
    wake_.wait_for(lock, std::chrono::milliseconds(200));
  }
  lock.unlock();
  // The replicas are stopped from this thread: they were forked by it, and PR_SET_PDEATHSIG
  // fires when it exits, which must not be a second SIGTERM (serve stops at once on a second).
  shut_down();
}

void ReplicaSupervisor::shut_down() {
  std::lock_guard<std::mutex> lock(mutex_);
  auto deadline = std::chrono::steady_clock::now() + config_.stop_timeout;
  for (auto& r : replicas_) {
    if (r->info.backend_id) pool_.remove_backend(*r->info.backend_id);
    r->info.backend_id.reset();
    if (r->info.pid > 0) kill(-r->info.pid, SIGTERM);
  }
  for (auto& r : replicas_) {
    while (r->info.pid > 0) {
      if (waitpid(r->info.pid, nullptr, WNOHANG) == r->info.pid) {
        kill(-r->info.pid, SIGKILL);  // anything left in its group
        r->info.pid = -1;
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        log_warn("replica {} still running {} after SIGTERM: SIGKILL", r->info.slot,
                 format_duration(config_.stop_timeout));
        kill(-r->info.pid, SIGKILL);
        waitpid(r->info.pid, nullptr, 0);
        r->info.pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (!replicas_.empty()) log_info("replicas: {} stopped", replicas_.size());
  replicas_.clear();
}

void ReplicaSupervisor::stop() {
  bool started;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    started = thread_.joinable();
    wake_.notify_all();
  }
  if (started) thread_.join();
}

}  // namespace seekserve
