#include "formats/hf_config.h"

#include <cmath>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"

namespace seekserve {
namespace {

using Json = nlohmann::json;

// Sizes beyond this are not a model but an overflow waiting to happen downstream.
constexpr int64_t kMaxDim = int64_t{1} << 31;

struct ArchName {
  Arch arch;
  const char* architecture;  // HF "architectures" entry
  const char* model_type;
};
constexpr ArchName kArchNames[] = {
    {Arch::kDeepseekV3, "DeepseekV3ForCausalLM", "deepseek_v3"},
    {Arch::kDeepseekV2, "DeepseekV2ForCausalLM", "deepseek_v2"},
    {Arch::kQwen2, "Qwen2ForCausalLM", "qwen2"},
    {Arch::kLlama, "LlamaForCausalLM", "llama"},
};

const ArchName& names_of(Arch arch) {
  for (const ArchName& n : kArchNames) {
    if (n.arch == arch) return n;
  }
  return kArchNames[3];
}

// What HF's config class for `arch` holds when config.json leaves a field out. For DeepSeek the
// defaults are those of the checkpoints' own configuration_deepseek.py (the class that saved
// every published DeepSeek config); fields that class defaults to None map to 0 ("none").
ModelConfig defaults_for(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.model_type = names_of(arch).model_type;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = false;
  switch (arch) {
    case Arch::kDeepseekV3:
      c.vocab_size = 129280;
      c.hidden_size = 7168;
      c.intermediate_size = 18432;
      c.moe_intermediate_size = 2048;
      c.num_hidden_layers = 61;
      c.num_nextn_predict_layers = 1;
      c.num_attention_heads = 128;
      c.n_shared_experts = 1;
      c.n_routed_experts = 256;
      c.routed_scaling_factor = 2.5;
      c.kv_lora_rank = 512;
      c.q_lora_rank = 1536;
      c.qk_rope_head_dim = 64;
      c.v_head_dim = 128;
      c.qk_nope_head_dim = 128;
      c.topk_method = "noaux_tc";
      c.n_group = 8;
      c.topk_group = 4;
      c.num_experts_per_tok = 8;
      c.moe_layer_freq = 1;
      c.first_k_dense_replace = 3;
      c.norm_topk_prob = true;
      c.scoring_func = "sigmoid";
      c.max_position_embeddings = 4096;
      c.bos_token_id = 0;
      c.eos_token_id = 1;
      break;
    case Arch::kDeepseekV2:
      c.vocab_size = 102400;
      c.hidden_size = 4096;
      c.intermediate_size = 11008;
      c.moe_intermediate_size = 1407;
      c.num_hidden_layers = 30;
      c.num_attention_heads = 32;
      c.routed_scaling_factor = 1.0;
      c.kv_lora_rank = 512;
      c.q_lora_rank = 1536;
      c.qk_rope_head_dim = 64;
      c.v_head_dim = 128;
      c.qk_nope_head_dim = 128;
      c.topk_method = "greedy";
      c.moe_layer_freq = 1;
      c.first_k_dense_replace = 0;
      c.norm_topk_prob = false;
      c.scoring_func = "softmax";
      c.max_position_embeddings = 2048;
      c.bos_token_id = 100000;
      c.eos_token_id = 100001;
      break;
    case Arch::kQwen2:
      c.vocab_size = 151936;
      c.hidden_size = 4096;
      c.intermediate_size = 22016;
      c.num_hidden_layers = 32;
      c.num_attention_heads = 32;
      c.max_position_embeddings = 32768;
      c.attention_bias = true;  // Qwen2 always has q/k/v biases
      break;
    case Arch::kLlama:
      c.vocab_size = 32000;
      c.hidden_size = 4096;
      c.intermediate_size = 11008;
      c.num_hidden_layers = 32;
      c.num_attention_heads = 32;
      c.max_position_embeddings = 2048;
      c.bos_token_id = 1;
      c.eos_token_id = 2;
      break;
  }
  return c;
}

const char* json_type(const Json& v) {
  return v.type_name();
}

// Typed access to one JSON object's fields; every error names the file and the field
// (`prefix` + key, e.g. "rope_scaling.factor").
class FieldReader {
 public:
  FieldReader(const Json& object, const std::string& source, std::string prefix)
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  const Json* get(const char* key) const {
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  bool has(const char* key) const { return get(key) != nullptr; }

  // Absent: `out` unchanged. null: `out = null_value` when given, else unchanged.
  Status integer(const char* key, int64_t& out,
                 std::optional<int64_t> null_value = std::nullopt) const {
    const Json* v = get(key);
    if (v == nullptr) return Status::ok_status();
    if (v->is_null()) {
      if (null_value) out = *null_value;
      return Status::ok_status();
    }
    if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return error(key, fmt::format("{} is out of range", u));
      }
      out = static_cast<int64_t>(u);
      return Status::ok_status();
    }
    if (v->is_number_integer()) {
      out = v->get<int64_t>();
      return Status::ok_status();
    }
    return error(key, fmt::format("expected an integer, got {} {}", json_type(*v), v->dump()));
  }

