#include "tools/estimate.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "formats/model_presets.h"
#include "server/http_server.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;

ModelSource preset(const std::string& name) {
  auto s = load_model_source(name);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return *s;
}

Estimate run(const std::string& name, EstimateOptions o = {}) {
  o.threads = 2;
  o.process = false;
  auto e = estimate_memory(preset(name), o);
  EXPECT_TRUE(e.ok()) << e.status().message();
  return *e;
}

const WeightClassBytes& cls(const Estimate& e, WeightClass c) {
  return e.weights[static_cast<size_t>(c)];
}

// DeepSeek-V3 counted by hand from MODELS.md §1, independently of hf_tensor_specs.
TEST(EstimateTest, DeepSeekV3ParametersMatchAHandCount) {
  const int64_t hidden = 7168, vocab = 129280, layers = 61, dense_layers = 3;
  const int64_t attention = 1536LL * 7168          // q_a_proj
                            + 1536                 // q_a_layernorm
                            + 128LL * 192 * 1536   // q_b_proj: heads × (nope 128 + rope 64)
                            + 576LL * 7168         // kv_a_proj_with_mqa: kv_lora 512 + rope 64
                            + 512                  // kv_a_layernorm
                            + 128LL * 256 * 512    // kv_b_proj: heads × (nope 128 + v 128)
                            + 7168LL * 128 * 128;  // o_proj
  const int64_t norms = 2 * hidden;
  const int64_t dense_mlp = 3LL * 7168 * 18432;
  const int64_t moe = 256LL * 7168 + 256              // gate + e_score_correction_bias
                      + 256LL * 3 * 7168 * 2048       // routed experts
                      + 3LL * 7168 * 2048;            // 1 shared expert
  const int64_t main = 2LL * vocab * hidden + hidden  // embed, lm_head, final norm
                       + layers * (attention + norms) + dense_layers * dense_mlp +
                       (layers - dense_layers) * moe;
  const Estimate e = run("deepseek-v3");
  EXPECT_EQ(e.params, main);
  EXPECT_EQ(main, 671'026'419'200LL);  // "671B"
  // The MTP layer (not in the registry): a MoE block + enorm, hnorm, shared_head.norm and
  // eh_proj [7168, 14336]; the checkpoint also stores its embedding and head (≈ 685B in all).
  const int64_t mtp = attention + norms + moe + 3 * hidden + 2LL * hidden * hidden;
  EXPECT_EQ(e.params_mtp, mtp);
  EXPECT_EQ(e.params_mtp_stored, mtp + 2LL * vocab * hidden);
  EXPECT_NEAR(static_cast<double>(e.params + e.params_mtp_stored) / 1e9, 685.0, 1.0);
  EXPECT_EQ(run("deepseek-r1").params, main);
}

TEST(EstimateTest, PublishedSizesOfTheOtherModels) {
  EXPECT_NEAR(run("deepseek-v2-lite").params / 1e9, 15.7, 0.05);
  // R1-Distill-Qwen-1.5B, untied embeddings: 151936 × 1536 twice + 28 layers.
  const int64_t qwen_layer = 1536LL * 1536 * 2 + 256LL * 1536 * 2  // q, o; k, v (2 KV heads)
                             + 1536 + 256 * 2                      // q/k/v biases
                             + 3LL * 1536 * 8960 + 2 * 1536;       // MLP, norms
  EXPECT_EQ(run("r1-distill-qwen-1.5b").params, 2LL * 151936 * 1536 + 1536 + 28 * qwen_layer);
  EXPECT_NEAR(run("r1-distill-qwen-1.5b").params / 1e9, 1.78, 0.01);
  EXPECT_EQ(run("r1-distill-llama-8b").params, 8'030'261'248LL);  // Llama-3.1-8B
}

TEST(EstimateTest, KvCachePerToken) {
  EstimateOptions o;
  o.kv_dtype = DType::kBF16;
  Estimate v3 = run("deepseek-v3", o);
  EXPECT_EQ(v3.kv_width, 576);
  EXPECT_EQ(v3.kv_bytes_per_token, uint64_t{61} * 576 * 2);
  o.kv_dtype = DType::kF8E4M3;
  EXPECT_EQ(run("deepseek-v3", o).kv_bytes_per_token, uint64_t{61} * 576);
  o.kv_dtype = DType::kF32;
  EXPECT_EQ(run("deepseek-v2-lite", o).kv_bytes_per_token, uint64_t{27} * 576 * 4);
  // GQA: 2 · kv_heads · head_dim per layer.
  o.kv_dtype = DType::kBF16;
  EXPECT_EQ(run("r1-distill-llama-8b", o).kv_bytes_per_token, uint64_t{32} * 2 * 8 * 128 * 2);
  EXPECT_EQ(run("r1-distill-qwen-1.5b", o).kv_bytes_per_token, uint64_t{28} * 2 * 2 * 128 * 2);
  EXPECT_EQ(run("r1-distill-llama-70b", o).kv_bytes_per_token, uint64_t{80} * 2 * 8 * 128 * 2);
  // batch × ctx, the context rounded up to the engine's 16-token KV block.
  o.batch = 3;
  o.ctx = 100;
  Estimate q = run("r1-distill-qwen-1.5b", o);
  EXPECT_EQ(q.ctx_allocated, 112);
  EXPECT_EQ(q.kv_bytes, uint64_t{3} * 112 * 28 * 2 * 2 * 128 * 2);
}

TEST(EstimateTest, Fp8KeepsEmbeddingsHeadRouterAndNormsOutOfFp8) {
  EstimateOptions o;
  o.precision = DType::kF8E4M3;
  const Estimate e = run("deepseek-v3", o);
  const int64_t vh = 129280LL * 7168;
  EXPECT_EQ(cls(e, WeightClass::kEmbedding).bytes_by_dtype.at("bf16"), uint64_t{2} * vh);
  EXPECT_EQ(cls(e, WeightClass::kLmHead).bytes_by_dtype.at("bf16"), uint64_t{2} * vh);
  EXPECT_EQ(cls(e, WeightClass::kRouter).bytes_by_dtype.at("bf16"), uint64_t{58} * 256 * 7168 * 2);
  EXPECT_EQ(cls(e, WeightClass::kRouter).bytes_by_dtype.at("f32"), uint64_t{58} * 256 * 4);
  EXPECT_EQ(cls(e, WeightClass::kNorms).bytes_by_dtype.count("fp8"), 0u);
  // Routed experts: 1 byte per value + one f32 per 128×128 block of each [2048, 7168] /
  // [7168, 2048] matrix (16 × 56 blocks each).
  const WeightClassBytes& ex = cls(e, WeightClass::kRoutedExperts);
  EXPECT_EQ(ex.bytes_by_dtype.at("fp8"), uint64_t{58} * 256 * 3 * 7168 * 2048);
  EXPECT_EQ(ex.scale_bytes, uint64_t{58} * 256 * 3 * (16 * 56) * 4);
  // q_b_proj [24576, 1536]: 192 × 12 blocks; kv_a_proj [576, 7168]: ceil(576/128) = 5 × 56.
  PlannedTensor qb = plan_tensor(
      {"model.layers.0.self_attn.q_b_proj.weight", {24576, 1536}, TensorRole::kLinear, 0},
      DType::kF8E4M3);
  EXPECT_EQ(qb.scale_bytes, uint64_t{192} * 12 * 4);
  PlannedTensor kva = plan_tensor(
      {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", {576, 7168}, TensorRole::kLinear, 0},
      DType::kF8E4M3);
  EXPECT_EQ(kva.scale_bytes, uint64_t{5} * 56 * 4);
  // About one byte per parameter, plus the BF16 embedding and head (3.7 GB).
  EXPECT_GT(e.weight_bytes, 672'000'000'000u);
  EXPECT_LT(e.weight_bytes, 676'000'000'000u);
}

TEST(EstimateTest, BlockQuantisedBytesComeFromDtypeBytes) {
  const TensorSpec w{"model.layers.0.mlp.up_proj.weight", {14336, 4096}, TensorRole::kLinear, 0};
  EXPECT_EQ(plan_tensor(w, DType::kQ8_0).bytes, uint64_t{14336} * 4096 / 32 * 34);
  EXPECT_EQ(plan_tensor(w, DType::kQ4_0).bytes, uint64_t{14336} * 4096 / 32 * 18);
  const TensorSpec norm{"model.norm.weight", {4096}, TensorRole::kNorm, -1};
  EXPECT_EQ(plan_tensor(norm, DType::kQ4_0).dtype, DType::kF32);
  const TensorSpec odd{"model.layers.0.mlp.up_proj.weight", {8, 48}, TensorRole::kLinear, 0};
  EXPECT_EQ(plan_tensor(odd, DType::kQ8_0).dtype, DType::kBF16);  // 48 is not whole 32-blocks
  EXPECT_EQ(
      classify_tensor(TensorRole::kLinear, "model.layers.3.mlp.shared_experts.up_proj.weight"),
      WeightClass::kSharedExperts);
  EXPECT_EQ(classify_tensor(TensorRole::kLinear, "model.layers.3.mlp.experts.7.up_proj.weight"),
            WeightClass::kRoutedExperts);
  EXPECT_EQ(classify_tensor(TensorRole::kLinear, "model.layers.0.mlp.down_proj.weight"),
            WeightClass::kDenseMlp);
  EXPECT_EQ(classify_tensor(TensorRole::kLinear, "model.layers.0.self_attn.o_proj.weight"),
            WeightClass::kAttention);
}

TEST(EstimateTest, ActivationsFollowTheForwardPass) {
  const ModelConfig c = find_model_preset("r1-distill-qwen-1.5b")->config;
  const ActivationBytes a = activation_bytes(c, 512, 1, 2048, 2, DType::kBF16, DType::kBF16);
  EXPECT_EQ(a.residual, uint64_t{3} * 512 * 1536 * 4 + 512 * 12);
  EXPECT_EQ(a.logits, uint64_t{151936} * 4);
  // Dense MLP: gate and up [T, 8960] f32 + the BF16 copy of the down input.
  EXPECT_EQ(a.mlp, uint64_t{2} * 512 * 8960 * 4 + uint64_t{2} * 512 * 8960);
  EXPECT_EQ(a.moe, 0u);
  EXPECT_EQ(a.peak, a.residual + a.logits + std::max({a.attention, a.mlp, a.output}));
  // F32 weights take no activation copy.
  EXPECT_EQ(activation_bytes(c, 512, 1, 2048, 2, DType::kF32, DType::kF32).mlp,
            uint64_t{2} * 512 * 8960 * 4);
  // MLA holds q_abs and o [H, T, kv_lora_rank] in f32: V3 at 4096 tokens is gigabytes.
  const ModelConfig v3 = find_model_preset("deepseek-v3")->config;
  const ActivationBytes b = activation_bytes(v3, 4096, 64, 2048, 2, DType::kF8E4M3, DType::kBF16);
  EXPECT_GE(b.attention, uint64_t{2} * 128 * 4096 * 512 * 4);
  EXPECT_GT(b.moe, 0u);
}

TEST(EstimateTest, OverheadCountsTheEnginesCopies) {
  const Estimate e = run("deepseek-v3");
  // HF MLA: per layer and head W_UKᵀ [512, 128] + W_UV [128, 512] in f32.
  EXPECT_EQ(e.overhead.mla_absorbed_f32, uint64_t{61} * 128 * 512 * 256 * 4);
  EXPECT_EQ(e.overhead.router_f32, uint64_t{58} * (256 * 7168 + 256) * 4);
  EXPECT_EQ(run("r1-distill-qwen-1.5b").overhead.mla_absorbed_f32, 0u);
  EXPECT_EQ(run("r1-distill-qwen-1.5b").overhead.biases_f32, uint64_t{28} * (1536 + 512) * 4);
}

TEST(EstimateTest, ProcessBaselineTermByTerm) {
  EstimateOptions o;
  o.threads = 2;
  // A preset has no tokenizer file: one tokenizer entry per vocabulary id.
  Estimate e = *estimate_memory(preset("tiny-v3"), o);
  EXPECT_EQ(e.overhead.code, kCodePagesBytes);
  EXPECT_EQ(e.overhead.tokenizer, uint64_t{129280} * kTokenizerBytesPerEntry);
  EXPECT_EQ(e.overhead.gguf_file, 0u);
  EXPECT_EQ(e.overhead.gguf_metadata, 0u);
  EXPECT_EQ(e.overhead.baseline, e.overhead.code + e.overhead.tokenizer);
  EXPECT_EQ(run("tiny-v3").overhead.baseline, 0u);
  // A GGUF: the tokenizer's own size, the file's non-tensor bytes and its metadata arrays.
  ModelSource gguf = preset("tiny-v3");
  gguf.kind = "gguf";
  gguf.tokenizer_entries = 1000;
  gguf.gguf_extra_bytes = 12345;
  gguf.gguf_array_elements = 3000;
  e = *estimate_memory(gguf, o);
  EXPECT_EQ(e.overhead.tokenizer, 1000 * kTokenizerBytesPerEntry);
  EXPECT_EQ(e.overhead.gguf_file, 12345u);
  EXPECT_EQ(e.overhead.gguf_metadata, 3000 * kGgufMetadataBytesPerElement);
  EXPECT_EQ(e.total, e.weight_bytes + e.kv_bytes + e.activations.peak + e.overhead.total);
}

TEST(EstimateTest, ServeAddsItsThreadsAndRequests) {
  EstimateOptions o;
  o.batch = 16;
  o.ctx = 128;
  const Estimate engine = run("tiny-qwen2", o);
  EXPECT_FALSE(engine.serve.has_value());
  o.serve = true;
  const Estimate e = run("tiny-qwen2", o);
  ASSERT_TRUE(e.serve.has_value());
  const ServeBytes& s = *e.serve;
  EXPECT_EQ(s.http_threads, kDefaultHttpThreads);  // serve's I/O threads
  EXPECT_EQ(s.thread_starts, uint64_t(kDefaultHttpThreads) * kHttpThreadStartBytes);
  EXPECT_EQ(s.requests_in_flight, 16 * kRequestInFlightBytes);
  EXPECT_EQ(s.per_sequence, uint64_t{16} * 128 * 8);
  EXPECT_EQ(s.runtime, kServeRuntimeBytes);
  EXPECT_EQ(s.total, s.thread_starts + s.requests_in_flight + s.per_sequence + s.runtime);
  EXPECT_EQ(e.total, engine.total + s.total);
  o.http_threads = 40;
  o.max_queue = 10;
  EXPECT_EQ(run("tiny-qwen2", o).serve->http_threads, 40);
  o.http_threads = 0;
  EXPECT_EQ(run("tiny-qwen2", o).serve->http_threads, kDefaultHttpThreads);
  // The fit search counts what serve adds per sequence: the largest batch is the last that fits.
  o.memory = e.total + 64 * kRequestInFlightBytes;
  const Estimate fit = run("tiny-qwen2", o);
  EstimateOptions at = o;
  at.batch = fit.max_batch;
  EXPECT_LE(run("tiny-qwen2", at).total, *o.memory);
  at.batch = fit.max_batch + 1;
  EXPECT_GT(run("tiny-qwen2", at).total, *o.memory);
}

TEST(EstimateTest, LargestBatchAndContextThatFit) {
  EstimateOptions o;
  o.ctx = 4096;
  o.batch = 4;
  o.kv_dtype = DType::kBF16;
  o.memory = uint64_t{24} << 30;
  const Estimate e = run("r1-distill-llama-8b", o);
  ASSERT_TRUE(e.fits);
  ASSERT_GT(e.max_batch, 4);
  EstimateOptions at = o;
  at.batch = e.max_batch;
  EXPECT_LE(run("r1-distill-llama-8b", at).total, *o.memory);
  at.batch = e.max_batch + 1;
  EXPECT_GT(run("r1-distill-llama-8b", at).total, *o.memory);
  at = o;
  at.ctx = e.max_ctx;
  EXPECT_LE(run("r1-distill-llama-8b", at).total, *o.memory);
  at.ctx = e.max_ctx + 1;
  EXPECT_GT(run("r1-distill-llama-8b", at).total, *o.memory);
  // Exactly the total fits; one byte less does not; a budget below the weights fits nothing.
  o.memory = e.total;
  EXPECT_TRUE(run("r1-distill-llama-8b", o).fits);
  o.memory = e.total - 1;
  EXPECT_FALSE(run("r1-distill-llama-8b", o).fits);
  o.memory = uint64_t{1} << 30;
  EXPECT_EQ(run("r1-distill-llama-8b", o).max_batch, 0);
  // A tiny model in a big budget: the context stops at the model's limit.
  o.memory = uint64_t{64} << 30;
  const Estimate tiny = run("tiny-v3", o);
  EXPECT_EQ(tiny.max_ctx, 512);
  EXPECT_EQ(tiny.max_ctx_limited_by, "max_position_embeddings");
}

TEST(EstimateTest, RuleOfThumbReadLiterally) {
  EstimateOptions o;
  o.batch = 64;
  o.ctx = 2048;
  o.precision = DType::kF8E4M3;
  o.kv_dtype = DType::kBF16;
  const Estimate e = run("deepseek-v3", o);
  EXPECT_NEAR(e.rule.weights_gb, 1342.05, 0.01);
  EXPECT_DOUBLE_EQ(e.rule.kv_gb, 65536.0);
  EXPECT_DOUBLE_EQ(e.rule.kv_gb_seq_in_thousands, 65.536);
  // Our KV for the same: 64 × 2048 × 70,272 B ≈ 9.2 GB.
  EXPECT_EQ(e.kv_bytes, uint64_t{64} * 2048 * 61 * 576 * 2);
}

TEST(EstimateTest, MemorySizes) {
  EXPECT_EQ(*parse_memory_size("24GiB", "--memory"), uint64_t{24} << 30);
  EXPECT_EQ(*parse_memory_size("80GB", "--memory"), 80'000'000'000u);
  EXPECT_EQ(*parse_memory_size("8x80GiB", "--gpus"), uint64_t{640} << 30);
  EXPECT_EQ(*parse_memory_size("1.5TiB", "--memory"), uint64_t{1536} << 30);
  EXPECT_EQ(*parse_memory_size("512MiB", "--memory"), uint64_t{512} << 20);
  EXPECT_EQ(*parse_memory_size("1000000", "--memory"), 1'000'000u);
  for (const char* bad : {"", "abc", "-5GiB", "24 parsecs", "x80GiB", "0", "GiB", "2x"}) {
    auto r = parse_memory_size(bad, "--memory");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("--memory"), std::string::npos) << r.status().message();
  }
}

TEST(EstimateTest, BadInputNamesTheField) {
  auto unknown = load_model_source("deepseek-v9");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(unknown.status().is_bad_input());
  EXPECT_NE(unknown.status().message().find("deepseek-v9"), std::string::npos);

  EstimateOptions o;
  o.batch = -1;
  auto neg = estimate_memory(preset("tiny-v3"), o);
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.status().message().find("--batch"), std::string::npos);
  o.batch = 1;
  o.ctx = 0;
  auto zero = estimate_memory(preset("tiny-v3"), o);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("--ctx"), std::string::npos);

  const fs::path dir =
      fs::temp_directory_path() / ("seekserve_estimate_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << "{\"architectures\": [\"LlamaForCausalLM\"], ";
  auto bad = load_model_source((dir / "config.json").string());
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().is_bad_input());
  EXPECT_NE(bad.status().message().find("config.json"), std::string::npos);
  std::ofstream(dir / "config.json")
      << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": -4})";
  bad = load_model_source((dir / "config.json").string());
  if (bad.ok()) {
    auto e = estimate_memory(*bad, {});
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find("hidden_size"), std::string::npos);
  } else {
    EXPECT_NE(bad.status().message().find("hidden_size"), std::string::npos)
        << bad.status().message();
  }
  fs::remove_all(dir);
}

TEST(EstimateTest, JsonCarriesEveryFigure) {
  EstimateOptions o;
  o.memory = uint64_t{80} << 30;
  const nlohmann::json j = estimate_to_json(run("deepseek-v2-lite", o));
  for (const char* k : {"params", "params_mtp", "weights", "weight_bytes", "kv_cache",
                        "activations", "overhead", "total_bytes", "rule_of_thumb", "memory"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_EQ(j["kv_cache"]["bytes_per_token"], 27 * 576 * 4);
  EXPECT_TRUE(j["memory"]["fits"].get<bool>());
  EXPECT_GT(j["memory"]["max_batch_at_ctx"].get<int64_t>(), 1);
  int64_t params = 0;
  for (const auto& w : j["weights"]) params += w["params"].get<int64_t>();
  EXPECT_EQ(params, j["params"].get<int64_t>());
}

}  // namespace
}  // namespace seekserve
