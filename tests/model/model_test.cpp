#include "model/model.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>

#include "formats/model_presets.h"
#include "tools/make_model.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;

class ModelTest : public ::testing::TestWithParam<const char*> {
 protected:
  static std::string model_dir(const std::string& preset) {
    const fs::path dir = fs::temp_directory_path() / ("seekserve_model_test_" + preset);
    if (!fs::exists(dir / "model.safetensors")) {
      MakeModelOptions o;
      o.preset = preset;
      o.out = dir.string();
      o.seed = 11;
      Status s = make_model(o);
      EXPECT_TRUE(s.ok()) << s.message();
    }
    return dir.string();
  }
};

std::vector<int32_t> blocks(int32_t first, int32_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = first + i;
  return t;
}

// Greedy generation of 8 different prompts batched together equals each prompt run alone.
void expect_batched_greedy_equals_alone(Model& model) {
  constexpr int kSeqs = 8, kSteps = 6, kBlockSize = 16, kBlocksPerSeq = 4;
  auto cache = KvCache::create(model.config(), kSeqs * kBlocksPerSeq, kBlockSize, DType::kF32);
  ASSERT_TRUE(cache.ok());
  std::vector<std::vector<int32_t>> prompts;
  for (int s = 0; s < kSeqs; ++s) {
    std::vector<int32_t> p;
    for (int i = 0; i < 3 + 4 * s; ++i) p.push_back((s * 1009 + i * 131 + 7) % 120000);
    prompts.push_back(p);
  }
  auto argmax = [&](const float* row) {
    return static_cast<int32_t>(std::max_element(row, row + model.n_vocab()) - row);
  };
  // Alone: each sequence in its own blocks, one at a time.
  std::vector<std::vector<int32_t>> alone(kSeqs);
  for (int s = 0; s < kSeqs; ++s) {
    const auto table = blocks(s * kBlocksPerSeq, kBlocksPerSeq);
    std::vector<float> logits;
    SequenceInput in{prompts[s], 0, table, false};
    ASSERT_TRUE(model.forward({&in, 1}, *cache, logits).ok());
    int64_t n_past = static_cast<int64_t>(prompts[s].size());
    for (int step = 0; step < kSteps; ++step) {
      const int32_t tok = argmax(logits.data());
      alone[s].push_back(tok);
      SequenceInput next{{&alone[s].back(), 1}, n_past++, table, false};
      ASSERT_TRUE(model.forward({&next, 1}, *cache, logits).ok());
    }
  }
  // Batched: all prompts in one step (mixed lengths), then all decodes together.
  std::vector<std::vector<int32_t>> batched(kSeqs);
  std::vector<std::vector<int32_t>> tables;
  for (int s = 0; s < kSeqs; ++s) tables.push_back(blocks(s * kBlocksPerSeq, kBlocksPerSeq));
  std::vector<SequenceInput> batch;
  for (int s = 0; s < kSeqs; ++s) batch.push_back({prompts[s], 0, tables[s], false});
  std::vector<float> logits;
  ASSERT_TRUE(model.forward(batch, *cache, logits).ok());
  std::vector<int32_t> last(kSeqs);
  for (int step = 0; step < kSteps; ++step) {
    batch.clear();
    for (int s = 0; s < kSeqs; ++s) {
      last[s] = argmax(logits.data() + static_cast<size_t>(s) * model.n_vocab());
      batched[s].push_back(last[s]);
      batch.push_back(
          {{&last[s], 1}, static_cast<int64_t>(prompts[s].size()) + step, tables[s], false});
    }
    ASSERT_TRUE(model.forward(batch, *cache, logits).ok());
  }
  for (int s = 0; s < kSeqs; ++s) EXPECT_EQ(batched[s], alone[s]) << "sequence " << s;
}

TEST_P(ModelTest, BatchedGreedyEqualsAlone) {
  auto weights = load_model_weights(model_dir(GetParam()));
  ASSERT_TRUE(weights.ok()) << weights.status().message();
  ThreadPool pool(2);
  Model model(std::move(*weights), pool);
  expect_batched_greedy_equals_alone(model);
}