  Status number(const char* key, double& out) const {
    const Json* v = get(key);
    if (v == nullptr || v->is_null()) return Status::ok_status();
    if (!v->is_number()) {
      return error(key, fmt::format("expected a number, got {} {}", json_type(*v), v->dump()));
    }
    out = v->get<double>();
    return Status::ok_status();
  }

  Status boolean(const char* key, bool& out) const {
    const Json* v = get(key);
    if (v == nullptr || v->is_null()) return Status::ok_status();
    if (!v->is_boolean()) {
      return error(key, fmt::format("expected true or false, got {} {}", json_type(*v), v->dump()));
    }
    out = v->get<bool>();
    return Status::ok_status();
  }

  Status string(const char* key, std::string& out) const {
    const Json* v = get(key);
    if (v == nullptr || v->is_null()) return Status::ok_status();
    if (!v->is_string()) {
      return error(key, fmt::format("expected a string, got {} {}", json_type(*v), v->dump()));
    }
    out = v->get<std::string>();
    return Status::ok_status();
  }

  Status error(const char* key, const std::string& what) const {
    return invalid_argument("{}: {}{}: {}", source_, prefix_, key, what);
  }

 private:
  const Json& object_;
  const std::string& source_;
  std::string prefix_;
};

Result<Arch> detect_arch(const FieldReader& root, const std::string& source) {
  if (const Json* archs = root.get("architectures"); archs != nullptr && !archs->is_null()) {
    if (!archs->is_array()) {
      return root.error("architectures", fmt::format("expected a list, got {}", archs->dump()));
    }
    for (const Json& a : *archs) {
      if (!a.is_string()) continue;
      for (const ArchName& n : kArchNames) {
        if (a.get_ref<const std::string&>() == n.architecture) return n.arch;
      }
    }
    return unimplemented(
        "{}: architectures: unsupported {} (supported: DeepseekV3ForCausalLM, "
        "DeepseekV2ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM)",
        source, archs->dump());
  }
  std::string model_type;
  SEEK_RETURN_IF_ERROR(root.string("model_type", model_type));
  if (model_type.empty()) {
    return invalid_argument("{}: architectures: missing, and no model_type to fall back on",
                            source);
  }
  for (const ArchName& n : kArchNames) {
    if (model_type == n.model_type) return n.arch;
  }
  return unimplemented(
      "{}: model_type: unsupported '{}' (supported: deepseek_v3, deepseek_v2, qwen2, llama)",
      source, model_type);
}

// Reads the scaling fields of a rope_scaling / rope_parameters object.
Status parse_rope_scaling(const Json& object, const std::string& field, const std::string& source,
                          int64_t max_position_embeddings, RopeScaling& out) {
  FieldReader r(object, source, field + ".");
  std::string type;
  const char* type_key = r.has("rope_type") ? "rope_type" : "type";
  SEEK_RETURN_IF_ERROR(r.string(type_key, type));
  out = RopeScaling();
  if (type.empty() || type == "default") return Status::ok_status();
  if (type == "yarn") {
    out.type = RopeScaling::Type::kYarn;
  } else if (type == "llama3") {
    out.type = RopeScaling::Type::kLlama3;
  } else if (type == "linear") {
    out.type = RopeScaling::Type::kLinear;
  } else {
    return unimplemented("{}: {}.{}: unsupported '{}' (supported: yarn, llama3, linear)", source,
                         field, type_key, type);
  }
  auto require = [&](const char* key) -> Status {
    const Json* v = r.get(key);
    if (v == nullptr || v->is_null()) return r.error(key, fmt::format("required for {}", type));
    return Status::ok_status();
  };
  SEEK_RETURN_IF_ERROR(require("factor"));
  SEEK_RETURN_IF_ERROR(r.number("factor", out.factor));
  if (!(out.factor > 0)) return r.error("factor", fmt::format("{} must be positive", out.factor));
  if (out.type == RopeScaling::Type::kLinear) return Status::ok_status();

  if (out.type == RopeScaling::Type::kLlama3) {
    for (const char* key :
         {"original_max_position_embeddings", "low_freq_factor", "high_freq_factor"}) {
      SEEK_RETURN_IF_ERROR(require(key));
    }
    SEEK_RETURN_IF_ERROR(r.number("low_freq_factor", out.low_freq_factor));
    SEEK_RETURN_IF_ERROR(r.number("high_freq_factor", out.high_freq_factor));
    if (!(out.low_freq_factor > 0)) {
      return r.error("low_freq_factor", fmt::format("{} must be positive", out.low_freq_factor));
    }
    if (!(out.high_freq_factor > out.low_freq_factor)) {
      return r.error("high_freq_factor", fmt::format("{} must exceed low_freq_factor {}",
                                                     out.high_freq_factor, out.low_freq_factor));
    }
  } else {  // yarn: HF falls back on max_position_embeddings
    out.original_max_position_embeddings = max_position_embeddings;
    SEEK_RETURN_IF_ERROR(r.number("beta_fast", out.beta_fast));
    SEEK_RETURN_IF_ERROR(r.number("beta_slow", out.beta_slow));
    SEEK_RETURN_IF_ERROR(r.number("mscale", out.mscale));
    SEEK_RETURN_IF_ERROR(r.number("mscale_all_dim", out.mscale_all_dim));
    if (!(out.beta_fast > 0) || !(out.beta_slow > 0)) {
      return r.error("beta_fast", fmt::format("beta_fast {} and beta_slow {} must be positive",
                                              out.beta_fast, out.beta_slow));
    }
  }
  SEEK_RETURN_IF_ERROR(
      r.integer("original_max_position_embeddings", out.original_max_position_embeddings));
  if (out.original_max_position_embeddings <= 0) {
    return r.error("original_max_position_embeddings",
                   fmt::format("{} must be positive", out.original_max_position_embeddings));
  }
  return Status::ok_status();
}

Status validate(const ModelConfig& c, bool head_dim_given, const std::string& source) {
  auto bad = [&](const char* field, const std::string& what) {
    return invalid_argument("{}: {}: {}", source, field, what);
  };
  struct Sized {
    const char* field;
    int64_t value;
  };
  const bool deepseek = c.arch == Arch::kDeepseekV3 || c.arch == Arch::kDeepseekV2;
  const Sized sizes[] = {
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {deepseek ? "qk_rope_head_dim" : "head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
  };
  for (const Sized& s : sizes) {
    if (s.value <= 0) return bad(s.field, fmt::format("{} must be positive", s.value));
    if (s.value > kMaxDim) return bad(s.field, fmt::format("{} is implausibly large", s.value));
  }
  if (!(c.rms_norm_eps > 0))
    return bad("rms_norm_eps", fmt::format("{} must be positive", c.rms_norm_eps));
  if (!(c.rope_theta > 0))
    return bad("rope_theta", fmt::format("{} must be positive", c.rope_theta));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return bad("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}",
                                                  c.num_key_value_heads, c.num_attention_heads));
  }
  if (!deepseek && !head_dim_given && c.hidden_size % c.num_attention_heads != 0) {
    return bad("num_attention_heads", fmt::format("{} does not divide hidden_size {}",
                                                  c.num_attention_heads, c.hidden_size));
  }
  if (c.bos_token_id < -1 || c.bos_token_id >= kMaxDim) {
    return bad("bos_token_id", fmt::format("{} is not a token id", c.bos_token_id));
  }
  if (c.eos_token_id < -1 || c.eos_token_id >= kMaxDim) {
    return bad("eos_token_id", fmt::format("{} is not a token id", c.eos_token_id));
  }
  if (!deepseek) return Status::ok_status();

