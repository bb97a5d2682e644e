#include "engine/engine.h"

#include <cmath>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "model/model_weights.h"
#include "tools/make_model.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  std::string text;
  std::string finish_reason;
  int64_t completion_tokens = 0, cached_tokens = 0;
  Status error;
  bool timed_out = false;
};

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path dir = fs::temp_directory_path() / "seekserve_engine_test_tiny-v3";
    if (!fs::exists(dir / "model.safetensors")) {
      MakeModelOptions o;
      o.preset = "tiny-v3";
      o.out = dir.string();
      o.seed = 11;
      Status s = make_model(o);
      ASSERT_TRUE(s.ok()) << s.message();
    }
    dir_ = new std::string(dir.string());
    auto w = load_model_weights(*dir_);
    ASSERT_TRUE(w.ok()) << w.status().message();
    auto t = Tokenizer::create((*w)->tokenizer);
    ASSERT_TRUE(t.ok());
    tokenizer_ = new Tokenizer(std::move(*t));
    pool_ = new ThreadPool(1);
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete pool_;
    delete dir_;
  }

  std::unique_ptr<Engine> start(EngineOptions o) {
    auto w = load_model_weights(*dir_);
    EXPECT_TRUE(w.ok());
    auto model = std::make_unique<Model>(std::move(*w), *pool_);
    auto e = Engine::start(std::move(model), *tokenizer_, o);
    EXPECT_TRUE(e.ok()) << e.status().message();
    return std::move(*e);
  }

  static GenerationRequest request(const std::string& prompt, int64_t max_tokens) {
    GenerationRequest r;
    r.prompt = tokenizer_->encode(prompt, true);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    r.sampling.ignore_eos = true;
    return r;
  }

  static Outcome drain(RequestChannel& ch) {
    Outcome out;
    std::vector<EngineEvent> events;
    for (;;) {
      events.clear();
      ch.pop_all(events, std::chrono::milliseconds(10000));
      EXPECT_FALSE(events.empty()) << "no event within 10 s";
      if (events.empty()) return out;
      for (EngineEvent& e : events) {
        if (e.kind == EngineEvent::Kind::kToken) out.text += e.text;
        if (e.kind == EngineEvent::Kind::kStarted) out.cached_tokens = e.cached_tokens;
        if (e.kind == EngineEvent::Kind::kFinished) {
          out.text += e.text;
          out.finish_reason = e.finish_reason;
          out.completion_tokens = e.completion_tokens;
          return out;
        }
        if (e.kind == EngineEvent::Kind::kError) {
          out.error = e.error;
          out.timed_out = e.timed_out;
          return out;
        }
      }
    }
  }

  static Outcome run(Engine& e, GenerationRequest r) {
    auto ch = e.submit(std::move(r));
    EXPECT_TRUE(ch.ok()) << ch.status().message();
    return drain(**ch);
  }

  static void wait_idle(Engine& e) {
    for (int i = 0; i < 500; ++i) {
      EngineStats st = e.stats();
      if (st.running == 0 && st.waiting == 0 && st.kv_blocks_in_use == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "engine did not go idle";
  }

  static std::string* dir_;
  static Tokenizer* tokenizer_;
  static ThreadPool* pool_;
};
std::string* EngineTest::dir_ = nullptr;
Tokenizer* EngineTest::tokenizer_ = nullptr;
ThreadPool* EngineTest::pool_ = nullptr;

std::vector<std::string> prompts() {
  std::vector<std::string> p;
  for (int i = 0; i < 6; ++i)
    p.push_back("Request number " + std::to_string(i) +
                std::string(static_cast<size_t>(i * 7), 'x'));
  return p;
}

// Concurrent greedy requests, batched and chunked, each produce what they produce alone; with
// a KV cache too small for all of them at once, preemption and recompute keep that true.
TEST_F(EngineTest, BatchedAndPreemptedEqualAlone) {
  EngineOptions o;
  o.n_blocks = 64;
  o.block_size = 4;
  auto engine = start(o);
  std::vector<Outcome> alone;
  for (const std::string& p : prompts()) alone.push_back(run(*engine, request(p, 24)));
  for (int64_t n_blocks : {int64_t{64}, int64_t{16}}) {
    o.n_blocks = n_blocks;
    o.max_step_ms = 0.01;  // tiny prefill chunks
    auto e = start(o);
    std::vector<std::shared_ptr<RequestChannel>> chans;
    for (const std::string& p : prompts()) chans.push_back(*e->submit(request(p, 24)));
    for (size_t i = 0; i < chans.size(); ++i) {
      Outcome got = drain(*chans[i]);
      EXPECT_EQ(got.text, alone[i].text) << "prompt " << i << " with " << n_blocks << " blocks";
      EXPECT_EQ(got.finish_reason, "length");
      EXPECT_EQ(got.completion_tokens, 24);
    }
    if (n_blocks == 16) {
      EXPECT_GT(e->stats().preemptions, 0);
    }
    wait_idle(*e);
  }
}

TEST_F(EngineTest, SharedPrefixIsServedFromTheCache) {
  EngineOptions o;
  o.n_blocks = 64;
  auto e = start(o);
  const std::string prefix(200, 'a');
  Outcome first = run(*e, request(prefix + " one", 4));
  const int64_t hits_before = e->stats().prefix_cache_hits;
  Outcome second = run(*e, request(prefix + " two", 4));
  EXPECT_EQ(first.cached_tokens, 0);
  EXPECT_GE(second.cached_tokens, 16);
  EXPECT_EQ(e->stats().prefix_cache_hits - hits_before, second.cached_tokens);
  wait_idle(*e);
}

TEST_F(EngineTest, CancelFreesTheSequence) {
  EngineOptions o;
  o.n_blocks = 64;
  auto e = start(o);
  auto ch = e->submit(request("cancel me", 400));
  ASSERT_TRUE(ch.ok());
  std::vector<EngineEvent> events;
  while (events.size() < 3) (*ch)->pop_all(events, std::chrono::milliseconds(5000));
  e->cancel((*ch)->id());
  Outcome out = drain(**ch);
  EXPECT_EQ(out.finish_reason, "cancelled");
  wait_idle(*e);
}

TEST_F(EngineTest, FullQueueAndDeadlines) {
  EngineOptions o;
  o.n_blocks = 64;
  o.max_num_seqs = 1;
  o.max_queue = 1;
  auto e = start(o);
  auto busy = e->submit(request("long one", 400));
  ASSERT_TRUE(busy.ok());
  std::vector<EngineEvent> events;
  while (events.empty()) (*busy)->pop_all(events, std::chrono::milliseconds(5000));
  GenerationRequest late = request("late", 4);
  late.deadline = EngineClock::now() + std::chrono::milliseconds(50);
  auto queued = e->submit(late);
  ASSERT_TRUE(queued.ok());
  auto rejected = e->submit(request("no room", 4));
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.status().code(), StatusCode::kResourceExhausted);
  EXPECT_GE(e->retry_after_seconds(), 1);
  Outcome out = drain(**queued);
  EXPECT_TRUE(out.timed_out);
  EXPECT_FALSE(out.error.ok());
  e->cancel((*busy)->id());
  wait_idle(*e);
  // Requests that can never run are refused at once.
  EXPECT_EQ(e->submit(request("too long", 100000)).status().code(), StatusCode::kInvalidArgument);
  GenerationRequest bad = request("x", 1);
  bad.prompt.push_back(-3);
  EXPECT_EQ(e->submit(bad).status().code(), StatusCode::kInvalidArgument);
}

