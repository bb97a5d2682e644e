#include "formats/gguf_model.h"

#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "formats/model_presets.h"

namespace seekserve {
namespace {

ModelConfig preset(const char* name) {
  auto p = find_model_preset(name);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p->config;
}

TEST(GgufModel, PlanUsesEveryHfTensorExactlyOnce) {
  for (const char* name :
       {"tiny-v3", "tiny-v2-lite", "tiny-qwen2", "tiny-llama", "r1-qwen-1.5b", "v2-lite"}) {
    for (MlaGgufLayout layout : {MlaGgufLayout::kSplit, MlaGgufLayout::kFused}) {
      const ModelConfig c = preset(name);
      std::map<std::string, int> used;
      std::set<std::string> gguf_names;
      for (const GgufTensorPlan& p : gguf_tensor_plan(c, layout)) {
        EXPECT_TRUE(gguf_names.insert(p.name).second) << name << ": duplicate " << p.name;
        for (const std::string& s : p.sources) used[s]++;
      }
      for (const TensorSpec& s : hf_tensor_specs(c)) {
        const int expected =
            (s.name.find("kv_b_proj") != std::string::npos && layout == MlaGgufLayout::kSplit) ? 2
                                                                                               : 1;
        EXPECT_EQ(used[s.name], expected) << name << ": " << s.name;
      }
    }
  }
}

TEST(GgufModel, LlamaNamesAndPermutation) {
  ModelConfig c = preset("tiny-llama");
  c.num_hidden_layers = 1;
  const auto plan = gguf_tensor_plan(c, MlaGgufLayout::kSplit);
  const GgufTensorPlan* q = nullptr;
  bool has_rope_freqs = false;
  for (const auto& p : plan) {
    if (p.name == "blk.0.attn_q.weight") q = &p;
    if (p.name == "rope_freqs.weight") has_rope_freqs = true;
  }
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(has_rope_freqs);
  EXPECT_EQ(q->transform, GgufTransform::kPermuteRope);
  EXPECT_EQ(q->n_head, c.num_attention_heads);
  // Row r of the source holds the value r: new row 2i = old row i, new row 2i+1 = old row i + d/2.
  const size_t cols = q->dims[0], rows = q->dims[1], d = static_cast<size_t>(c.head_dim);
  std::vector<float> src(rows * cols);
  for (size_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < cols; ++k) src[r * cols + k] = static_cast<float>(r);
  const std::vector<float> out = apply_gguf_transform(c, *q, {src});
  for (size_t h = 0; h < rows / d; ++h) {
    for (size_t i = 0; i < d / 2; ++i) {
      EXPECT_EQ(out[(h * d + 2 * i) * cols], static_cast<float>(h * d + i));
      EXPECT_EQ(out[(h * d + 2 * i + 1) * cols + cols - 1], static_cast<float>(h * d + i + d / 2));
    }
  }
}

TEST(GgufModel, SplitKbVbRebuildKvB) {
  ModelConfig c = preset("tiny-v3");
  const size_t h = c.num_attention_heads, nope = c.qk_nope_head_dim, v = c.v_head_dim,
               r = c.kv_lora_rank;
  std::vector<float> kv_b(h * (nope + v) * r);
  for (size_t i = 0; i < kv_b.size(); ++i) kv_b[i] = static_cast<float>(i);
  GgufTensorPlan kb{"k", {nope, r, h}, TensorRole::kLinear, GgufTransform::kSplitKb, {"x"}, 0};
  GgufTensorPlan vb{"v", {r, v, h}, TensorRole::kLinear, GgufTransform::kSplitVb, {"x"}, 0};
  const auto k = apply_gguf_transform(c, kb, {kv_b});
  const auto vv = apply_gguf_transform(c, vb, {kv_b});
  ASSERT_EQ(k.size() + vv.size(), kv_b.size());
  for (size_t hh = 0; hh < h; ++hh) {
    for (size_t j = 0; j < r; ++j) {
      for (size_t i = 0; i < nope; ++i) {  // k_b[h][j][i] = W_UK_h[i][j]
        ASSERT_EQ(k[(hh * r + j) * nope + i], kv_b[(hh * (nope + v) + i) * r + j]);
      }
      for (size_t i = 0; i < v; ++i) {  // v_b[h][i][j] = W_UV_h[i][j]
        ASSERT_EQ(vv[(hh * v + i) * r + j], kv_b[(hh * (nope + v) + nope + i) * r + j]);
      }
    }
  }
}

TEST(GgufModel, UnapplyAndMergeInvertTheTransforms) {
  ModelConfig llama = preset("tiny-llama");
  llama.num_hidden_layers = 1;
  for (const auto& p : gguf_tensor_plan(llama, MlaGgufLayout::kSplit)) {
    if (p.transform != GgufTransform::kPermuteRope && p.transform != GgufTransform::kCopy) continue;
    if (p.sources.empty()) continue;
    uint64_t n = 1;
    for (uint64_t d : p.dims) n *= d;
    std::vector<float> hf(n);
    for (size_t i = 0; i < n; ++i) hf[i] = static_cast<float>(i);
    EXPECT_EQ(unapply_gguf_transform(p, apply_gguf_transform(llama, p, {hf})), hf) << p.name;
  }
  ModelConfig c = preset("tiny-v3");
  const size_t n = static_cast<size_t>(c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim) *
                                       c.kv_lora_rank);
  std::vector<float> kv_b(n);
  for (size_t i = 0; i < n; ++i) kv_b[i] = static_cast<float>(i) * 0.5f;
  GgufTensorPlan kb{"k", {}, TensorRole::kLinear, GgufTransform::kSplitKb, {"x"}, 0};
  GgufTensorPlan vb{"v", {}, TensorRole::kLinear, GgufTransform::kSplitVb, {"x"}, 0};
  EXPECT_EQ(merge_kv_b(c, apply_gguf_transform(c, kb, {kv_b}), apply_gguf_transform(c, vb, {kv_b})),
            kv_b);
}

TEST(GgufModel, Llama3FreqFactorsFollowTheThreeBands) {
  ModelConfig c = preset("r1-distill-llama-8b");
  const auto f = llama3_rope_freq_factors(c);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f.front(), 1.0f);  // highest frequency: unchanged
  EXPECT_FLOAT_EQ(f.back(), 8.0f);   // lowest frequency: divided by factor
  for (size_t i = 1; i < f.size(); ++i) EXPECT_GE(f[i], f[i - 1]);
  EXPECT_TRUE(llama3_rope_freq_factors(preset("tiny-qwen2")).empty());
}