  const Sized mla[] = {
      {"kv_lora_rank", c.kv_lora_rank},
      {"qk_nope_head_dim", c.qk_nope_head_dim},
      {"qk_rope_head_dim", c.qk_rope_head_dim},
      {"v_head_dim", c.v_head_dim},
      {"moe_layer_freq", c.moe_layer_freq},
      {"n_group", c.n_group},
      {"topk_group", c.topk_group},
  };
  for (const Sized& s : mla) {
    if (s.value <= 0) return bad(s.field, fmt::format("{} must be positive", s.value));
    if (s.value > kMaxDim) return bad(s.field, fmt::format("{} is implausibly large", s.value));
  }
  const Sized non_negative[] = {
      {"q_lora_rank", c.q_lora_rank},
      {"n_routed_experts", c.n_routed_experts},
      {"n_shared_experts", c.n_shared_experts},
      {"num_experts_per_tok", c.num_experts_per_tok},
      {"moe_intermediate_size", c.moe_intermediate_size},
      {"first_k_dense_replace", c.first_k_dense_replace},
      {"num_nextn_predict_layers", c.num_nextn_predict_layers},
  };
  for (const Sized& s : non_negative) {
    if (s.value < 0) return bad(s.field, fmt::format("{} must not be negative", s.value));
    if (s.value > kMaxDim) return bad(s.field, fmt::format("{} is implausibly large", s.value));
  }
  if (c.qk_rope_head_dim % 2 != 0) {
    return bad("qk_rope_head_dim",
               fmt::format("{} must be even (RoPE rotates pairs)", c.qk_rope_head_dim));
  }
  if (c.scoring_func != "softmax" && c.scoring_func != "sigmoid") {
    return bad("scoring_func",
               fmt::format("unknown '{}' (expected softmax or sigmoid)", c.scoring_func));
  }
  if (c.topk_method != "greedy" && c.topk_method != "group_limited_greedy" &&
      c.topk_method != "noaux_tc") {
    return bad("topk_method",
               fmt::format("unknown '{}' (expected greedy, group_limited_greedy or noaux_tc)",
                           c.topk_method));
  }
  if (c.topk_group > c.n_group) {
    return bad("topk_group", fmt::format("{} exceeds n_group {}", c.topk_group, c.n_group));
  }
  if (c.first_k_dense_replace > c.num_hidden_layers) {
    return bad("first_k_dense_replace", fmt::format("{} exceeds num_hidden_layers {}",
                                                    c.first_k_dense_replace, c.num_hidden_layers));
  }
  if (c.n_routed_experts == 0) return Status::ok_status();
  if (c.num_experts_per_tok <= 0) {
    return bad("num_experts_per_tok", fmt::format("{} must be positive when n_routed_experts is {}",
                                                  c.num_experts_per_tok, c.n_routed_experts));
  }
  if (c.num_experts_per_tok > c.n_routed_experts) {
    return bad("num_experts_per_tok", fmt::format("{} exceeds n_routed_experts {}",
                                                  c.num_experts_per_tok, c.n_routed_experts));
  }
  if (c.moe_intermediate_size <= 0) {
    return bad("moe_intermediate_size",
               fmt::format("{} must be positive", c.moe_intermediate_size));
  }
  if (c.n_routed_experts % c.n_group != 0) {
    return bad("n_group", fmt::format("{} does not divide n_routed_experts {}", c.n_group,
                                      c.n_routed_experts));
  }
  if (c.topk_method == "noaux_tc" && c.n_routed_experts / c.n_group < 2) {
    return bad("n_group", fmt::format("{} leaves fewer than 2 experts per group (noaux_tc scores "
                                      "a group by its top 2)",
                                      c.n_group));
  }
  return Status::ok_status();
}

