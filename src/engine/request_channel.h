#pragma once
// What the engine tells one request's reader (an HTTP thread): events in order, through a
// mutex-guarded queue. The engine pushes, the reader pops; either side may go away first (the
// channel is shared_ptr-owned by both).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/sampler.h"

namespace seekserve {

using EngineClock = std::chrono::steady_clock;

struct EngineEvent {
  enum class Kind {
    kStarted,   // admitted to the running batch for the first time
    kToken,     // one generated token; `text` is what it completed (may be empty)
    kFinished,  // the last event of a request that ran
    kError,     // the last event of a request that failed or was dropped before running
  };
  Kind kind = Kind::kToken;
  int32_t index = 0;              // which of the request's n choices (kToken, kFinished)
  EngineClock::time_point time;   // when the engine produced it
  std::string text;               // kToken: what the token completed; kFinished: the held-back rest
  int64_t completion_tokens = 0;  // tokens generated so far (kToken, kFinished)
  int64_t prompt_tokens = 0;      // kStarted, kFinished
  int64_t cached_tokens = 0;      // kStarted, kFinished: prompt tokens the prefix cache supplied
  double queue_seconds = 0;       // kStarted: submission to first scheduling
  std::string finish_reason;      // kFinished: "stop", "length", "cancelled", "timeout"
  Status error;                   // kError
  bool timed_out = false;         // kError: dropped after waiting past its deadline
  // kToken of a request that asked for log-probabilities: the token, its logprob and the most
  // likely alternatives (see logprob_table in engine/sampler.h).
  int32_t token = -1;
  float logprob = 0;
  std::vector<TokenLogprob> top_logprobs;
};

class RequestChannel {
 public:
  explicit RequestChannel(uint64_t id) : id_(id) {}
  uint64_t id() const { return id_; }

  void push(EngineEvent event);  // queues it and wakes the reader
  // Queues it without waking the reader: the engine batches a step's events so the reader
  // wakes once per step, not once per event. Returns true when this is the first event since
  // the last notify() (the caller then owes the channel one notify()).
  bool push_quiet(EngineEvent event);
  void notify();
  // Readers that cannot block on the channel (an asynchronous HTTP connection) register a
  // callback instead: push() and notify() call it, on the engine's thread, in place of waking a
  // blocked pop_all(). It must be quick (post a wake-up elsewhere). nullptr unregisters; once
  // set_notifier() returns, the old callback is not running and will not be called again.
  void set_notifier(std::function<void()> notifier);
  // Moves every queued event into `out` (appending); waits up to `timeout` for the first.
  // Returns false when none arrived in time.
  bool pop_all(std::vector<EngineEvent>& out, std::chrono::milliseconds timeout);

 private:
  uint64_t id_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<EngineEvent> events_;
  bool notify_owed_ = false;
  std::function<void()> notifier_;
};

}  // namespace seekserve
