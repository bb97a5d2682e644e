#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

namespace seekserve {
namespace {

SchedSequence seq(uint64_t id, int64_t n_tokens, int64_t n_computed, int64_t n_blocks,
                  int32_t priority = 0) {
  SchedSequence s;
  s.id = id;
  s.arrival = id;
  s.priority = priority;
  s.n_tokens = n_tokens;
  s.n_computed = n_computed;
  s.n_blocks = n_blocks;
  return s;
}

int64_t tokens_of(const StepPlan& p, uint64_t id) {
  for (const auto& it : p.items)
    if (it.id == id) return it.n_tokens;
  return 0;
}

TEST(SchedulerTest, DecodesFirstThenPrefillInArrivalOrder) {
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 100;
  cfg.max_prefill_tokens = 100;
  std::vector<SchedSequence> running = {seq(1, 33, 32, 3), seq(2, 20, 19, 2)};
  std::vector<SchedSequence> waiting = {seq(4, 60, 0, 0), seq(3, 80, 0, 0)};
  StepPlan p = plan_step(running, waiting, 1000, cfg);
  EXPECT_EQ(tokens_of(p, 1), 1);
  EXPECT_EQ(tokens_of(p, 2), 1);
  EXPECT_EQ(tokens_of(p, 3), 80);  // arrived first
  EXPECT_EQ(tokens_of(p, 4), 18);  // chunk of what is left of the budget
  EXPECT_EQ(p.n_tokens, 100);
  ASSERT_EQ(p.admitted.size(), 2u);
  EXPECT_EQ(p.admitted[0], 3u);
  EXPECT_TRUE(p.preempted.empty());
}

TEST(SchedulerTest, StepTimeBudgetChunksLongPrompts) {
  SchedulerConfig cfg;
  cfg.max_prefill_tokens = 64;
  std::vector<SchedSequence> running = {seq(1, 10, 9, 1), seq(2, 1000, 64, 4)};
  std::vector<SchedSequence> waiting = {seq(3, 500, 0, 0)};
  StepPlan p = plan_step(running, waiting, 1000, cfg);
  EXPECT_EQ(tokens_of(p, 1), 1);   // the decode is not held back by prefill
  EXPECT_EQ(tokens_of(p, 2), 64);  // the running prefill continues in a chunk
  EXPECT_EQ(tokens_of(p, 3), 0);   // nothing left for a new prompt this step
  EXPECT_TRUE(p.admitted.empty());
}

TEST(SchedulerTest, MaxNumSeqsBoundsAdmission) {
  SchedulerConfig cfg;
  cfg.max_num_seqs = 2;
  std::vector<SchedSequence> running = {seq(1, 10, 9, 1)};
  std::vector<SchedSequence> waiting = {seq(2, 5, 0, 0), seq(3, 5, 0, 0)};
  StepPlan p = plan_step(running, waiting, 1000, cfg);
  ASSERT_EQ(p.admitted.size(), 1u);
  EXPECT_EQ(p.admitted[0], 2u);
}

TEST(SchedulerTest, OutOfBlocksPreemptsTheLatestRunningSequence) {
  SchedulerConfig cfg;
  cfg.block_size = 4;
  // Both decodes need a new block (8 tokens in 2 blocks, 9th needs a third); one is available.
  std::vector<SchedSequence> running = {seq(1, 9, 8, 2), seq(2, 9, 8, 2), seq(3, 9, 8, 2)};
  StepPlan p = plan_step(running, {}, 1, cfg);
  EXPECT_EQ(tokens_of(p, 1), 1);
  EXPECT_EQ(tokens_of(p, 2), 1);  // got the blocks freed from 3
  ASSERT_EQ(p.preempted.size(), 1u);
  EXPECT_EQ(p.preempted[0], 3u);
}

TEST(SchedulerTest, LoneDecodeWithoutBlockPreemptsItself) {
  SchedulerConfig cfg;
  cfg.block_size = 4;
  std::vector<SchedSequence> running = {seq(1, 9, 8, 2)};
  StepPlan p = plan_step(running, {}, 0, cfg);
  EXPECT_TRUE(p.items.empty());
  ASSERT_EQ(p.preempted.size(), 1u);
}

TEST(SchedulerTest, WaitingPromptIsChunkedToTheFreeBlocks) {
  SchedulerConfig cfg;
  cfg.block_size = 4;
  std::vector<SchedSequence> waiting = {seq(1, 100, 0, 0)};
  StepPlan p = plan_step({}, waiting, 3, cfg);
  EXPECT_EQ(tokens_of(p, 1), 12);
}

TEST(SchedulerTest, PriorityPolicyPreemptsLessImportantRunning) {
  SchedulerConfig cfg;
  cfg.max_num_seqs = 2;
  std::vector<SchedSequence> running = {seq(1, 10, 9, 1, 10), seq(2, 10, 9, 1, 10)};
  std::vector<SchedSequence> waiting = {seq(3, 5, 0, 0, 0)};
  StepPlan p = plan_step(running, waiting, 1000, cfg);
  ASSERT_EQ(p.preempted.size(), 1u);
  EXPECT_EQ(p.preempted[0], 2u);  // the later of the two
  EXPECT_EQ(tokens_of(p, 2), 0);  // what it was given is taken back
  EXPECT_EQ(tokens_of(p, 3), 5);

  cfg.policy = SchedulingPolicy::kFcfs;
  p = plan_step(running, waiting, 1000, cfg);
  EXPECT_TRUE(p.preempted.empty());
  EXPECT_TRUE(p.admitted.empty());
}

TEST(SchedulerTest, PriorityOrdersWaitingAndFcfsIgnoresIt) {
  SchedulerConfig cfg;
  cfg.max_num_seqs = 1;
  std::vector<SchedSequence> waiting = {seq(1, 5, 0, 0, 10), seq(2, 5, 0, 0, 0)};
  EXPECT_EQ(plan_step({}, waiting, 100, cfg).admitted.at(0), 2u);
  cfg.policy = SchedulingPolicy::kFcfs;
  EXPECT_EQ(plan_step({}, waiting, 100, cfg).admitted.at(0), 1u);
}

TEST(SchedulerTest, PrefixCachedTokensAreNotRecomputed) {
  SchedulerConfig cfg;
  cfg.block_size = 4;
  SchedSequence w = seq(1, 10, 0, 0);
  w.n_cached = 8;
  w.n_cached_unused_blocks = 2;
  StepPlan p = plan_step({}, std::vector<SchedSequence>{w}, 3, cfg);
  EXPECT_EQ(tokens_of(p, 1), 2);
  // Two unused cached blocks count as available; taking them leaves 1 for the remainder.
  p = plan_step({}, std::vector<SchedSequence>{w}, 2, cfg);
  EXPECT_EQ(tokens_of(p, 1), 0);
}

TEST(SchedulerTest, PolicyNames) {
  EXPECT_EQ(*scheduling_policy_from_name("fcfs"), SchedulingPolicy::kFcfs);
  EXPECT_EQ(*scheduling_policy_from_name("priority"), SchedulingPolicy::kPriority);
  EXPECT_FALSE(scheduling_policy_from_name("lifo").ok());
}

}  // namespace
}  // namespace seekserve
