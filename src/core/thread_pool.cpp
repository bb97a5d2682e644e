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

namespace {
constexpr int kSpinIterations = 4000;  // ~ tens of µs of pause before sleeping on a futex
constexpr uint64_t kTagMask = (uint64_t{1} << 20) - 1;
constexpr uint64_t kIndexMask = (uint64_t{1} << 22) - 1;

uint64_t pack(uint64_t tag, int64_t next, int64_t end) {
  return ((tag & kTagMask) << 44) | (static_cast<uint64_t>(next) << 22) |
         static_cast<uint64_t>(end);
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int n_threads, bool work_stealing)
    : n_threads_(n_threads > 0 ? n_threads : default_thread_count()),
      work_stealing_(work_stealing),
      ranges_(static_cast<size_t>(n_threads_)) {
  workers_.reserve(n_threads_ - 1);
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker_main(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  work_cv_.notify_all();
  for (std::thread& w : workers_) w.join();
}

int64_t ThreadPool::take(Range& range, uint64_t tag) {
  uint64_t s = range.state.load(std::memory_order_acquire);
  for (;;) {
    if (((s >> 44) & kTagMask) != (tag & kTagMask)) return -1;
    const int64_t next = static_cast<int64_t>((s >> 22) & kIndexMask);
    const int64_t end = static_cast<int64_t>(s & kIndexMask);
    if (next >= end) return -1;
    if (range.state.compare_exchange_weak(s, s + (uint64_t{1} << 22), std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
      return next;
    }
  }
}

void ThreadPool::run_share(int thread, uint64_t tag) {
  t_thread_index = thread;
  int64_t ran = 0;
  // Own range first, then the others' from the next thread on (spreads the thieves).
  const int n_ranges = work_stealing_ ? n_threads_ : 1;
  for (int i = 0; i < n_ranges; ++i) {
    Range& range = ranges_[static_cast<size_t>((thread + i) % n_threads_)];
    for (int64_t task; (task = take(range, tag)) >= 0;) {
      fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), task, thread);
      ++ran;
    }
  }
  t_thread_index = -1;
  if (ran > 0 && done_.fetch_add(ran, std::memory_order_acq_rel) + ran ==
                     n_tasks_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_cv_.notify_all();
  }
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
  if (n_tasks >= kMaxStealTasks) {  // too many to pack: run as chunks of at most that many
    for (int64_t first = 0; first < n_tasks; first += kMaxStealTasks - 1) {
      struct Chunk {
        TaskFn fn;
        void* ctx;
        int64_t first;
      } chunk{fn, ctx, first};
      auto trampoline = [](void* c, int64_t task, int thread) {
        auto* ch = static_cast<Chunk*>(c);
        ch->fn(ch->ctx, ch->first + task, thread);
      };
      call_mutex_.unlock();
      run(std::min(kMaxStealTasks - 1, n_tasks - first), trampoline, &chunk);
      call_mutex_.lock();
    }
    return;
  }
  const uint64_t tag = generation_.load(std::memory_order_relaxed) + 1;
  fn_.store(fn, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  n_tasks_.store(n_tasks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  for (int t = 0; t < n_threads_; ++t) {
    ranges_[static_cast<size_t>(t)].state.store(
        pack(tag, n_tasks * t / n_threads_, n_tasks * (t + 1) / n_threads_),
        std::memory_order_release);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.store(tag, std::memory_order_release);
  }
  work_cv_.notify_all();
  run_share(0, tag);
  for (int spin = 0; spin < kSpinIterations; ++spin) {
    if (done_.load(std::memory_order_acquire) == n_tasks) return;
    cpu_relax();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return done_.load(std::memory_order_acquire) == n_tasks; });
}

void ThreadPool::worker_main(int thread) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] {
        return stop_.load() || generation_.load(std::memory_order_acquire) != seen;
      });
      if (stop_.load()) return;
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    run_share(thread, g);
  }
}

}  // namespace seekserve
