#include "formats/hf_config.h"

#include <string>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

std::string config_path(const std::string& name) {
  return std::string(SEEKSERVE_TEST_DATA) + "/configs/" + name;
}

ModelConfig load(const std::string& name) {
  Result<ModelConfig> c = load_hf_config(config_path(name));
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? *c : ModelConfig{};
}

// Every field of ModelConfig, compared one by one so a failure names the field.
void expect_same(const ModelConfig& a, const ModelConfig& b, const std::string& what) {
#define SEEK_SAME(field) EXPECT_EQ(a.field, b.field) << what << ": " #field
  SEEK_SAME(arch);
  SEEK_SAME(model_type);
  SEEK_SAME(vocab_size);
  SEEK_SAME(hidden_size);
  SEEK_SAME(intermediate_size);
  SEEK_SAME(num_hidden_layers);
  SEEK_SAME(num_attention_heads);
  SEEK_SAME(num_key_value_heads);
  SEEK_SAME(head_dim);
  SEEK_SAME(max_position_embeddings);
  SEEK_SAME(rms_norm_eps);
  SEEK_SAME(rope_theta);
  SEEK_SAME(rope_scaling.type);
  SEEK_SAME(rope_scaling.factor);
  SEEK_SAME(rope_scaling.original_max_position_embeddings);
  SEEK_SAME(rope_scaling.beta_fast);
  SEEK_SAME(rope_scaling.beta_slow);
  SEEK_SAME(rope_scaling.mscale);
  SEEK_SAME(rope_scaling.mscale_all_dim);
  SEEK_SAME(rope_scaling.low_freq_factor);
  SEEK_SAME(rope_scaling.high_freq_factor);
  SEEK_SAME(tie_word_embeddings);
  SEEK_SAME(attention_bias);
  SEEK_SAME(q_lora_rank);
  SEEK_SAME(kv_lora_rank);
  SEEK_SAME(qk_nope_head_dim);
  SEEK_SAME(qk_rope_head_dim);
  SEEK_SAME(v_head_dim);
  SEEK_SAME(n_routed_experts);
  SEEK_SAME(n_shared_experts);
  SEEK_SAME(num_experts_per_tok);
  SEEK_SAME(moe_intermediate_size);
  SEEK_SAME(first_k_dense_replace);
  SEEK_SAME(moe_layer_freq);
  SEEK_SAME(n_group);
  SEEK_SAME(topk_group);
  SEEK_SAME(scoring_func);
  SEEK_SAME(topk_method);
  SEEK_SAME(norm_topk_prob);
  SEEK_SAME(routed_scaling_factor);
  SEEK_SAME(num_nextn_predict_layers);
  SEEK_SAME(bos_token_id);
  SEEK_SAME(eos_token_id);
  SEEK_SAME(torch_dtype);
#undef SEEK_SAME
}

void expect_round_trip(const ModelConfig& c, const std::string& what) {
  std::string json = hf_config_to_json(c);
  Result<ModelConfig> back = parse_hf_config(json, what);
  ASSERT_TRUE(back.ok()) << back.status().to_string() << "\n" << json;
  expect_same(c, *back, what);
}

TEST(HfConfig, DeepSeekV3MatchesThePublishedConfig) {
  ModelConfig c = load("deepseek-v3.json");
  EXPECT_EQ(c.arch, Arch::kDeepseekV3);
  EXPECT_EQ(c.model_type, "deepseek_v3");
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.num_key_value_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.head_dim, 64);  // HF: the RoPE part of a head
  EXPECT_EQ(c.intermediate_size, 18432);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_EQ(c.scoring_func, "sigmoid");
  EXPECT_EQ(c.topk_method, "noaux_tc");
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_id, 1);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kYarn);
  EXPECT_EQ(c.rope_scaling.factor, 40.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_EQ(c.rope_scaling.beta_slow, 1.0);
  EXPECT_EQ(c.rope_scaling.mscale, 1.0);
  EXPECT_EQ(c.rope_scaling.mscale_all_dim, 1.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.moe_layer_freq, 1);
  EXPECT_TRUE(c.is_mla());
  EXPECT_FALSE(c.layer_is_moe(2));
  EXPECT_TRUE(c.layer_is_moe(3));
}