// Events of an n-choice request, per choice: text, tokens, finish reasons.
struct Choices {
  std::vector<std::string> text;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::string> finish;
  std::vector<std::vector<EngineEvent>> token_events;
};

Choices drain_choices(RequestChannel& ch, int n) {
  Choices c;
  c.text.resize(n);
  c.tokens.resize(n);
  c.finish.resize(n);
  c.token_events.resize(n);
  int finished = 0;
  std::vector<EngineEvent> events;
  while (finished < n) {
    events.clear();
    ch.pop_all(events, std::chrono::milliseconds(10000));
    EXPECT_FALSE(events.empty()) << "no event within 10 s";
    if (events.empty()) return c;
    for (EngineEvent& e : events) {
      EXPECT_NE(e.kind, EngineEvent::Kind::kError) << e.error.message();
      if (e.kind == EngineEvent::Kind::kError) return c;
      const size_t i = static_cast<size_t>(e.index);
      if (e.kind == EngineEvent::Kind::kToken) {
        c.text[i] += e.text;
        c.tokens[i].push_back(e.token);
        c.token_events[i].push_back(e);
      }
      if (e.kind == EngineEvent::Kind::kFinished) {
        c.text[i] += e.text;
        c.finish[i] = e.finish_reason;
        ++finished;
      }
    }
  }
  return c;
}

