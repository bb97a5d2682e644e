#include "formats/gguf_model.h"

#include <cmath>
#include <numbers>
#include <string_view>

#include <fmt/format.h>

#include "core/check.h"

namespace seekserve {
namespace {

std::string key(const ModelConfig& c, std::string_view suffix) {
  return fmt::format("{}.{}", gguf_arch_name(c.arch), suffix);
}

std::vector<uint64_t> reversed(const std::vector<int64_t>& shape) {
  return std::vector<uint64_t>(shape.rbegin(), shape.rend());
}

// HF layer-local suffix -> GGUF base name, for tensors that map one to one.
struct NameMap {
  std::string_view hf;
  std::string_view gguf;
};
constexpr NameMap kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_a_proj.weight", "attn_q_a.weight"},
    {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight"},
    {"self_attn.q_b_proj.weight", "attn_q_b.weight"},
    {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight"},
    {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight"},
    {"self_attn.kv_b_proj.weight", "attn_kv_b.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.gate.weight", "ffn_gate_inp.weight"},
    {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias"},
    {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight"},
};

Status check_positive(const GgufFile& f, const std::string& k, int64_t v) {
  if (v <= 0) return data_loss("{}: {}: must be positive, got {}", f.name(), k, v);
  return Status::ok_status();
}

}  // namespace

const char* gguf_arch_name(Arch arch) {
  switch (arch) {
    case Arch::kDeepseekV3:
    case Arch::kDeepseekV2:
      return "deepseek2";
    case Arch::kQwen2:
      return "qwen2";
    case Arch::kLlama:
      return "llama";
  }
  return "unknown";
}

uint32_t gguf_file_type(DType t) {
  switch (t) {
    case DType::kF32:
      return 0;
    case DType::kF16:
      return 1;
    case DType::kQ4_0:
      return 2;
    case DType::kQ8_0:
      return 7;
    default:
      return 32;  // BF16
  }
}

void model_config_to_gguf(const ModelConfig& c, MlaGgufLayout layout, GgufWriter& out) {
  out.set("general.architecture", GgufValue::from_string(gguf_arch_name(c.arch)));
  out.set(key(c, "vocab_size"), GgufValue::from_u32(static_cast<uint32_t>(c.vocab_size)));
  out.set(key(c, "context_length"),
          GgufValue::from_u32(static_cast<uint32_t>(c.max_position_embeddings)));
  out.set(key(c, "embedding_length"), GgufValue::from_u32(static_cast<uint32_t>(c.hidden_size)));
  out.set(key(c, "block_count"), GgufValue::from_u32(static_cast<uint32_t>(c.num_hidden_layers)));
  out.set(key(c, "feed_forward_length"),
          GgufValue::from_u32(static_cast<uint32_t>(c.intermediate_size)));
  out.set(key(c, "attention.head_count"),
          GgufValue::from_u32(static_cast<uint32_t>(c.num_attention_heads)));
  out.set(key(c, "attention.layer_norm_rms_epsilon"),
          GgufValue::from_f32(static_cast<float>(c.rms_norm_eps)));
  out.set(key(c, "rope.freq_base"), GgufValue::from_f32(static_cast<float>(c.rope_theta)));
  if (!c.is_mla()) {
    out.set(key(c, "attention.head_count_kv"),
            GgufValue::from_u32(static_cast<uint32_t>(c.num_key_value_heads)));
    out.set(key(c, "rope.dimension_count"), GgufValue::from_u32(static_cast<uint32_t>(c.head_dim)));
    out.set(key(c, "attention.key_length"), GgufValue::from_u32(static_cast<uint32_t>(c.head_dim)));
    out.set(key(c, "attention.value_length"),
            GgufValue::from_u32(static_cast<uint32_t>(c.head_dim)));
    return;
  }
  const uint32_t qk_head = static_cast<uint32_t>(c.qk_nope_head_dim + c.qk_rope_head_dim);
  if (layout == MlaGgufLayout::kSplit) {
    out.set(key(c, "attention.head_count_kv"), GgufValue::from_u32(1));
    out.set(key(c, "attention.key_length"),
            GgufValue::from_u32(static_cast<uint32_t>(c.kv_lora_rank + c.qk_rope_head_dim)));
    out.set(key(c, "attention.value_length"),
            GgufValue::from_u32(static_cast<uint32_t>(c.kv_lora_rank)));
  } else {
    out.set(key(c, "attention.head_count_kv"),
            GgufValue::from_u32(static_cast<uint32_t>(c.num_attention_heads)));
    out.set(key(c, "attention.key_length"), GgufValue::from_u32(qk_head));
    out.set(key(c, "attention.value_length"),
            GgufValue::from_u32(static_cast<uint32_t>(c.v_head_dim)));
  }
  out.set(key(c, "attention.key_length_mla"), GgufValue::from_u32(qk_head));
  out.set(key(c, "attention.value_length_mla"),
          GgufValue::from_u32(static_cast<uint32_t>(c.v_head_dim)));
  if (c.q_lora_rank > 0) {
    out.set(key(c, "attention.q_lora_rank"),
            GgufValue::from_u32(static_cast<uint32_t>(c.q_lora_rank)));
  }
  out.set(key(c, "attention.kv_lora_rank"),
          GgufValue::from_u32(static_cast<uint32_t>(c.kv_lora_rank)));
  out.set(key(c, "rope.dimension_count"),
          GgufValue::from_u32(static_cast<uint32_t>(c.qk_rope_head_dim)));
  if (c.rope_scaling.type == RopeScaling::Type::kYarn) {
    out.set(key(c, "rope.scaling.type"), GgufValue::from_string("yarn"));
    out.set(key(c, "rope.scaling.factor"),
            GgufValue::from_f32(static_cast<float>(c.rope_scaling.factor)));
    out.set(key(c, "rope.scaling.original_context_length"),
            GgufValue::from_u32(
                static_cast<uint32_t>(c.rope_scaling.original_max_position_embeddings)));
    out.set(key(c, "rope.scaling.yarn_log_multiplier"),
            GgufValue::from_f32(static_cast<float>(0.1 * c.rope_scaling.mscale_all_dim)));
  }
  out.set(key(c, "leading_dense_block_count"),
          GgufValue::from_u32(static_cast<uint32_t>(c.first_k_dense_replace)));
  out.set(key(c, "expert_count"), GgufValue::from_u32(static_cast<uint32_t>(c.n_routed_experts)));
  out.set(key(c, "expert_used_count"),
          GgufValue::from_u32(static_cast<uint32_t>(c.num_experts_per_tok)));
  out.set(key(c, "expert_shared_count"),
          GgufValue::from_u32(static_cast<uint32_t>(c.n_shared_experts)));
  out.set(key(c, "expert_feed_forward_length"),
          GgufValue::from_u32(static_cast<uint32_t>(c.moe_intermediate_size)));
  out.set(key(c, "expert_weights_scale"),
          GgufValue::from_f32(static_cast<float>(c.routed_scaling_factor)));
  out.set(key(c, "expert_weights_norm"), GgufValue::from_bool(c.norm_topk_prob));
  out.set(key(c, "expert_gating_func"), GgufValue::from_u32(c.scoring_func == "sigmoid" ? 2 : 1));
  out.set(key(c, "expert_group_count"), GgufValue::from_u32(static_cast<uint32_t>(c.n_group)));
  out.set(key(c, "expert_group_used_count"),
          GgufValue::from_u32(static_cast<uint32_t>(c.topk_group)));
}

Result<ModelConfig> model_config_from_gguf(const GgufFile& f) {
  const GgufValue* arch_value = f.find("general.architecture");
  if (arch_value == nullptr || arch_value->as_string() == nullptr) {
    return data_loss("{}: general.architecture: missing or not a string", f.name());
  }
  const std::string arch = *arch_value->as_string();
  ModelConfig c;
  if (arch == "qwen2") {
    c.arch = Arch::kQwen2;
    c.model_type = "qwen2";
    c.attention_bias = true;
  } else if (arch == "llama") {
    c.arch = Arch::kLlama;
    c.model_type = "llama";
  } else if (arch == "deepseek2") {
    SEEK_ASSIGN_OR_RETURN(const int64_t gating, f.get_int_or("deepseek2.expert_gating_func", 1));
    c.arch = gating == 2 ? Arch::kDeepseekV3 : Arch::kDeepseekV2;
    c.model_type = c.arch == Arch::kDeepseekV3 ? "deepseek_v3" : "deepseek_v2";
  } else {
    return data_loss("{}: general.architecture: '{}' is not supported (deepseek2, qwen2, llama)",
                     f.name(), arch);
  }
  const std::string p = arch + ".";
  SEEK_ASSIGN_OR_RETURN(c.hidden_size, f.get_int(p + "embedding_length"));
  SEEK_ASSIGN_OR_RETURN(c.num_hidden_layers, f.get_int(p + "block_count"));
  SEEK_ASSIGN_OR_RETURN(c.num_attention_heads, f.get_int(p + "attention.head_count"));
  SEEK_ASSIGN_OR_RETURN(c.intermediate_size, f.get_int(p + "feed_forward_length"));
  SEEK_RETURN_IF_ERROR(check_positive(f, p + "embedding_length", c.hidden_size));
  SEEK_RETURN_IF_ERROR(check_positive(f, p + "block_count", c.num_hidden_layers));
  SEEK_RETURN_IF_ERROR(check_positive(f, p + "attention.head_count", c.num_attention_heads));
  SEEK_ASSIGN_OR_RETURN(c.max_position_embeddings, f.get_int_or(p + "context_length", 4096));
  SEEK_ASSIGN_OR_RETURN(c.rms_norm_eps,
                        f.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-6));
  SEEK_ASSIGN_OR_RETURN(c.rope_theta, f.get_float_or(p + "rope.freq_base", 10000.0));
  SEEK_ASSIGN_OR_RETURN(c.num_key_value_heads,
                        f.get_int_or(p + "attention.head_count_kv", c.num_attention_heads));
  SEEK_ASSIGN_OR_RETURN(
      c.head_dim, f.get_int_or(p + "attention.key_length", c.hidden_size / c.num_attention_heads));
  SEEK_ASSIGN_OR_RETURN(c.vocab_size, f.get_int_or(p + "vocab_size", 0));
  if (c.vocab_size == 0) {
    const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
    if (tokens != nullptr) c.vocab_size = static_cast<int64_t>(tokens->array.size());
  }
  if (const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
      embd != nullptr && embd->dims.size() == 2) {
    c.vocab_size = static_cast<int64_t>(embd->dims[1]);
  }
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  if (arch != "deepseek2") {
    if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0) {
      return data_loss("{}: {}attention.head_count_kv: {} does not divide head_count {}", f.name(),
                       p, c.num_key_value_heads, c.num_attention_heads);
    }
    return c;
  }
  // MLA + MoE
  SEEK_ASSIGN_OR_RETURN(c.q_lora_rank, f.get_int_or(p + "attention.q_lora_rank", 0));
  SEEK_ASSIGN_OR_RETURN(c.kv_lora_rank, f.get_int(p + "attention.kv_lora_rank"));
  SEEK_ASSIGN_OR_RETURN(c.qk_rope_head_dim, f.get_int(p + "rope.dimension_count"));
  SEEK_RETURN_IF_ERROR(check_positive(f, p + "attention.kv_lora_rank", c.kv_lora_rank));
  SEEK_RETURN_IF_ERROR(check_positive(f, p + "rope.dimension_count", c.qk_rope_head_dim));
  SEEK_ASSIGN_OR_RETURN(const int64_t key_length, f.get_int_or(p + "attention.key_length", 0));
  SEEK_ASSIGN_OR_RETURN(const int64_t value_length, f.get_int_or(p + "attention.value_length", 0));
  SEEK_ASSIGN_OR_RETURN(const int64_t key_length_mla,
                        f.get_int_or(p + "attention.key_length_mla", 0));
  SEEK_ASSIGN_OR_RETURN(const int64_t value_length_mla,
                        f.get_int_or(p + "attention.value_length_mla", 0));
  if (key_length_mla > 0) {
    c.qk_nope_head_dim = key_length_mla - c.qk_rope_head_dim;
    c.v_head_dim = value_length_mla;
  } else {  // old layout: key_length is per head nope + rope
    c.qk_nope_head_dim = key_length - c.qk_rope_head_dim;
    c.v_head_dim = value_length;
  }
  if (c.qk_nope_head_dim <= 0 || c.v_head_dim <= 0) {
    return data_loss("{}: {}attention.key_length: inconsistent MLA head sizes (nope {}, v {})",
                     f.name(), p, c.qk_nope_head_dim, c.v_head_dim);
  }
  c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
  SEEK_ASSIGN_OR_RETURN(c.first_k_dense_replace, f.get_int_or(p + "leading_dense_block_count", 0));
  SEEK_ASSIGN_OR_RETURN(c.n_routed_experts, f.get_int_or(p + "expert_count", 0));
  SEEK_ASSIGN_OR_RETURN(c.num_experts_per_tok, f.get_int_or(p + "expert_used_count", 0));
  SEEK_ASSIGN_OR_RETURN(c.n_shared_experts, f.get_int_or(p + "expert_shared_count", 0));
  SEEK_ASSIGN_OR_RETURN(c.moe_intermediate_size, f.get_int_or(p + "expert_feed_forward_length", 0));
  SEEK_ASSIGN_OR_RETURN(c.routed_scaling_factor, f.get_float_or(p + "expert_weights_scale", 1.0));
  SEEK_ASSIGN_OR_RETURN(c.norm_topk_prob, f.get_bool_or(p + "expert_weights_norm", false));
  SEEK_ASSIGN_OR_RETURN(c.n_group, f.get_int_or(p + "expert_group_count", 1));
  SEEK_ASSIGN_OR_RETURN(c.topk_group, f.get_int_or(p + "expert_group_used_count", 1));
  if (c.arch == Arch::kDeepseekV3) {
    c.scoring_func = "sigmoid";
    c.topk_method = "noaux_tc";
  } else {
    c.scoring_func = "softmax";
    c.topk_method = c.n_group > 1 ? "group_limited_greedy" : "greedy";
  }
  if (c.n_routed_experts > 0 &&
      (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.n_routed_experts)) {
    return data_loss("{}: {}expert_used_count: {} not in 1..expert_count {}", f.name(), p,
                     c.num_experts_per_tok, c.n_routed_experts);
  }
  if (c.n_group <= 0 || c.topk_group <= 0 || c.topk_group > c.n_group ||
      (c.n_routed_experts > 0 && c.n_routed_experts % c.n_group != 0)) {
    return data_loss("{}: {}expert_group_count: {} groups / {} used do not fit {} experts",
                     f.name(), p, c.n_group, c.topk_group, c.n_routed_experts);
  }
  const GgufValue* scaling = f.find(p + "rope.scaling.type");
  if (scaling != nullptr && scaling->as_string() != nullptr && *scaling->as_string() == "yarn") {
    c.rope_scaling.type = RopeScaling::Type::kYarn;
    SEEK_ASSIGN_OR_RETURN(c.rope_scaling.factor, f.get_float_or(p + "rope.scaling.factor", 1.0));
    SEEK_ASSIGN_OR_RETURN(c.rope_scaling.original_max_position_embeddings,
                          f.get_int_or(p + "rope.scaling.original_context_length", 0));
    SEEK_ASSIGN_OR_RETURN(const double log_multiplier,
                          f.get_float_or(p + "rope.scaling.yarn_log_multiplier", 0.0));
    c.rope_scaling.mscale_all_dim = log_multiplier / 0.1;
    c.rope_scaling.mscale = c.rope_scaling.mscale_all_dim;
  }
  return c;
}

void tokenizer_data_to_gguf(const TokenizerData& t, GgufWriter& out) {
  out.set("tokenizer.ggml.model", GgufValue::from_string("gpt2"));
  out.set("tokenizer.ggml.pre", GgufValue::from_string(t.pre));
  out.set("tokenizer.ggml.tokens", GgufValue::from_strings(t.tokens));
  std::vector<int32_t> types(t.token_types.size());
  for (size_t i = 0; i < types.size(); ++i) types[i] = static_cast<int32_t>(t.token_types[i]);
  out.set("tokenizer.ggml.token_type", GgufValue::from_i32s(types));
  out.set("tokenizer.ggml.merges", GgufValue::from_strings(t.merges));
  if (t.bos_id >= 0)
    out.set("tokenizer.ggml.bos_token_id", GgufValue::from_u32(static_cast<uint32_t>(t.bos_id)));
  if (t.eos_id >= 0)
    out.set("tokenizer.ggml.eos_token_id", GgufValue::from_u32(static_cast<uint32_t>(t.eos_id)));
  out.set("tokenizer.ggml.add_bos_token", GgufValue::from_bool(t.add_bos));
  if (t.chat_template) out.set("tokenizer.chat_template", GgufValue::from_string(*t.chat_template));
}

Result<TokenizerData> tokenizer_data_from_gguf(const GgufFile& f) {
  const GgufValue* model = f.find("tokenizer.ggml.model");
  if (model == nullptr || model->as_string() == nullptr) {
    return data_loss("{}: tokenizer.ggml.model: missing (the file carries no tokenizer)", f.name());
  }
  if (*model->as_string() != "gpt2") {
    return data_loss("{}: tokenizer.ggml.model: '{}' is not supported (byte-level BPE 'gpt2' only)",
                     f.name(), *model->as_string());
  }
  TokenizerData t;
  const GgufValue* pre = f.find("tokenizer.ggml.pre");
  t.pre = (pre != nullptr && pre->as_string() != nullptr) ? *pre->as_string() : "default";
  SEEK_ASSIGN_OR_RETURN(t.tokens, f.get_string_array("tokenizer.ggml.tokens"));
  if (f.find("tokenizer.ggml.merges") != nullptr) {
    SEEK_ASSIGN_OR_RETURN(t.merges, f.get_string_array("tokenizer.ggml.merges"));
  }
  t.token_types.assign(t.tokens.size(), TokenType::kNormal);
  if (const GgufValue* types = f.find("tokenizer.ggml.token_type"); types != nullptr) {
    if (types->type != GgufType::kArray || types->array.size() != t.tokens.size()) {
      return data_loss("{}: tokenizer.ggml.token_type: expected an array of {} integers", f.name(),
                       t.tokens.size());
    }
    for (size_t i = 0; i < t.tokens.size(); ++i) {
      auto v = types->array[i].as_int();
      if (!v || *v < 1 || *v > 6) {
        return data_loss("{}: tokenizer.ggml.token_type[{}]: not a token type (1..6)", f.name(), i);
      }
      t.token_types[i] = static_cast<TokenType>(*v);
    }
  }
  const int64_t n = static_cast<int64_t>(t.tokens.size());
  SEEK_ASSIGN_OR_RETURN(t.bos_id, f.get_int_or("tokenizer.ggml.bos_token_id", -1));
  SEEK_ASSIGN_OR_RETURN(t.eos_id, f.get_int_or("tokenizer.ggml.eos_token_id", -1));
  if (t.bos_id >= n || t.eos_id >= n) {
    return data_loss("{}: tokenizer.ggml.bos_token_id/eos_token_id: beyond the {} tokens", f.name(),
                     n);
  }
  SEEK_ASSIGN_OR_RETURN(t.add_bos, f.get_bool_or("tokenizer.ggml.add_bos_token", false));
  if (const GgufValue* tmpl = f.find("tokenizer.chat_template");
      tmpl != nullptr && tmpl->as_string() != nullptr) {
    t.chat_template = *tmpl->as_string();
  }
  return t;
}

std::vector<float> llama3_rope_freq_factors(const ModelConfig& c) {
  std::vector<float> factors;
  if (c.rope_scaling.type != RopeScaling::Type::kLlama3) return factors;
  const RopeScaling& s = c.rope_scaling;
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  const int64_t d = c.head_dim;
  for (int64_t i = 0; i < d / 2; ++i) {
    const double inv_freq =
        std::pow(c.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
    const double wavelen = 2.0 * std::numbers::pi / inv_freq;
    double factor;
    if (wavelen < high_freq_wavelen) {
      factor = 1.0;
    } else if (wavelen > low_freq_wavelen) {
      factor = s.factor;
    } else {
      const double smooth =
          (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      factor = 1.0 / ((1.0 - smooth) / s.factor + smooth);
    }
    factors.push_back(static_cast<float>(factor));
  }
  return factors;
}

std::vector<GgufTensorPlan> gguf_tensor_plan(const ModelConfig& c, MlaGgufLayout layout) {
  std::vector<GgufTensorPlan> plan;
  const std::string layer_prefix = "model.layers.";
  for (const TensorSpec& spec : hf_tensor_specs(c)) {
    GgufTensorPlan p{"", reversed(spec.shape), spec.role, GgufTransform::kCopy, {spec.name}, 0};
    if (spec.name == "model.embed_tokens.weight") {
      p.name = "token_embd.weight";
    } else if (spec.name == "model.norm.weight") {
      p.name = "output_norm.weight";
    } else if (spec.name == "lm_head.weight") {
      p.name = "output.weight";
    } else {
      const std::string local = spec.name.substr(spec.name.find('.', layer_prefix.size()) + 1);
      const std::string blk = fmt::format("blk.{}.", spec.layer);
      if (local.starts_with("mlp.experts.")) {
        // Stacked once, at expert 0: ffn_{gate,up,down}_exps, experts outermost.
        const size_t dot = local.find('.', 12);
        if (local.substr(12, dot - 12) != "0") continue;
        const std::string which = local.substr(dot + 1);  // "gate_proj.weight"
        const std::string base = which.substr(0, which.find('_'));
        GgufTensorPlan s{blk + "ffn_" + base + "_exps.weight", {}, spec.role,
                         GgufTransform::kStackExperts,         {}, 0};
        s.dims = reversed(spec.shape);
        s.dims.push_back(static_cast<uint64_t>(c.n_routed_experts));
        for (int64_t e = 0; e < c.n_routed_experts; ++e) {
          s.sources.push_back(
              fmt::format("model.layers.{}.mlp.experts.{}.{}", spec.layer, e, which));
        }
        plan.push_back(std::move(s));
        continue;
      }
      if (local == "self_attn.kv_b_proj.weight" && layout == MlaGgufLayout::kSplit) {
        const uint64_t h = static_cast<uint64_t>(c.num_attention_heads);
        const uint64_t r = static_cast<uint64_t>(c.kv_lora_rank);
        plan.push_back({blk + "attn_k_b.weight",
                        {static_cast<uint64_t>(c.qk_nope_head_dim), r, h},
                        spec.role,
                        GgufTransform::kSplitKb,
                        {spec.name},
                        0});
        plan.push_back({blk + "attn_v_b.weight",
                        {r, static_cast<uint64_t>(c.v_head_dim), h},
                        spec.role,
                        GgufTransform::kSplitVb,
                        {spec.name},
                        0});
        continue;
      }
      for (const NameMap& m : kLayerNames) {
        if (local == m.hf) p.name = blk + std::string(m.gguf);
      }
      SEEK_CHECK(!p.name.empty(), "every HF tensor name has a GGUF name");
      if (c.arch == Arch::kLlama &&
          (local == "self_attn.q_proj.weight" || local == "self_attn.k_proj.weight")) {
        p.transform = GgufTransform::kPermuteRope;
        p.n_head =
            local == "self_attn.q_proj.weight" ? c.num_attention_heads : c.num_key_value_heads;
      }
    }
    plan.push_back(std::move(p));
  }
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3) {
    plan.push_back({"rope_freqs.weight",
                    {static_cast<uint64_t>(c.head_dim / 2)},
                    TensorRole::kNorm,
                    GgufTransform::kRopeFreqs,
                    {},
                    0});
  }
  return plan;
}

std::vector<float> apply_gguf_transform(const ModelConfig& c, const GgufTensorPlan& plan,
                                        const std::vector<std::vector<float>>& sources) {
  switch (plan.transform) {
    case GgufTransform::kCopy:
      return sources.at(0);
    case GgufTransform::kRopeFreqs:
      return llama3_rope_freq_factors(c);
    case GgufTransform::kStackExperts: {
      std::vector<float> out;
      out.reserve(sources.size() * sources.at(0).size());
      for (const auto& s : sources) out.insert(out.end(), s.begin(), s.end());
      return out;
    }
    case GgufTransform::kPermuteRope: {
      const std::vector<float>& src = sources.at(0);
      const size_t cols = plan.dims.at(0);
      const size_t rows = src.size() / cols;
      const size_t head_rows = rows / static_cast<size_t>(plan.n_head);
      const size_t half = head_rows / 2;
      std::vector<float> out(src.size());
      for (size_t h = 0; h < static_cast<size_t>(plan.n_head); ++h) {
        for (size_t i = 0; i < half; ++i) {
          for (size_t j = 0; j < 2; ++j) {
            const size_t dst_row = h * head_rows + 2 * i + j;
            const size_t src_row = h * head_rows + j * half + i;
            std::copy_n(src.begin() + static_cast<std::ptrdiff_t>(src_row * cols), cols,
                        out.begin() + static_cast<std::ptrdiff_t>(dst_row * cols));
          }
        }
      }
      return out;
    }
    case GgufTransform::kSplitKb:
    case GgufTransform::kSplitVb: {
      // kv_b_proj: [H * (nope + v), r]; head h's first nope rows are W_UK_h, the next v rows
      // W_UV_h.
      const std::vector<float>& src = sources.at(0);
      const size_t h_count = static_cast<size_t>(c.num_attention_heads);
      const size_t nope = static_cast<size_t>(c.qk_nope_head_dim);
      const size_t v = static_cast<size_t>(c.v_head_dim);
      const size_t r = static_cast<size_t>(c.kv_lora_rank);
      std::vector<float> out;
      if (plan.transform == GgufTransform::kSplitKb) {
        out.resize(h_count * r * nope);  // [H, r, nope]: W_UK_h transposed
        for (size_t h = 0; h < h_count; ++h)
          for (size_t i = 0; i < nope; ++i)
            for (size_t j = 0; j < r; ++j)
              out[(h * r + j) * nope + i] = src[(h * (nope + v) + i) * r + j];
      } else {
        out.resize(h_count * v * r);  // [H, v, r]: W_UV_h
        for (size_t h = 0; h < h_count; ++h)
          for (size_t i = 0; i < v; ++i)
            for (size_t j = 0; j < r; ++j)
              out[(h * v + i) * r + j] = src[(h * (nope + v) + nope + i) * r + j];
      }
      return out;
    }
  }
  return {};
}

std::vector<float> unapply_gguf_transform(const GgufTensorPlan& plan, std::vector<float> values) {
  SEEK_CHECK(
      plan.transform == GgufTransform::kCopy || plan.transform == GgufTransform::kPermuteRope,
      "unapply_gguf_transform: a one-to-one transform");
  if (plan.transform == GgufTransform::kCopy) return values;
  // kPermuteRope put old row h*d + j*half + i at new row h*d + 2i + j; put it back.
  const size_t cols = plan.dims.at(0);
  const size_t rows = values.size() / cols;
  const size_t head_rows = rows / static_cast<size_t>(plan.n_head);
  const size_t half = head_rows / 2;
  std::vector<float> out(values.size());
  for (size_t h = 0; h < static_cast<size_t>(plan.n_head); ++h) {
    for (size_t i = 0; i < half; ++i) {
      for (size_t j = 0; j < 2; ++j) {
        const size_t gguf_row = h * head_rows + 2 * i + j;
        const size_t hf_row = h * head_rows + j * half + i;
        std::copy_n(values.begin() + static_cast<std::ptrdiff_t>(gguf_row * cols), cols,
                    out.begin() + static_cast<std::ptrdiff_t>(hf_row * cols));
      }
    }
  }
  return out;
}

std::vector<float> merge_kv_b(const ModelConfig& c, const std::vector<float>& k_b,
                              const std::vector<float>& v_b) {
  const size_t h_count = static_cast<size_t>(c.num_attention_heads);
  const size_t nope = static_cast<size_t>(c.qk_nope_head_dim);
  const size_t v = static_cast<size_t>(c.v_head_dim);
  const size_t r = static_cast<size_t>(c.kv_lora_rank);
  SEEK_CHECK(k_b.size() == h_count * r * nope && v_b.size() == h_count * v * r,
             "merge_kv_b: attn_k_b [H, r, nope] and attn_v_b [H, v, r]");
  std::vector<float> out(h_count * (nope + v) * r);
  for (size_t h = 0; h < h_count; ++h) {
    for (size_t i = 0; i < nope; ++i)
      for (size_t j = 0; j < r; ++j)
        out[(h * (nope + v) + i) * r + j] = k_b[(h * r + j) * nope + i];
    for (size_t i = 0; i < v; ++i)
      for (size_t j = 0; j < r; ++j)
        out[(h * (nope + v) + nope + i) * r + j] = v_b[(h * v + i) * r + j];
  }
  return out;
}

void pad_tokenizer_to_vocab(TokenizerData& tok, int64_t vocab_size) {
  for (int64_t id = static_cast<int64_t>(tok.tokens.size()); id < vocab_size; ++id) {
    tok.tokens.push_back(fmt::format("[PAD{}]", id));
    tok.token_types.push_back(TokenType::kUnused);
  }
}

}  // namespace seekserve
