// BackendPool: the control API (add, drain with its idle callback, remove, snapshot), health
// verdicts, passive ejection and its timed return, and the panic rule. No I/O: the pool is driven
// the way the proxy and the health checker drive it.

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "router/backend_pool.h"

namespace seekserve {
namespace {

RouterConfig config_for_test() {
  RouterConfig c;
  c.ejection.consecutive_failures = 2;
  c.ejection.base_time_s = 2;  // long enough that no stall of a loaded machine ends it early
  c.ejection.max_time_s = 5;
  c.health.healthy_threshold = 2;
  c.health.unhealthy_threshold = 2;
  return c;
}

BackendPool make_pool() {
  return BackendPool(config_for_test(), make_round_robin_policy());
}

TEST(BackendPool, AddDrainRemove) {
  BackendPool pool = make_pool();
  auto a = pool.add_backend("http://127.0.0.1:9001", 1);
  auto b = pool.add_backend("http://127.0.0.1:9002", 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(pool.add_backend("http://127.0.0.1:0", 1).ok());
  EXPECT_FALSE(pool.add_backend("http://127.0.0.1:9003", 0).ok());
  pool.report_health(*a, true);  // the first good verdict admits a new backend
  pool.report_health(*b, true);
  EXPECT_TRUE(pool.any_routable());

  auto t = pool.acquire({}, {});
  ASSERT_TRUE(t);
  const BackendId busy = t->id;
  EXPECT_EQ(pool.in_flight(busy), 1);
  int idle_calls = 0;
  ASSERT_TRUE(pool.begin_drain(busy, [&] { ++idle_calls; }));
  EXPECT_EQ(idle_calls, 0);      // one request still in flight
  for (int i = 0; i < 4; ++i) {  // no new request goes to a draining backend
    auto other = pool.acquire({}, {});
    ASSERT_TRUE(other);
    EXPECT_NE(other->id, busy);
    pool.release(other->id, AttemptOutcome::kSuccess, 0.01);
  }
  pool.release(busy, AttemptOutcome::kSuccess, 0.02);
  EXPECT_EQ(idle_calls, 1);
  EXPECT_EQ(pool.in_flight(busy), 0);
  const auto snap = pool.snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_TRUE(snap[busy == *a ? 0 : 1].draining);
  EXPECT_EQ(snap[1].weight, 2);
  EXPECT_TRUE(pool.remove_backend(busy));
  EXPECT_FALSE(pool.remove_backend(busy));
  EXPECT_EQ(pool.in_flight(busy), -1);
  EXPECT_EQ(pool.size(), 1u);

  // Draining an idle backend calls back at once.
  const BackendId last = pool.snapshot()[0].id;
  int now_calls = 0;
  EXPECT_TRUE(pool.begin_drain(last, [&] { ++now_calls; }));
  EXPECT_EQ(now_calls, 1);
  // Every backend draining: nothing to route to.
  EXPECT_FALSE(pool.acquire({}, {}));
}

TEST(BackendPool, EjectionAndTimedReturn) {
  BackendPool pool = make_pool();
  const BackendId a = *pool.add_backend("http://127.0.0.1:9001", 1);
  const BackendId b = *pool.add_backend("http://127.0.0.1:9002", 1);
  pool.report_health(a, true);
  pool.report_health(b, true);
  for (int i = 0; i < 2; ++i) {
    std::vector<BackendId> exclude = {b};
    auto t = pool.acquire({}, exclude);
    ASSERT_EQ(t->id, a);
    pool.release(a, AttemptOutcome::kFailure, 0.001);
  }
  auto snap = pool.snapshot();
  EXPECT_TRUE(snap[0].ejected);
  EXPECT_EQ(snap[0].ejections, 1u);
  EXPECT_EQ(snap[0].requests_failed, 2u);
  for (int i = 0; i < 4; ++i) {
    auto t = pool.acquire({}, {});
    EXPECT_EQ(t->id, b);
    pool.release(t->id, AttemptOutcome::kSuccess, 0.001);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));  // base_time 2 s
  int got_a = 0;
  for (int i = 0; i < 4; ++i) {
    auto t = pool.acquire({}, {});
    got_a += t->id == a;
    pool.release(t->id, AttemptOutcome::kSuccess, 0.001);
  }
  EXPECT_EQ(got_a, 2);
  EXPECT_FALSE(pool.snapshot()[0].ejected);
}

TEST(BackendPool, HealthThresholdsAndPanic) {
  BackendPool pool = make_pool();
  const BackendId a = *pool.add_backend("http://127.0.0.1:9001", 1);
  EXPECT_FALSE(pool.any_routable());  // no verdict yet
  pool.report_health(a, true);
  EXPECT_TRUE(pool.any_routable());
  pool.report_health(a, false);
  EXPECT_TRUE(pool.any_routable());  // one failure is below unhealthy_threshold 2
  pool.report_health(a, false);
  EXPECT_FALSE(pool.any_routable());
  // Panic: the only backend is unhealthy but not draining, so it is still tried.
  auto t = pool.acquire({}, {});
  ASSERT_TRUE(t);
  pool.release(t->id, AttemptOutcome::kAbandoned, 0);
  pool.report_health(a, true);
  EXPECT_FALSE(pool.any_routable());  // healthy_threshold 2
  pool.report_health(a, true);
  EXPECT_TRUE(pool.any_routable());
}

}  // namespace
}  // namespace seekserve
