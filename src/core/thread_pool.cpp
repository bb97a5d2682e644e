#include "core/thread_pool.h"

#include <sched.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>

#include "core/check.h"

namespace seekserve {
namespace {

// The thread index of the task this thread is running, -1 outside a parallel_for: a nested call
// runs inline under the same index, so per-thread scratch stays private.
thread_local int t_thread_index = -1;

int read_int_file(const std::string& path) {
  std::ifstream in(path);
  int value = -1;
  if (!(in >> value)) return -1;
  return value;
}

}  // namespace

int ThreadPool::default_thread_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    const unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? static_cast<int>(n) : 1;
  }
  std::set<std::pair<int, int>> cores;  // (package, core) of each CPU we may run on
  int n_cpus = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    ++n_cpus;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const int package = read_int_file(base + "physical_package_id");
    const int core = read_int_file(base + "core_id");
    if (package < 0 || core < 0) return n_cpus > 0 ? CPU_COUNT(&set) : 1;  // no topology: CPUs
    cores.insert({package, core});
  }
  return cores.empty() ? 1 : static_cast<int>(cores.size());
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads > 0 ? n_threads : default_thread_count()) {
  workers_.reserve(n_threads_ - 1);
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker_main(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void ThreadPool::run_share(int thread) {
  const int64_t begin = n_tasks_ * thread / n_threads_;
  const int64_t end = n_tasks_ * (thread + 1) / n_threads_;
  t_thread_index = thread;
  for (int64_t task = begin; task < end; ++task) fn_(ctx_, task, thread);
  t_thread_index = -1;
}

void ThreadPool::run(int64_t n_tasks, TaskFn fn, void* ctx) {
  if (n_tasks <= 0) return;
  if (t_thread_index >= 0) {  // nested: inline, in order, under the enclosing task's index
    for (int64_t task = 0; task < n_tasks; ++task) fn(ctx, task, t_thread_index);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  if (n_threads_ == 1 || n_tasks == 1) {  // nothing to share: inline, as thread 0
    t_thread_index = 0;
    for (int64_t task = 0; task < n_tasks; ++task) fn(ctx, task, 0);
    t_thread_index = -1;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    n_tasks_ = n_tasks;
    fn_ = fn;
    ctx_ = ctx;
    pending_ = n_threads_ - 1;
    ++generation_;
  }
  work_cv_.notify_all();
  run_share(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
}

void ThreadPool::worker_main(int thread) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    run_share(thread);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace seekserve