TEST(GgufModel, ConfigRoundTripsThroughAFile) {
  const auto dir = std::filesystem::temp_directory_path() / "seekserve_gguf_model_test";
  std::filesystem::create_directories(dir);
  for (const char* name :
       {"tiny-v3", "tiny-v2-lite", "tiny-qwen2", "tiny-llama", "deepseek-v3", "deepseek-v2-lite"}) {
    for (MlaGgufLayout layout : {MlaGgufLayout::kSplit, MlaGgufLayout::kFused}) {
      const ModelConfig c = preset(name);
      GgufWriter w;
      model_config_to_gguf(c, layout, w);
      TokenizerData t;
      t.pre = "deepseek-v3";
      t.tokens = {"a", "b", "<s>"};
      t.token_types = {TokenType::kNormal, TokenType::kNormal, TokenType::kControl};
      t.merges = {"a b"};
      t.bos_id = 2;
      t.eos_id = 2;
      t.add_bos = true;
      t.chat_template = "{{ x }}";
      tokenizer_data_to_gguf(t, w);
      ASSERT_TRUE(w.add_tensor("token_embd.weight", DType::kF32,
                               {4, static_cast<uint64_t>(c.vocab_size)},
                               [](std::span<uint8_t> out) { std::fill(out.begin(), out.end(), 0); })
                      .ok());
      const std::string path = (dir / (std::string(name) + ".gguf")).string();
      ASSERT_TRUE(w.write(path).ok());
      auto f = GgufFile::open(path);
      ASSERT_TRUE(f.ok()) << f.status().message();
      auto back = model_config_from_gguf(*f);
      ASSERT_TRUE(back.ok()) << back.status().message();
      EXPECT_EQ(back->arch, c.arch) << name;
      EXPECT_EQ(back->hidden_size, c.hidden_size);
      EXPECT_EQ(back->num_hidden_layers, c.num_hidden_layers);
      EXPECT_EQ(back->num_attention_heads, c.num_attention_heads);
      EXPECT_EQ(back->vocab_size, c.vocab_size);
      EXPECT_EQ(back->intermediate_size, c.intermediate_size);
      EXPECT_FLOAT_EQ(static_cast<float>(back->rms_norm_eps), static_cast<float>(c.rms_norm_eps));
      if (c.is_mla()) {
        EXPECT_EQ(back->q_lora_rank, c.q_lora_rank);
        EXPECT_EQ(back->kv_lora_rank, c.kv_lora_rank);
        EXPECT_EQ(back->qk_nope_head_dim, c.qk_nope_head_dim);
        EXPECT_EQ(back->qk_rope_head_dim, c.qk_rope_head_dim);
        EXPECT_EQ(back->v_head_dim, c.v_head_dim);
        EXPECT_EQ(back->n_routed_experts, c.n_routed_experts);
        EXPECT_EQ(back->n_shared_experts, c.n_shared_experts);
        EXPECT_EQ(back->num_experts_per_tok, c.num_experts_per_tok);
        EXPECT_EQ(back->moe_intermediate_size, c.moe_intermediate_size);
        EXPECT_EQ(back->first_k_dense_replace, c.first_k_dense_replace);
        EXPECT_EQ(back->n_group, c.n_group);
        EXPECT_EQ(back->topk_group, c.topk_group);
        EXPECT_EQ(back->scoring_func, c.scoring_func);
        EXPECT_EQ(back->norm_topk_prob, c.norm_topk_prob);
        EXPECT_FLOAT_EQ(static_cast<float>(back->routed_scaling_factor),
                        static_cast<float>(c.routed_scaling_factor));
        EXPECT_EQ(back->rope_scaling.type, RopeScaling::Type::kYarn);
        EXPECT_NEAR(back->rope_scaling.mscale_all_dim, c.rope_scaling.mscale_all_dim, 1e-6);
        EXPECT_EQ(back->rope_scaling.original_max_position_embeddings,
                  c.rope_scaling.original_max_position_embeddings);
      } else {
        EXPECT_EQ(back->num_key_value_heads, c.num_key_value_heads);
        EXPECT_EQ(back->head_dim, c.head_dim);
        EXPECT_FLOAT_EQ(static_cast<float>(back->rope_theta), static_cast<float>(c.rope_theta));
      }
      auto tok = tokenizer_data_from_gguf(*f);
      ASSERT_TRUE(tok.ok()) << tok.status().message();
      EXPECT_EQ(tok->tokens, t.tokens);
      EXPECT_EQ(tok->token_types, t.token_types);
      EXPECT_EQ(tok->merges, t.merges);
      EXPECT_EQ(tok->bos_id, 2);
      EXPECT_TRUE(tok->add_bos);
      EXPECT_EQ(tok->chat_template, t.chat_template);
      EXPECT_EQ(tok->pre, "deepseek-v3");
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(GgufModel, RejectsUnsupportedArchitectureAndBadRouting) {
  const auto dir = std::filesystem::temp_directory_path() / "seekserve_gguf_model_bad";
  std::filesystem::create_directories(dir);
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::from_string("gpt2"));
    ASSERT_TRUE(w.write((dir / "a.gguf").string()).ok());
    auto f = GgufFile::open((dir / "a.gguf").string());
    ASSERT_TRUE(f.ok());
    auto c = model_config_from_gguf(*f);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.status().message().find("general.architecture"), std::string::npos);
  }
  {
    GgufWriter w;
    ModelConfig c = preset("tiny-v3");
    c.num_experts_per_tok = 99;
    model_config_to_gguf(c, MlaGgufLayout::kSplit, w);
    ASSERT_TRUE(w.write((dir / "b.gguf").string()).ok());
    auto f = GgufFile::open((dir / "b.gguf").string());
    ASSERT_TRUE(f.ok());
    auto back = model_config_from_gguf(*f);
    ASSERT_FALSE(back.ok());
    EXPECT_NE(back.status().message().find("expert_used_count"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace seekserve