// n > 1: one prefill, forked. Choice i equals a lone request with seed + i; the prompt is
// computed once (tokens through the model: the prompt plus each choice's decodes).
TEST_F(EngineTest, ForkedChoicesShareOnePrefill) {
  EngineOptions o;
  o.n_blocks = 64;
  o.block_size = 4;
  o.prefix_cache = false;  // the fork shares blocks without the prefix cache's help
  auto e = start(o);
  GenerationRequest r = request("Forked prompt, not a multiple of four", 6);
  const int64_t n_prompt = static_cast<int64_t>(r.prompt.size());
  ASSERT_NE(n_prompt % 4, 0);  // the last prompt block is partial: copied, not shared
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 1234;
  r.logprobs = 0;  // token ids in the events
  std::vector<std::string> alone;
  for (uint64_t i = 0; i < 3; ++i) {
    GenerationRequest one = r;
    one.sampling.seed = r.sampling.seed + i;
    alone.push_back(run(*e, std::move(one)).text);
  }
  wait_idle(*e);
  const int64_t computed = e->stats().computed_tokens;
  const int64_t prompt_tokens = e->stats().prompt_tokens;
  GenerationRequest forked = r;
  forked.n = 3;
  auto ch = e->submit(std::move(forked));
  ASSERT_TRUE(ch.ok());
  Choices c = drain_choices(**ch, 3);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(c.text[i], alone[i]) << "choice " << i;
    EXPECT_EQ(c.finish[i], "length");
  }
  EXPECT_EQ(e->stats().computed_tokens - computed, n_prompt + 3 * (6 - 1));
  EXPECT_EQ(e->stats().prompt_tokens - prompt_tokens, n_prompt);
  wait_idle(*e);
  // Greedy: every choice is the same.
  GenerationRequest greedy = request("Greedy twins", 8);
  greedy.n = 2;
  ch = e->submit(std::move(greedy));
  ASSERT_TRUE(ch.ok());
  c = drain_choices(**ch, 2);
  EXPECT_EQ(c.text[0], c.text[1]);
  EXPECT_EQ(c.text[0], run(*e, request("Greedy twins", 8)).text);
  // Cancelling the request cancels every choice.
  GenerationRequest longer = request("cancel all", 200);
  longer.n = 3;
  ch = e->submit(std::move(longer));
  ASSERT_TRUE(ch.ok());
  std::vector<EngineEvent> events;
  while (events.size() < 6) (*ch)->pop_all(events, std::chrono::milliseconds(5000));
  e->cancel((*ch)->id());
  c = drain_choices(**ch, 3);
  for (const std::string& f : c.finish) EXPECT_EQ(f, "cancelled");
  wait_idle(*e);
}

// Logprobs: the model's distribution (log-softmax of the raw logits); under greedy the chosen
// token is the most likely one.
TEST_F(EngineTest, LogprobsOfGreedyTokens) {
  EngineOptions o;
  o.n_blocks = 64;
  auto e = start(o);
  GenerationRequest r = request("Log probabilities", 5);
  r.logprobs = 4;
  auto ch = e->submit(std::move(r));
  ASSERT_TRUE(ch.ok());
  Choices c = drain_choices(**ch, 1);
  ASSERT_EQ(c.token_events[0].size(), 5u);
  for (const EngineEvent& ev : c.token_events[0]) {
    ASSERT_EQ(ev.top_logprobs.size(), 4u);
    EXPECT_LE(ev.logprob, 0.0f);
    EXPECT_EQ(ev.top_logprobs[0].id, ev.token);
    EXPECT_FLOAT_EQ(ev.top_logprobs[0].logprob, ev.logprob);
    double mass = 0;
    for (size_t k = 0; k < 4; ++k) {
      mass += std::exp(ev.top_logprobs[k].logprob);
      if (k > 0) {
        EXPECT_LE(ev.top_logprobs[k].logprob, ev.top_logprobs[k - 1].logprob);
      }
    }
    EXPECT_LE(mass, 1.0 + 1e-5);
  }
  wait_idle(*e);
}

