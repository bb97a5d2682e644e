#pragma once
// A fixed pool of worker threads for data-parallel kernels. The threads are created once, in the
// constructor, and live until the destructor; an operation never creates a thread.
//
// parallel_for(n_tasks, fn) runs fn(task_index, thread_index) for every task_index in
// [0, n_tasks) and returns when all have run. Each thread t (0 = the caller) first owns the
// contiguous range [t * n_tasks / n, (t + 1) * n_tasks / n) and runs it in order. With work
// stealing (the default) a thread that has finished its range then takes the remaining tasks of
// the others' ranges, so a worker the OS has not scheduled (2 vCPUs shared with other processes)
// costs the step its tasks, not a scheduler time slice: which thread runs a task then depends on
// timing. Without stealing the partition is static. Either way kernels that must be deterministic
// make each task's result independent of the thread that runs it; thread_index is for
// per-thread scratch space (two tasks never run at once under the same index).
//
// Thread-safety: parallel_for may be called from any thread; concurrent callers are serialised
// (one parallel region at a time). A parallel_for called from inside a task runs its tasks inline
// on the calling worker, in order, with the enclosing task's thread_index (no deadlock, no extra
// parallelism, per-thread scratch stays private). Do not destroy the pool
// while a parallel_for is running.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace seekserve {

class ThreadPool {
 public:
  // n_threads counts the caller; 0 means default_thread_count(). n_threads = 1 creates no thread.
  explicit ThreadPool(int n_threads = 0, bool work_stealing = true);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  template <typename Fn>
  void parallel_for(int64_t n_tasks, Fn&& fn) {
    auto trampoline = [](void* ctx, int64_t task, int thread) {
      (*static_cast<std::remove_reference_t<Fn>*>(ctx))(task, thread);
    };
    run(n_tasks, trampoline, static_cast<void*>(&fn));
  }

  // Physical cores available to this process (CPUs in the affinity mask, counting SMT siblings
  // once); at least 1.
  static int default_thread_count();

 private:
  using TaskFn = void (*)(void* ctx, int64_t task, int thread);

  // One thread's range of the current job, packed so that a task is taken by one compare-and-swap
  // that also checks the job: [job tag : 20][next task : 22][end : 22]. A thread that wakes late
  // for a job that has ended sees another tag (or next == end) and takes nothing.
  struct alignas(64) Range {
    std::atomic<uint64_t> state{0};
  };
  static constexpr int kIndexBits = 22;
  static constexpr int64_t kMaxStealTasks = int64_t{1} << kIndexBits;  // more: static partition

  // Takes the next task of `range` for job `tag`; -1 when none is left (or the job is another).
  int64_t take(Range& range, uint64_t tag);
  void run(int64_t n_tasks, TaskFn fn, void* ctx);
  void run_share(int thread, uint64_t tag);  // its own range, then (stealing) the others' rest
  void worker_main(int thread);

  int n_threads_;
  bool work_stealing_;
  std::vector<std::thread> workers_;  // n_threads_ - 1 threads; worker i has thread index i + 1
  std::vector<Range> ranges_;         // [n_threads_]

  std::mutex call_mutex_;  // serialises callers of parallel_for

  // The current job: written by the caller before it bumps generation_ (release), read by the
  // threads after they take a task (the job cannot end before a taken task has run).
  std::atomic<TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> done_{0};  // tasks of the current job that have run
  std::atomic<int64_t> n_tasks_{0};

  std::mutex mutex_;  // guards the sleeping and waking below
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::atomic<uint64_t> generation_{0};  // bumped once per job
  std::atomic<bool> stop_{false};
};

}  // namespace seekserve
