#include "core/thread_pool.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskOnceOnItsStaticThread) {
  for (int n_threads : {1, 2, 3, 5}) {
    ThreadPool pool(n_threads, /*work_stealing=*/false);
    ASSERT_EQ(pool.n_threads(), n_threads);
    for (int64_t n_tasks : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> runs(n_tasks);
      std::vector<int> thread_of(n_tasks, -1);
      pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
        runs[task].fetch_add(1);
        thread_of[task] = thread;
      });
      for (int64_t t = 0; t < n_tasks; ++t) {
        EXPECT_EQ(runs[t].load(), 1) << "task " << t;
        // Static partition: contiguous ranges, thread r owns [r*n/T, (r+1)*n/T). A single task
        // runs inline on the caller.
        if (n_tasks > 1) {
          ASSERT_GE(thread_of[t], 0);
          ASSERT_LT(thread_of[t], n_threads);
          EXPECT_LE(n_tasks * thread_of[t] / n_threads, t);
          EXPECT_LT(t, n_tasks * (thread_of[t] + 1) / n_threads);
        } else {
          EXPECT_EQ(thread_of[t], 0);
        }
      }
    }
  }
}

TEST(ThreadPoolTest, UsesTheWorkers) {
  ThreadPool pool(3, /*work_stealing=*/false);
  std::vector<std::thread::id> ids(3);
  pool.parallel_for(3, [&](int64_t task, int) { ids[task] = std::this_thread::get_id(); });
  EXPECT_EQ(ids[0], std::this_thread::get_id());  // thread 0 is the caller
  EXPECT_NE(ids[1], ids[0]);
  EXPECT_NE(ids[2], ids[0]);
  EXPECT_NE(ids[1], ids[2]);
}

TEST(ThreadPoolTest, StealingRunsEveryTaskOnce) {
  for (int n_threads : {2, 3, 5}) {
    ThreadPool pool(n_threads);
    for (int rep = 0; rep < 50; ++rep) {
      for (int64_t n_tasks : {0, 1, 2, 7, 100, 1000}) {
        std::vector<std::atomic<int>> runs(n_tasks);
        pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
          ASSERT_GE(thread, 0);
          ASSERT_LT(thread, n_threads);
          runs[task].fetch_add(1);
        });
        for (int64_t t = 0; t < n_tasks; ++t) ASSERT_EQ(runs[t].load(), 1) << "task " << t;
      }
    }
  }
}

TEST(ThreadPoolTest, AStalledWorkerHasItsTasksStolen) {
  ThreadPool pool(2);
  std::vector<int> thread_of(100, -1);
  std::atomic<bool> slept{false};
  pool.parallel_for(100, [&](int64_t task, int thread) {
    thread_of[task] = thread;
    if (thread == 1 && !slept.exchange(true)) {  // the worker stalls on its first task
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  int stolen = 0;
  for (int t = 50; t < 100; ++t) stolen += thread_of[t] == 0;
  EXPECT_GE(stolen, 1);
}

TEST(ThreadPoolTest, NestedCallsRunInlineWithTheOuterThreadIndex) {
  ThreadPool pool(2);
  std::vector<int> inner_thread(4 * 5, -1);
  std::vector<int> outer_thread(4, -1);
  pool.parallel_for(4, [&](int64_t outer, int thread) {
    outer_thread[outer] = thread;
    pool.parallel_for(
        5, [&](int64_t inner, int inner_t) { inner_thread[outer * 5 + inner] = inner_t; });
  });
  for (int o = 0; o < 4; ++o) {
    for (int i = 0; i < 5; ++i) EXPECT_EQ(inner_thread[o * 5 + i], outer_thread[o]);
  }
}

TEST(ThreadPoolTest, ConcurrentCallersAreSerialised) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  auto caller = [&] {
    for (int rep = 0; rep < 200; ++rep) {
      pool.parallel_for(10, [&](int64_t task, int) { total.fetch_add(task + 1); });
    }
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 200 * 55);
}

TEST(ThreadPoolTest, DefaultCountIsPositive) {
  EXPECT_GE(ThreadPool::default_thread_count(), 1);
  ThreadPool pool;
  EXPECT_EQ(pool.n_threads(), ThreadPool::default_thread_count());
}

}  // namespace
}  // namespace seekserve