TEST(LogprobTableTest, IsLogSoftmaxOverValidIds) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 100.0f};
  const std::vector<bool> valid = {true, true, true, false};  // id 3 masked
  const LogprobTable t = logprob_table(logits, valid, 2);
  const double z = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
  EXPECT_NEAR(t.log_z, z, 1e-9);
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].id, 1);
  EXPECT_NEAR(t.top[0].logprob, 3.0 - z, 1e-6);
  EXPECT_EQ(t.top[1].id, 2);
}

TEST_F(EngineTest, LimitsChangeAtRunTime) {
  EngineOptions o;
  o.n_blocks = 64;
  o.max_num_seqs = 4;
  o.max_num_seqs_limit = 8;
  auto e = start(o);
  EXPECT_EQ(e->stats().max_num_seqs, 4);
  EXPECT_TRUE(e->set_limits({8, 0}).ok());
  EXPECT_EQ(e->stats().max_num_seqs, 8);
  EXPECT_EQ(e->stats().max_num_batched_tokens, 4096);
  EXPECT_FALSE(e->set_limits({9, 0}).ok());
  EXPECT_FALSE(e->set_limits({-1, 0}).ok());
  EXPECT_TRUE(e->set_limits({1, 64}).ok());
  EXPECT_EQ(e->stats().max_num_batched_tokens, 64);
  // Two requests with one slot: both complete (one after the other).
  auto a = e->submit(request("first", 4));
  auto b = e->submit(request("second", 4));
  EXPECT_EQ(drain(**a).finish_reason, "length");
  EXPECT_EQ(drain(**b).finish_reason, "length");
  wait_idle(*e);
}

// A long prompt is read in chunks, one per step, and the streams already running get a token
// in every one of those steps: they never wait for more than one chunk's compute.
TEST_F(EngineTest, LongPromptDoesNotStallRunningStreams) {
  EngineOptions o;
  o.n_blocks = 256;
  o.max_step_ms = 0.01;  // the smallest chunks (16 tokens) once a prefill step was measured
  auto e = start(o);
  // A's prompt (>= 32 tokens) is a measured prefill step.
  GenerationRequest stream = request("", 200);
  stream.prompt.clear();
  for (int i = 0; i < 64; ++i) stream.prompt.push_back(500 + i);
  auto a = e->submit(std::move(stream));
  ASSERT_TRUE(a.ok());
  std::vector<EngineEvent> a_events;
  while (a_events.size() < 4) (*a)->pop_all(a_events, std::chrono::milliseconds(5000));
  GenerationRequest long_prompt;
  for (int i = 0; i < 400; ++i) long_prompt.prompt.push_back(1000 + i);
  long_prompt.max_tokens = 1;
  long_prompt.sampling.temperature = 0;
  auto b = e->submit(std::move(long_prompt));
  ASSERT_TRUE(b.ok());
  std::vector<EngineEvent> b_events;
  EngineClock::time_point b_started{}, b_token{};
  while (b_token == EngineClock::time_point{}) {
    b_events.clear();
    (*b)->pop_all(b_events, std::chrono::milliseconds(10000));
    ASSERT_FALSE(b_events.empty());
    for (const EngineEvent& ev : b_events) {
      if (ev.kind == EngineEvent::Kind::kStarted) b_started = ev.time;
      if (ev.kind == EngineEvent::Kind::kToken) b_token = ev.time;
      ASSERT_NE(ev.kind, EngineEvent::Kind::kError);
    }
  }
  e->cancel((*a)->id());
  for (;;) {
    std::vector<EngineEvent> more;
    (*a)->pop_all(more, std::chrono::milliseconds(10000));
    ASSERT_FALSE(more.empty());
    a_events.insert(a_events.end(), more.begin(), more.end());
    if (a_events.back().kind == EngineEvent::Kind::kFinished) break;
  }
  int64_t during = 0;
  for (const EngineEvent& ev : a_events)
    during += ev.kind == EngineEvent::Kind::kToken && ev.time >= b_started && ev.time <= b_token;
  // 400 tokens in chunks of at most 16: at least 25 steps, each with a token for A.
  EXPECT_GE(during, 24) << "A's tokens while B's prompt was read";
  wait_idle(*e);
}

}  // namespace
}  // namespace seekserve