Status parse_into(const Json& root, const std::string& source, ModelConfig& c) {
  if (!root.is_object()) return invalid_argument("{}: not a JSON object", source);
  FieldReader r(root, source, "");
  SEEK_ASSIGN_OR_RETURN(Arch arch, detect_arch(r, source));
  c = defaults_for(arch);
  SEEK_RETURN_IF_ERROR(r.string("model_type", c.model_type));

  SEEK_RETURN_IF_ERROR(r.integer("vocab_size", c.vocab_size));
  SEEK_RETURN_IF_ERROR(r.integer("hidden_size", c.hidden_size));
  SEEK_RETURN_IF_ERROR(r.integer("intermediate_size", c.intermediate_size));
  SEEK_RETURN_IF_ERROR(r.integer("num_hidden_layers", c.num_hidden_layers));
  SEEK_RETURN_IF_ERROR(r.integer("num_attention_heads", c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;  // HF: None -> num_attention_heads
  SEEK_RETURN_IF_ERROR(r.integer("num_key_value_heads", c.num_key_value_heads));
  SEEK_RETURN_IF_ERROR(r.integer("max_position_embeddings", c.max_position_embeddings));
  SEEK_RETURN_IF_ERROR(r.number("rms_norm_eps", c.rms_norm_eps));
  SEEK_RETURN_IF_ERROR(r.boolean("tie_word_embeddings", c.tie_word_embeddings));
  SEEK_RETURN_IF_ERROR(r.boolean("attention_bias", c.attention_bias));
  SEEK_RETURN_IF_ERROR(r.integer("bos_token_id", c.bos_token_id, -1));
  // eos_token_id may be a list (several stop tokens): the first is the model's own.
  if (const Json* eos = r.get("eos_token_id"); eos != nullptr && eos->is_array()) {
    c.eos_token_id = -1;
    if (!eos->empty()) {
      const Json first_only = Json::object({{"eos_token_id", eos->front()}});
      FieldReader first(first_only, source, "");
      SEEK_RETURN_IF_ERROR(first.integer("eos_token_id", c.eos_token_id, -1));
    }
  } else {
    SEEK_RETURN_IF_ERROR(r.integer("eos_token_id", c.eos_token_id, -1));
  }
  // transformers 5 writes "dtype"; older releases "torch_dtype".
  SEEK_RETURN_IF_ERROR(r.string(r.has("dtype") ? "dtype" : "torch_dtype", c.torch_dtype));

  const bool deepseek = arch == Arch::kDeepseekV3 || arch == Arch::kDeepseekV2;
  if (deepseek) {
    SEEK_RETURN_IF_ERROR(r.integer("q_lora_rank", c.q_lora_rank, 0));
    SEEK_RETURN_IF_ERROR(r.integer("kv_lora_rank", c.kv_lora_rank, 0));
    SEEK_RETURN_IF_ERROR(r.integer("qk_nope_head_dim", c.qk_nope_head_dim));
    SEEK_RETURN_IF_ERROR(r.integer("qk_rope_head_dim", c.qk_rope_head_dim));
    SEEK_RETURN_IF_ERROR(r.integer("v_head_dim", c.v_head_dim));
    SEEK_RETURN_IF_ERROR(r.integer("n_routed_experts", c.n_routed_experts, 0));
    SEEK_RETURN_IF_ERROR(r.integer("n_shared_experts", c.n_shared_experts, 0));
    SEEK_RETURN_IF_ERROR(r.integer("num_experts_per_tok", c.num_experts_per_tok, 0));
    SEEK_RETURN_IF_ERROR(r.integer("moe_intermediate_size", c.moe_intermediate_size));
    SEEK_RETURN_IF_ERROR(r.integer("first_k_dense_replace", c.first_k_dense_replace));
    SEEK_RETURN_IF_ERROR(r.integer("moe_layer_freq", c.moe_layer_freq));
    SEEK_RETURN_IF_ERROR(r.integer("n_group", c.n_group, 1));
    SEEK_RETURN_IF_ERROR(r.integer("topk_group", c.topk_group, 1));
    SEEK_RETURN_IF_ERROR(r.string("scoring_func", c.scoring_func));
    SEEK_RETURN_IF_ERROR(r.string("topk_method", c.topk_method));
    SEEK_RETURN_IF_ERROR(r.boolean("norm_topk_prob", c.norm_topk_prob));
    SEEK_RETURN_IF_ERROR(r.number("routed_scaling_factor", c.routed_scaling_factor));
    SEEK_RETURN_IF_ERROR(r.integer("num_nextn_predict_layers", c.num_nextn_predict_layers, 0));
    // HF's DeepSeek configs set head_dim to the RoPE part of a head (what its rotary init reads).
    c.head_dim = c.qk_rope_head_dim;
  }
  bool head_dim_given = false;
  if (!deepseek) {
    const Json* hd = r.get("head_dim");
    head_dim_given = hd != nullptr && !hd->is_null();
    if (head_dim_given) {
      SEEK_RETURN_IF_ERROR(r.integer("head_dim", c.head_dim));
    } else if (c.num_attention_heads > 0) {
      c.head_dim = c.hidden_size / c.num_attention_heads;
    }
  }

  // RoPE: rope_parameters (newer transformers) holds rope_theta and the scaling fields; older
  // configs have rope_theta + rope_scaling.
  if (const Json* params = r.get("rope_parameters"); params != nullptr && !params->is_null()) {
    if (!params->is_object()) return r.error("rope_parameters", "expected an object");
    FieldReader p(*params, source, "rope_parameters.");
    SEEK_RETURN_IF_ERROR(r.number("rope_theta", c.rope_theta));
    SEEK_RETURN_IF_ERROR(p.number("rope_theta", c.rope_theta));
    SEEK_RETURN_IF_ERROR(parse_rope_scaling(*params, "rope_parameters", source,
                                            c.max_position_embeddings, c.rope_scaling));
  } else {
    SEEK_RETURN_IF_ERROR(r.number("rope_theta", c.rope_theta));
    if (const Json* s = r.get("rope_scaling"); s != nullptr && !s->is_null()) {
      if (!s->is_object()) return r.error("rope_scaling", "expected an object or null");
      SEEK_RETURN_IF_ERROR(parse_rope_scaling(*s, "rope_scaling", source, c.max_position_embeddings,
                                              c.rope_scaling));
    }
  }
  return validate(c, head_dim_given, source);
}

Json null_if(int64_t value, int64_t none) {
  return value == none ? Json(nullptr) : Json(value);
}

}  // namespace

Result<ModelConfig> parse_hf_config(std::string_view json_text, const std::string& source_name) {
  Json root;
  try {
    root = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& e) {
    return data_loss("{}: not valid JSON: {}", source_name, e.what());
  }
  ModelConfig config;
  SEEK_RETURN_IF_ERROR(parse_into(root, source_name, config));
  return config;
}

Result<ModelConfig> load_hf_config(const std::string& path) {
  SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  return parse_hf_config(text, path);
}

std::string hf_config_to_json(const ModelConfig& c) {
  Json j;
  j["architectures"] = {names_of(c.arch).architecture};
  j["model_type"] = c.model_type.empty() ? names_of(c.arch).model_type : c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  j["bos_token_id"] = null_if(c.bos_token_id, -1);
  j["eos_token_id"] = null_if(c.eos_token_id, -1);
  j["torch_dtype"] = c.torch_dtype;
  j["hidden_act"] = "silu";
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  j["attention_dropout"] = 0.0;

  const RopeScaling& s = c.rope_scaling;
  Json scaling = nullptr;
  auto set_type = [&](const char* name) {
    // Both keys: older loaders read "type", newer ones "rope_type".
    scaling["type"] = name;
    scaling["rope_type"] = name;
  };
  switch (s.type) {
    case RopeScaling::Type::kNone:
      break;
    case RopeScaling::Type::kYarn:
      set_type("yarn");
      scaling["factor"] = s.factor;
      scaling["original_max_position_embeddings"] = s.original_max_position_embeddings;
      scaling["beta_fast"] = s.beta_fast;
      scaling["beta_slow"] = s.beta_slow;
      scaling["mscale"] = s.mscale;
      if (s.mscale_all_dim != 0.0) scaling["mscale_all_dim"] = s.mscale_all_dim;
      break;
    case RopeScaling::Type::kLlama3:
      set_type("llama3");
      scaling["factor"] = s.factor;
      scaling["original_max_position_embeddings"] = s.original_max_position_embeddings;
      scaling["low_freq_factor"] = s.low_freq_factor;
      scaling["high_freq_factor"] = s.high_freq_factor;
      break;
    case RopeScaling::Type::kLinear:
      set_type("linear");
      scaling["factor"] = s.factor;
      break;
  }
  j["rope_scaling"] = scaling;

  switch (c.arch) {
    case Arch::kDeepseekV3:
    case Arch::kDeepseekV2:
      j["q_lora_rank"] = null_if(c.q_lora_rank, 0);
      j["kv_lora_rank"] = c.kv_lora_rank;
      j["qk_nope_head_dim"] = c.qk_nope_head_dim;
      j["qk_rope_head_dim"] = c.qk_rope_head_dim;
      j["v_head_dim"] = c.v_head_dim;
      // configuration_deepseek.py reads None as "no routed experts" (dense everywhere).
      j["n_routed_experts"] = null_if(c.n_routed_experts, 0);
      j["n_shared_experts"] = null_if(c.n_shared_experts, 0);
      j["num_experts_per_tok"] = null_if(c.num_experts_per_tok, 0);
      j["moe_intermediate_size"] = c.moe_intermediate_size;
      j["first_k_dense_replace"] = c.first_k_dense_replace;
      j["moe_layer_freq"] = c.moe_layer_freq;
      j["n_group"] = c.n_group;
      j["topk_group"] = c.topk_group;
      j["scoring_func"] = c.scoring_func;
      j["topk_method"] = c.topk_method;
      j["norm_topk_prob"] = c.norm_topk_prob;
      j["routed_scaling_factor"] = c.routed_scaling_factor;
      j["ep_size"] = 1;
      j["aux_loss_alpha"] = 0.001;
      j["seq_aux"] = true;
      if (c.arch == Arch::kDeepseekV3 || c.num_nextn_predict_layers != 0) {
        j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
      }
      break;
    case Arch::kQwen2:
      j["head_dim"] = c.head_dim;
      j["use_sliding_window"] = false;
      j["sliding_window"] = 4096;
      j["max_window_layers"] = c.num_hidden_layers;
      break;
    case Arch::kLlama:
      j["head_dim"] = c.head_dim;
      j["mlp_bias"] = false;
      j["pretraining_tp"] = 1;
      break;
  }
  return j.dump(2) + "\n";
}

}  // namespace seekserve
