#include "scheduler/scheduler.h"

#include <algorithm>

namespace seekserve {

Result<SchedulingPolicy> scheduling_policy_from_name(std::string_view name) {
  if (name == "fcfs") return SchedulingPolicy::kFcfs;
  if (name == "priority") return SchedulingPolicy::kPriority;
  return invalid_argument("--scheduling-policy: '{}' is not fcfs or priority", name);
}

namespace {

struct Planner {
  const SchedulerConfig& cfg;
  int64_t avail;
  int64_t budget;
  int64_t prefill_budget;
  StepPlan plan;

  // Running sequences, most important first; [0, end) are still running.
  std::vector<const SchedSequence*> run;
  size_t end = 0;
  std::vector<int64_t> sched_tokens;  // per run index: tokens scheduled this step (0 = none)
  std::vector<int64_t> sched_blocks;  // per run index: new blocks those tokens take
  std::vector<bool> sched_prefill;

  bool before(const SchedSequence& a, const SchedSequence& b) const {
    if (cfg.policy == SchedulingPolicy::kPriority && a.priority != b.priority)
      return a.priority < b.priority;
    if (a.arrival != b.arrival) return a.arrival < b.arrival;
    return a.id < b.id;
  }
  int64_t blocks_for(int64_t n) const { return (n + cfg.block_size - 1) / cfg.block_size; }

  // Frees the least important running sequence (run[end - 1]), undoing what it was given.
  void preempt_last() {
    const size_t i = --end;
    plan.preempted.push_back(run[i]->id);
    avail += run[i]->n_blocks + sched_blocks[i];
    budget += sched_tokens[i];
    if (sched_prefill[i]) prefill_budget += sched_tokens[i];
    sched_tokens[i] = sched_blocks[i] = 0;
  }

  void schedule_running() {
    for (size_t i = 0; i < end; ++i) {
      const SchedSequence& s = *run[i];
      const int64_t remaining = s.n_tokens - s.n_computed;
      if (remaining <= 0 || budget <= 0) continue;
      const bool prefill = remaining > 1;
      int64_t n = std::min(remaining, budget);
      if (prefill) n = std::min(n, prefill_budget);
      if (n <= 0) continue;
      // Tokens that fit in the blocks it holds plus the available ones.
      auto fitting = [&] { return (s.n_blocks + avail) * cfg.block_size - s.n_computed; };
      while (fitting() < (prefill ? 1 : n) && end - 1 > i) preempt_last();
      if (fitting() < (prefill ? 1 : n)) {
        if (!prefill) {  // a decode that cannot get a block: recompute it later
          preempt_last();
          return;
        }
        continue;
      }
      n = std::min(n, fitting());
      const int64_t need = std::max<int64_t>(0, blocks_for(s.n_computed + n) - s.n_blocks);
      avail -= need;
      budget -= n;
      if (prefill) prefill_budget -= n;
      sched_tokens[i] = n;
      sched_blocks[i] = need;
      sched_prefill[i] = prefill;
    }
  }

  void admit_waiting(std::span<const SchedSequence> waiting) {
    std::vector<const SchedSequence*> wait;
    for (const SchedSequence& s : waiting) wait.push_back(&s);
    std::sort(wait.begin(), wait.end(), [&](auto* a, auto* b) { return before(*a, *b); });
    const bool may_preempt = cfg.policy == SchedulingPolicy::kPriority;
    auto victim_behind = [&](const SchedSequence& w) {
      return may_preempt && end > 0 && before(w, *run[end - 1]);
    };
    for (const SchedSequence* wp : wait) {
      const SchedSequence& w = *wp;
      if (static_cast<int64_t>(end) >= cfg.max_num_seqs) {
        if (!victim_behind(w)) break;
        preempt_last();
      }
      const int64_t remaining = w.n_tokens - w.n_cached;
      const int64_t cached_blocks = w.n_cached / cfg.block_size;
      auto fitting = [&] {
        return (avail - w.n_cached_unused_blocks + cached_blocks) * cfg.block_size - w.n_cached;
      };
      while (fitting() < 1 && victim_behind(w)) preempt_last();
      int64_t n = std::min({remaining, budget, prefill_budget, fitting()});
      if (n <= 0) break;  // head of the line waits: order is kept
      avail -= w.n_cached_unused_blocks + (blocks_for(w.n_cached + n) - cached_blocks);
      budget -= n;
      prefill_budget -= n;
      plan.admitted.push_back(w.id);
      run.insert(run.begin() + static_cast<std::ptrdiff_t>(end), wp);
      sched_tokens.insert(sched_tokens.begin() + static_cast<std::ptrdiff_t>(end), n);
      sched_blocks.insert(sched_blocks.begin() + static_cast<std::ptrdiff_t>(end), 0);
      sched_prefill.insert(sched_prefill.begin() + static_cast<std::ptrdiff_t>(end), true);
      ++end;
      // A newly admitted sequence is never a victim of a later one in this step: it sorts
      // before every later waiting sequence, and victim_behind() compares against run[end-1].
    }
  }
};

}  // namespace

StepPlan plan_step(std::span<const SchedSequence> running, std::span<const SchedSequence> waiting,
                   int64_t available_blocks, const SchedulerConfig& config) {
  Planner p{config,
            available_blocks,
            config.max_num_batched_tokens,
            config.max_prefill_tokens,
            {},
            {},
            0,
            {},
            {},
            {}};
  for (const SchedSequence& s : running) p.run.push_back(&s);
  std::sort(p.run.begin(), p.run.end(), [&](auto* a, auto* b) { return p.before(*a, *b); });
  p.end = p.run.size();
  p.sched_tokens.assign(p.end, 0);
  p.sched_blocks.assign(p.end, 0);
  p.sched_prefill.assign(p.end, false);
  p.schedule_running();
  p.admit_waiting(waiting);
  for (size_t i = 0; i < p.end; ++i) {
    if (p.sched_tokens[i] > 0) {
      p.plan.items.push_back({p.run[i]->id, p.sched_tokens[i]});
      p.plan.n_tokens += p.sched_tokens[i];
    }
  }
  return std::move(p.plan);
}

}  // namespace seekserve