TEST(HfConfig, DeepSeekV2LiteMatchesThePublishedConfig) {
  ModelConfig c = load("deepseek-v2-lite.json");
  EXPECT_EQ(c.arch, Arch::kDeepseekV2);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 27);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.q_lora_rank, 0);  // null -> plain q_proj
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.intermediate_size, 10944);
  EXPECT_EQ(c.moe_intermediate_size, 1408);
  EXPECT_EQ(c.n_routed_experts, 64);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.num_experts_per_tok, 6);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_EQ(c.scoring_func, "softmax");
  EXPECT_EQ(c.topk_method, "greedy");
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_EQ(c.vocab_size, 102400);
  EXPECT_EQ(c.bos_token_id, 100000);
  EXPECT_EQ(c.eos_token_id, 100001);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kYarn);
  EXPECT_EQ(c.rope_scaling.factor, 40.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_EQ(c.rope_scaling.beta_slow, 1.0);
  EXPECT_EQ(c.rope_scaling.mscale, 0.707);
  EXPECT_EQ(c.rope_scaling.mscale_all_dim, 0.707);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);  // V2 has no MTP layers
}

TEST(HfConfig, R1DistillQwenMatchPublishedConfigs) {
  struct Shape {
    const char* file;
    int64_t hidden, layers, heads, kv_heads, intermediate, vocab;
  };
  for (const Shape& s : {Shape{"r1-distill-qwen-1.5b.json", 1536, 28, 12, 2, 8960, 151936},
                         Shape{"r1-distill-qwen-7b.json", 3584, 28, 28, 4, 18944, 152064}}) {
    SCOPED_TRACE(s.file);
    ModelConfig c = load(s.file);
    EXPECT_EQ(c.arch, Arch::kQwen2);
    EXPECT_EQ(c.model_type, "qwen2");
    EXPECT_EQ(c.hidden_size, s.hidden);
    EXPECT_EQ(c.num_hidden_layers, s.layers);
    EXPECT_EQ(c.num_attention_heads, s.heads);
    EXPECT_EQ(c.num_key_value_heads, s.kv_heads);
    EXPECT_EQ(c.intermediate_size, s.intermediate);
    EXPECT_EQ(c.vocab_size, s.vocab);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.rope_theta, 10000.0);
    EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
    EXPECT_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_TRUE(c.attention_bias);  // Qwen2: bias on q/k/v, not stated in config.json
    EXPECT_FALSE(c.is_mla());
    EXPECT_FALSE(c.is_moe());
  }
}

TEST(HfConfig, R1DistillLlamaMatchesThePublishedConfig) {
  ModelConfig c = load("r1-distill-llama-8b.json");
  EXPECT_EQ(c.arch, Arch::kLlama);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.attention_bias);
}

TEST(HfConfig, PublishedConfigsRoundTrip) {
  for (const char* f : {"deepseek-v3.json", "deepseek-v2-lite.json", "r1-distill-qwen-1.5b.json",
                        "r1-distill-qwen-7b.json", "r1-distill-llama-8b.json"}) {
    expect_round_trip(load(f), f);
  }
}