// Q8_0 GGUF weights held as a private copy are repacked at load for the VNNI kernel where it
// runs (kernels/matmul.h WeightLayout::kRows16): batched greedy still equals each prompt alone,
// and the logits stay those of the file's layout up to f32 summation order.
TEST(ModelQ8Test, PackedAtLoadBatchInvariantAndClose) {
  const fs::path file = fs::temp_directory_path() / "seekserve_model_test_tiny-qwen2-q8_0.gguf";
  if (!fs::exists(file)) {
    MakeModelOptions o;
    o.preset = "tiny-qwen2";
    o.out = file.string();
    o.format = "gguf";
    o.dtype = "q8_0";
    o.seed = 11;
    const Status s = make_model(o);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  std::vector<float> logits[2];
  for (const bool pack : {true, false}) {
    LoadOptions options;
    options.memory = WeightMemory::kCopy;
    options.pack_weights = pack;
    auto weights = load_model_weights(file.string(), options);
    ASSERT_TRUE(weights.ok()) << weights.status().message();
    WeightView as_in_file = (*weights)->layers[0].mlp.gate;
    as_in_file.layout = WeightLayout::kRows;
    const bool pays = rows16_packing_pays(as_in_file);  // this CPU runs the packed kernel
    EXPECT_EQ((*weights)->packed_bytes > 0, pack && pays);
    EXPECT_EQ((*weights)->layers[0].mlp.down.layout == WeightLayout::kRows16, pack && pays);
    ThreadPool pool(2);
    Model model(std::move(*weights), pool);
    if (pack) expect_batched_greedy_equals_alone(model);
    auto cache = KvCache::create(model.config(), 2, 16, DType::kF32);
    ASSERT_TRUE(cache.ok());
    const std::vector<int32_t> prompt = {3, 1000, 77, 5, 9000, 12};
    const auto table = blocks(0, 1);
    SequenceInput in{prompt, 0, table, true};
    ASSERT_TRUE(model.forward({&in, 1}, *cache, logits[pack ? 0 : 1]).ok());
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  float max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < logits[0].size(); ++i) {
    max_abs = std::max(max_abs, std::fabs(logits[1][i]));
    max_diff = std::max(max_diff, std::fabs(logits[0][i] - logits[1][i]));
  }
  EXPECT_LE(max_diff, 1e-3f * max_abs);
}

// The weights held as a private copy in 2 MiB pages give the same logits, bit for bit, as the
// mapped file (the copy is the default where the model fits in memory).
TEST_P(ModelTest, CopiedWeightsEqualMappedWeights) {
  std::vector<float> logits[2];
  const WeightMemory modes[2] = {WeightMemory::kMmap, WeightMemory::kCopy};
  for (int i = 0; i < 2; ++i) {
    auto weights = load_model_weights(model_dir(GetParam()), LoadOptions{modes[i]});
    ASSERT_TRUE(weights.ok()) << weights.status().message();
    EXPECT_EQ((*weights)->memory, modes[i]);
    ThreadPool pool(2);
    Model model(std::move(*weights), pool);
    auto cache = KvCache::create(model.config(), 2, 16, DType::kF32);
    ASSERT_TRUE(cache.ok());
    const std::vector<int32_t> prompt = {3, 1000, 77, 5, 9000, 12};
    const auto table = blocks(0, 1);
    SequenceInput in{prompt, 0, table, true};
    ASSERT_TRUE(model.forward({&in, 1}, *cache, logits[i]).ok());
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  EXPECT_EQ(0, std::memcmp(logits[0].data(), logits[1].data(), logits[0].size() * sizeof(float)));
}

TEST_P(ModelTest, BadInputIsAnErrorNotACrash) {
  auto weights = load_model_weights(model_dir(GetParam()));
  ASSERT_TRUE(weights.ok());
  ThreadPool pool(1);
  Model model(std::move(*weights), pool);
  auto cache = KvCache::create(model.config(), 2, 16, DType::kF32);
  ASSERT_TRUE(cache.ok());
  std::vector<float> logits;
  const auto table = blocks(0, 1);
  std::vector<int32_t> bad = {1, static_cast<int32_t>(model.n_vocab())};
  SequenceInput in{bad, 0, table, false};
  Status s = model.forward({&in, 1}, *cache, logits);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> long_prompt(17, 5);  // one block holds 16
  SequenceInput in2{long_prompt, 0, table, false};
  EXPECT_EQ(model.forward({&in2, 1}, *cache, logits).code(), StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(TinyPresets, ModelTest,
                         ::testing::Values("tiny-v3", "tiny-v2-lite", "tiny-qwen2", "tiny-llama"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(Routing, V3BiasSelectsButDoesNotWeigh) {
  ModelConfig c =
      find_model_preset("tiny-v3")->config;  // 16 experts, 4 groups of 4, top-2 groups, top-4
  std::vector<float> logits(16, -4.0f), bias(16, 0.0f);
  // Group 0 holds the best single expert but group 1 has the best pair (sum of top 2).
  logits[0] = 3.0f;
  logits[4] = 2.0f;
  logits[5] = 2.0f;
  logits[8] = -1.0f;  // group 2: 0.54, below group 0's 0.97, yet each beats the 4th pick (0.018)
  logits[9] = -1.0f;
  auto chosen = route_token(c, logits.data(), bias.data());
  ASSERT_EQ(chosen.size(), 4u);
  std::vector<int32_t> ids;
  double sum = 0;
  for (auto ch : chosen) {
    ids.push_back(ch.expert);
    sum += ch.weight;
  }
  // Groups 1 (4,5) and 0 (0 + one of 1..3) win; group 2's experts are masked.
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 4, 5}));
  EXPECT_NEAR(sum, 2.5, 1e-5);  // normalised, times routed_scaling_factor
  // A bias lifting expert 12 into the selection changes the choice, not the weights' source.
  bias[12] = 10.0f;
  bias[13] = 10.0f;
  chosen = route_token(c, logits.data(), bias.data());
  bool has12 = false;
  for (auto ch : chosen) {
    if (ch.expert == 12) {
      has12 = true;
      // weight from the unbiased sigmoid(-4), normalised among the chosen
      EXPECT_LT(ch.weight, 0.1f);
    }
  }
  EXPECT_TRUE(has12);
}

TEST(Routing, V2GreedySoftmaxWithoutRenormalisation) {
  ModelConfig c =
      find_model_preset("tiny-v2-lite")->config;  // 8 experts, top-3, no renormalisation
  std::vector<float> logits = {0, 1, 2, 3, 4, 5, 6, 7};
  auto chosen = route_token(c, logits.data(), nullptr);
  ASSERT_EQ(chosen.size(), 3u);
  EXPECT_EQ(chosen[0].expert, 5);
  EXPECT_EQ(chosen[2].expert, 7);
  double z = 0;
  for (float l : logits) z += std::exp(l);
  EXPECT_NEAR(chosen[2].weight, std::exp(7.0) / z, 1e-6);  // plain softmax probability
}

}  // namespace
}  // namespace seekserve
