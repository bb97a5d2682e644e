#pragma once
// A fixed pool of worker threads for data-parallel kernels. The threads are created once, in the
// constructor, and live until the destructor; an operation never creates a thread.
//
// parallel_for(n_tasks, fn) runs fn(task_index, thread_index) for every task_index in
// [0, n_tasks) and returns when all have run. Partitioning is static: thread t (0 = the caller)
// runs the contiguous range [t * n_tasks / n, (t + 1) * n_tasks / n), so which thread computes a
// task never depends on timing. Kernels that must be deterministic make each task's result
// independent of the thread that runs it; thread_index is for per-thread scratch space.
//
// Thread-safety: parallel_for may be called from any thread; concurrent callers are serialised
// (one parallel region at a time). A parallel_for called from inside a task runs its tasks inline
// on the calling worker, in order, with the enclosing task's thread_index (no deadlock, no extra
// parallelism, per-thread scratch stays private). Do not destroy the pool
// while a parallel_for is running.

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
  explicit ThreadPool(int n_threads = 0);
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

  void run(int64_t n_tasks, TaskFn fn, void* ctx);
  void run_share(int thread);  // runs thread's static share of the current job
  void worker_main(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;  // n_threads_ - 1 threads; worker i has thread index i + 1

  std::mutex call_mutex_;  // serialises callers of parallel_for

  std::mutex mutex_;  // guards everything below
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;  // bumped once per job
  int pending_ = 0;          // workers that have not finished the current job
  bool stop_ = false;
  int64_t n_tasks_ = 0;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace seekserve
