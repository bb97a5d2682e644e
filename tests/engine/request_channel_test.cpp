#include "engine/request_channel.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

EngineEvent token(int32_t id) {
  EngineEvent ev;
  ev.kind = EngineEvent::Kind::kToken;
  ev.token = id;
  return ev;
}

TEST(RequestChannel, BlockingReaderGetsEventsInOrder) {
  RequestChannel ch(7);
  std::vector<EngineEvent> got;
  EXPECT_FALSE(ch.pop_all(got, std::chrono::milliseconds(0)));
  std::thread writer([&] {
    for (int i = 0; i < 100; ++i) ch.push(token(i));
  });
  while (got.size() < 100) ch.pop_all(got, std::chrono::milliseconds(1000));
  writer.join();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[static_cast<size_t>(i)].token, i);
}

// An asynchronous reader registers a callback instead of blocking: it runs on the pushing
// thread for push() and once per notify() (not for push_quiet()), and never after it is removed.
TEST(RequestChannel, NotifierReplacesTheWakeUpAndStopsWhenRemoved) {
  RequestChannel ch(1);
  std::atomic<int> calls{0};
  ch.set_notifier([&] { ++calls; });
  ch.push(token(1));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(ch.push_quiet(token(2)));
  EXPECT_FALSE(ch.push_quiet(token(3)));  // one notify owed for both
  EXPECT_EQ(calls.load(), 1);
  ch.notify();
  EXPECT_EQ(calls.load(), 2);
  std::vector<EngineEvent> got;
  ASSERT_TRUE(ch.pop_all(got, std::chrono::milliseconds(0)));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].token, 3);

  // Removal while another thread pushes: once set_notifier(nullptr) returns, no call runs.
  std::atomic<bool> removed{false}, late{false};
  ch.set_notifier([&] {
    if (removed.load()) late = true;
  });
  std::thread writer([&] {
    for (int i = 0; i < 20000; ++i) ch.push(token(i));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ch.set_notifier(nullptr);
  removed = true;
  writer.join();
  EXPECT_FALSE(late.load());
}

}  // namespace
}  // namespace seekserve