// Hand-made configs whose every field differs from the arch's defaults.
TEST(HfConfig, EveryFieldRoundTripsForEveryArch) {
  ModelConfig v3;
  v3.arch = Arch::kDeepseekV3;
  v3.model_type = "deepseek_v3";
  v3.vocab_size = 1000;
  v3.hidden_size = 96;
  v3.intermediate_size = 200;
  v3.num_hidden_layers = 5;
  v3.num_attention_heads = 6;
  v3.num_key_value_heads = 3;
  v3.max_position_embeddings = 777;
  v3.rms_norm_eps = 3.25e-7;
  v3.rope_theta = 12345.5;
  v3.rope_scaling = {RopeScaling::Type::kYarn, 4.5, 300, 24.0, 2.0, 0.8, 0.9, 1.0, 4.0};
  v3.tie_word_embeddings = true;
  v3.attention_bias = true;
  v3.q_lora_rank = 48;
  v3.kv_lora_rank = 32;
  v3.qk_nope_head_dim = 16;
  v3.qk_rope_head_dim = 8;
  v3.head_dim = 8;
  v3.v_head_dim = 12;
  v3.n_routed_experts = 12;
  v3.n_shared_experts = 2;
  v3.num_experts_per_tok = 3;
  v3.moe_intermediate_size = 40;
  v3.first_k_dense_replace = 2;
  v3.moe_layer_freq = 2;
  v3.n_group = 4;
  v3.topk_group = 2;
  v3.scoring_func = "sigmoid";
  v3.topk_method = "noaux_tc";
  v3.norm_topk_prob = true;
  v3.routed_scaling_factor = 1.75;
  v3.num_nextn_predict_layers = 2;
  v3.bos_token_id = 7;
  v3.eos_token_id = 9;
  v3.torch_dtype = "float32";
  expect_round_trip(v3, "v3");

  ModelConfig v2 = v3;
  v2.arch = Arch::kDeepseekV2;
  v2.model_type = "deepseek_v2";
  v2.q_lora_rank = 0;
  v2.scoring_func = "softmax";
  v2.topk_method = "group_limited_greedy";
  v2.num_nextn_predict_layers = 0;
  v2.rope_scaling.mscale_all_dim = 0;  // absent
  v2.bos_token_id = -1;
  v2.eos_token_id = -1;
  expect_round_trip(v2, "v2");
  ModelConfig v2_dense = v2;
  v2_dense.n_routed_experts = 0;
  v2_dense.n_shared_experts = 0;
  v2_dense.num_experts_per_tok = 0;
  v2_dense.rope_scaling = RopeScaling{};
  expect_round_trip(v2_dense, "v2 dense");

  ModelConfig qwen;
  qwen.arch = Arch::kQwen2;
  qwen.model_type = "qwen2";
  qwen.vocab_size = 5000;
  qwen.hidden_size = 120;
  qwen.intermediate_size = 300;
  qwen.num_hidden_layers = 3;
  qwen.num_attention_heads = 6;
  qwen.num_key_value_heads = 2;
  qwen.head_dim = 24;  // not hidden / heads: must survive
  qwen.max_position_embeddings = 4096;
  qwen.rms_norm_eps = 1e-5;
  qwen.rope_theta = 1e6;
  qwen.rope_scaling = {RopeScaling::Type::kLinear, 2.5, 0, 32.0, 1.0, 1.0, 0.0, 1.0, 4.0};
  qwen.tie_word_embeddings = true;
  qwen.attention_bias = true;
  qwen.bos_token_id = 11;
  qwen.eos_token_id = 12;
  qwen.torch_dtype = "float16";
  expect_round_trip(qwen, "qwen2");

  ModelConfig llama = qwen;
  llama.arch = Arch::kLlama;
  llama.model_type = "llama";
  llama.attention_bias = false;
  llama.head_dim = 20;
  llama.rope_scaling = {RopeScaling::Type::kLlama3, 16.0, 1024, 32.0, 1.0, 1.0, 0.0, 0.5, 8.0};
  expect_round_trip(llama, "llama");
}

