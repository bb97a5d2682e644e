#pragma once
// The step planner: given the sequences the engine holds, decides what runs in the next forward
// pass. A plain function of plain values (like vLLM v1's scheduler output): it knows nothing of
// the model, the KV cache's contents or HTTP, so it is unit-tested on numbers alone.
//
// Order of a step:
//   1. running sequences, most important first ((priority, arrival) under kPriority, arrival
//      under kFcfs): a decoding one gets 1 token, one still prefilling gets its next chunk;
//      when the blocks a running sequence needs are not available, the least important running
//      sequence (largest (priority, arrival)) is preempted — its blocks are freed and it is
//      recomputed later — never an out-of-memory failure;
//   2. waiting sequences in the same order are admitted while max_num_seqs, the token budget
//      and free blocks allow; a long prompt is split into chunks.
// Prefill chunks together are bounded by max_prefill_tokens (the step-time target converted to
// tokens by the engine), and everything by max_num_batched_tokens. Under kPriority a waiting
// sequence more important than a running one may preempt it to get in.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace seekserve {

enum class SchedulingPolicy { kFcfs, kPriority };
Result<SchedulingPolicy> scheduling_policy_from_name(std::string_view name);  // "fcfs"|"priority"

struct SchedulerConfig {
  int64_t max_num_batched_tokens = 4096;  // tokens per step, all sequences together
  int64_t max_num_seqs = 32;              // sequences holding KV blocks at once
  int64_t max_prefill_tokens = 4096;      // prefill tokens per step (from --max-step-ms)
  int64_t block_size = 16;
  SchedulingPolicy policy = SchedulingPolicy::kPriority;
};

// What the planner needs to know of one sequence.
struct SchedSequence {
  uint64_t id = 0;
  int32_t priority = 0;    // smaller runs first
  uint64_t arrival = 0;    // increasing submission number
  int64_t n_tokens = 0;    // tokens known: prompt + generated so far
  int64_t n_computed = 0;  // tokens whose KV values are in the cache
  int64_t n_blocks = 0;    // blocks it holds
  // Waiting sequences only: tokens the prefix cache would supply (a multiple of block_size,
  // < n_tokens), and how many of those cached blocks are currently unused (they count as
  // available blocks, so taking them uses up availability).
  int64_t n_cached = 0;
  int64_t n_cached_unused_blocks = 0;
};

struct StepPlan {
  struct Item {
    uint64_t id;
    int64_t n_tokens;  // tokens to compute this step, starting at the sequence's n_computed
  };
  std::vector<Item> items;          // what runs, running sequences first
  std::vector<uint64_t> preempted;  // running sequences to free and recompute later
  std::vector<uint64_t> admitted;   // waiting sequences that start (also listed in items)
  int64_t n_tokens = 0;             // sum of items' n_tokens
};

// `running` and `waiting` in any order; `available_blocks` as BlockManager::n_available().
StepPlan plan_step(std::span<const SchedSequence> running, std::span<const SchedSequence> waiting,
                   int64_t available_blocks, const SchedulerConfig& config);

}  // namespace seekserve
