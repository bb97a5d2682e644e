#include "engine/engine.h"

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

}  // namespace
}  // namespace seekserve