TEST(HfConfig, AbsentFieldsTakeHfDefaults) {
  Result<ModelConfig> llama = parse_hf_config(
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4})",
      "llama.json");
  ASSERT_TRUE(llama.ok()) << llama.status().to_string();
  EXPECT_EQ(llama->num_key_value_heads, 4);
  EXPECT_EQ(llama->head_dim, 16);
  EXPECT_EQ(llama->vocab_size, 32000);
  EXPECT_EQ(llama->intermediate_size, 11008);
  EXPECT_EQ(llama->max_position_embeddings, 2048);
  EXPECT_EQ(llama->bos_token_id, 1);
  EXPECT_EQ(llama->eos_token_id, 2);
  EXPECT_FALSE(llama->attention_bias);
  EXPECT_EQ(llama->rope_theta, 10000.0);

  Result<ModelConfig> qwen = parse_hf_config(
      R"({"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4,
          "num_key_value_heads": null, "eos_token_id": [5, 6]})",
      "qwen.json");
  ASSERT_TRUE(qwen.ok()) << qwen.status().to_string();
  EXPECT_EQ(qwen->arch, Arch::kQwen2);  // from model_type
  EXPECT_TRUE(qwen->attention_bias);
  EXPECT_EQ(qwen->num_key_value_heads, 4);
  EXPECT_EQ(qwen->vocab_size, 151936);
  EXPECT_EQ(qwen->max_position_embeddings, 32768);
  EXPECT_EQ(qwen->bos_token_id, -1);
  EXPECT_EQ(qwen->eos_token_id, 5);  // first of a list

  Result<ModelConfig> v2 = parse_hf_config(R"({"architectures": ["DeepseekV2ForCausalLM"]})", "v2");
  ASSERT_TRUE(v2.ok()) << v2.status().to_string();
  EXPECT_EQ(v2->n_routed_experts, 0);  // None: dense
  EXPECT_EQ(v2->q_lora_rank, 1536);
  EXPECT_EQ(v2->n_group, 1);
  EXPECT_EQ(v2->num_key_value_heads, 32);
  EXPECT_EQ(v2->scoring_func, "softmax");

  Result<ModelConfig> v3 =
      parse_hf_config(R"({"architectures": ["DeepseekV3ForCausalLM"], "q_lora_rank": null})", "v3");
  ASSERT_TRUE(v3.ok()) << v3.status().to_string();
  EXPECT_EQ(v3->q_lora_rank, 0);
  EXPECT_EQ(v3->n_routed_experts, 256);
  EXPECT_EQ(v3->topk_method, "noaux_tc");
  EXPECT_EQ(v3->scoring_func, "sigmoid");
  EXPECT_EQ(v3->num_nextn_predict_layers, 1);
}

TEST(HfConfig, RopeForms) {
  // `type` and `rope_type` are the same key; yarn without original_max_position_embeddings
  // uses max_position_embeddings (as HF does).
  Result<ModelConfig> a = parse_hf_config(
      R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
          "max_position_embeddings": 1000,
          "rope_scaling": {"rope_type": "yarn", "factor": 4}})",
      "a");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->rope_scaling.type, RopeScaling::Type::kYarn);
  EXPECT_EQ(a->rope_scaling.original_max_position_embeddings, 1000);
  EXPECT_EQ(a->rope_scaling.mscale_all_dim, 0.0);

  // transformers 5: rope_parameters holds rope_theta and the scaling fields.
  Result<ModelConfig> b = parse_hf_config(
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
          "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}, "dtype": "bfloat16"})",
      "b");
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->rope_theta, 500000.0);
  EXPECT_EQ(b->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(b->rope_scaling.factor, 8.0);
  EXPECT_EQ(b->rope_scaling.original_max_position_embeddings, 8192);

  Result<ModelConfig> c = parse_hf_config(
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
          "rope_parameters": {"rope_type": "default", "rope_theta": 250.0}})",
      "c");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->rope_theta, 250.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);

  Result<ModelConfig> d = parse_hf_config(
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
          "rope_scaling": {"type": "linear", "factor": 2}})",
      "d");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ(d->rope_scaling.factor, 2.0);
}

TEST(HfConfig, BadConfigsNameTheField) {
  struct Case {
    std::string json;
    StatusCode code;
    std::string expected;
  };
  const std::string v3 = R"("architectures": ["DeepseekV3ForCausalLM"])";
  const std::string qwen = R"("architectures": ["Qwen2ForCausalLM"])";
  const Case cases[] = {
      {"{", StatusCode::kDataLoss, "cfg.json: not valid JSON"},
      {"[]", StatusCode::kInvalidArgument, "cfg.json: not a JSON object"},
      {"{}", StatusCode::kInvalidArgument, "cfg.json: architectures: missing"},
      {R"({"architectures": ["MistralForCausalLM"]})", StatusCode::kUnimplemented,
       "cfg.json: architectures: unsupported [\"MistralForCausalLM\"]"},
      {R"({"architectures": "LlamaForCausalLM"})", StatusCode::kInvalidArgument,
       "cfg.json: architectures: expected a list"},
      {R"({"model_type": "gpt2"})", StatusCode::kUnimplemented,
       "cfg.json: model_type: unsupported 'gpt2'"},
      {R"({)" + qwen + R"(, "hidden_size": 768, "num_attention_heads": 12,
           "num_key_value_heads": 5})",
       StatusCode::kInvalidArgument,
       "cfg.json: num_key_value_heads: 5 does not divide num_attention_heads 12"},
      {R"({)" + qwen + R"(, "hidden_size": 1000, "num_attention_heads": 12,
           "num_key_value_heads": 4})",
       StatusCode::kInvalidArgument,
       "cfg.json: num_attention_heads: 12 does not divide hidden_size 1000"},
      {R"({)" + qwen + R"(, "hidden_size": "big"})", StatusCode::kInvalidArgument,
       "cfg.json: hidden_size: expected an integer, got string \"big\""},
      {R"({)" + qwen + R"(, "hidden_size": 64.5})", StatusCode::kInvalidArgument,
       "cfg.json: hidden_size: expected an integer"},
      {R"({)" + qwen + R"(, "hidden_size": 0})", StatusCode::kInvalidArgument,
       "cfg.json: hidden_size: 0 must be positive"},
      {R"({)" + qwen + R"(, "vocab_size": -3})", StatusCode::kInvalidArgument,
       "cfg.json: vocab_size: -3 must be positive"},
      {R"({)" + qwen + R"(, "vocab_size": 18446744073709551615})", StatusCode::kInvalidArgument,
       "cfg.json: vocab_size: 18446744073709551615 is out of range"},
      {R"({)" + qwen + R"(, "num_hidden_layers": 4294967296})", StatusCode::kInvalidArgument,
       "cfg.json: num_hidden_layers: 4294967296 is implausibly large"},
      {R"({)" + qwen + R"(, "rms_norm_eps": 0})", StatusCode::kInvalidArgument,
       "cfg.json: rms_norm_eps: 0 must be positive"},
      {R"({)" + qwen + R"(, "rms_norm_eps": "tiny"})", StatusCode::kInvalidArgument,
       "cfg.json: rms_norm_eps: expected a number"},
      {R"({)" + qwen + R"(, "tie_word_embeddings": 1})", StatusCode::kInvalidArgument,
       "cfg.json: tie_word_embeddings: expected true or false"},
      {R"({)" + qwen + R"(, "rope_theta": -1})", StatusCode::kInvalidArgument,
       "cfg.json: rope_theta: -1 must be positive"},
      {R"({)" + qwen + R"(, "rope_scaling": {"type": "dynamic", "factor": 2}})",
       StatusCode::kUnimplemented, "cfg.json: rope_scaling.type: unsupported 'dynamic'"},
      {R"({)" + qwen + R"(, "rope_scaling": {"rope_type": "yarn"}})", StatusCode::kInvalidArgument,
       "cfg.json: rope_scaling.factor: required for yarn"},
      {R"({)" + qwen + R"(, "rope_scaling": {"rope_type": "linear", "factor": -2}})",
       StatusCode::kInvalidArgument, "cfg.json: rope_scaling.factor: -2 must be positive"},
      {R"({)" + qwen + R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8,
           "low_freq_factor": 1, "high_freq_factor": 4}})",
       StatusCode::kInvalidArgument,
       "cfg.json: rope_scaling.original_max_position_embeddings: required for llama3"},
      {R"({)" + qwen + R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8,
           "low_freq_factor": 4, "high_freq_factor": 1, "original_max_position_embeddings": 8}})",
       StatusCode::kInvalidArgument,
       "cfg.json: rope_scaling.high_freq_factor: 1 must exceed low_freq_factor 4"},
      {R"({)" + qwen + R"(, "rope_scaling": [1]})", StatusCode::kInvalidArgument,
       "cfg.json: rope_scaling: expected an object"},
      {R"({)" + qwen + R"(, "rope_parameters": {"rope_type": "yarn", "factor": "x"}})",
       StatusCode::kInvalidArgument, "cfg.json: rope_parameters.factor: expected a number"},
      {R"({)" + v3 + R"(, "topk_group": 9})", StatusCode::kInvalidArgument,
       "cfg.json: topk_group: 9 exceeds n_group 8"},
      {R"({)" + v3 + R"(, "num_experts_per_tok": 300})", StatusCode::kInvalidArgument,
       "cfg.json: num_experts_per_tok: 300 exceeds n_routed_experts 256"},
      {R"({)" + v3 + R"(, "n_group": 3, "topk_group": 1})", StatusCode::kInvalidArgument,
       "cfg.json: n_group: 3 does not divide n_routed_experts 256"},
      {R"({)" + v3 + R"(, "n_group": 256, "topk_group": 1})", StatusCode::kInvalidArgument,
       "cfg.json: n_group: 256 leaves fewer than 2 experts per group"},
      {R"({)" + v3 + R"(, "scoring_func": "relu"})", StatusCode::kInvalidArgument,
       "cfg.json: scoring_func: unknown 'relu'"},
      {R"({)" + v3 + R"(, "topk_method": "best"})", StatusCode::kInvalidArgument,
       "cfg.json: topk_method: unknown 'best'"},
      {R"({)" + v3 + R"(, "kv_lora_rank": 0})", StatusCode::kInvalidArgument,
       "cfg.json: kv_lora_rank: 0 must be positive"},
      {R"({)" + v3 + R"(, "qk_rope_head_dim": 7})", StatusCode::kInvalidArgument,
       "cfg.json: qk_rope_head_dim: 7 must be even"},
      {R"({)" + v3 + R"(, "num_experts_per_tok": null})", StatusCode::kInvalidArgument,
       "cfg.json: num_experts_per_tok: 0 must be positive when n_routed_experts is 256"},
      {R"({)" + v3 + R"(, "first_k_dense_replace": 99})", StatusCode::kInvalidArgument,
       "cfg.json: first_k_dense_replace: 99 exceeds num_hidden_layers 61"},
      {R"({)" + v3 + R"(, "n_shared_experts": -1})", StatusCode::kInvalidArgument,
       "cfg.json: n_shared_experts: -1 must not be negative"},
      {R"({)" + v3 + R"(, "moe_layer_freq": 0})", StatusCode::kInvalidArgument,
       "cfg.json: moe_layer_freq: 0 must be positive"},
      {R"({)" + v3 + R"(, "eos_token_id": -7})", StatusCode::kInvalidArgument,
       "cfg.json: eos_token_id: -7 is not a token id"},
      {R"({)" + v3 + R"(, "eos_token_id": ["x"]})", StatusCode::kInvalidArgument,
       "cfg.json: eos_token_id: expected an integer"},
  };
  for (const Case& c : cases) {
    Result<ModelConfig> r = parse_hf_config(c.json, "cfg.json");
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.status().code(), c.code) << c.json << "\n  -> " << r.status().message();
    EXPECT_EQ(r.status().message().rfind(c.expected, 0), 0u)
        << c.json << "\n  -> " << r.status().message() << "\n  wanted " << c.expected;
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
  }
}

TEST(HfConfig, MissingFileIsNotFound) {
  Result<ModelConfig> r = load_hf_config(config_path("no-such-config.json"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("no-such-config.json"), std::string::npos);
}

}  // namespace
}  // namespace seekserve
