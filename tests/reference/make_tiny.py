#!/usr/bin/python3
"""Small random HF folders (config.json + model.safetensors) for testing the numpy reference.

Only a stand-in until the C++ `seekserve make-model` is merged; it uses the same HF tensor names.
Presets: tiny-v3 (the make-model tiny-v3 shape), tiny-v2 (V2-Lite style: q_proj, softmax greedy),
tiny-v2-group (group_limited_greedy), tiny-qwen2 (GQA + bias), tiny-llama (GQA + llama3 scaling).

    /usr/bin/python3 make_tiny.py OUT_ROOT [--preset tiny-v3 ...] [--vocab N] [--dtype F32|BF16] [--fp8]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_np import E4M3_TABLE, f32_to_e4m3_codes, save_file  # noqa: E402

PRESETS = {
    "tiny-v3": {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "hidden_size": 128,
        "num_hidden_layers": 3,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "q_lora_rank": 64,
        "kv_lora_rank": 32,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 8,
        "v_head_dim": 16,
        "intermediate_size": 320,
        "moe_intermediate_size": 64,
        "n_routed_experts": 16,
        "n_shared_experts": 1,
        "num_experts_per_tok": 4,
        "n_group": 4,
        "topk_group": 2,
        "scoring_func": "sigmoid",
        "topk_method": "noaux_tc",
        "norm_topk_prob": True,
        "routed_scaling_factor": 2.5,
        "vocab_size": 129280,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "max_position_embeddings": 128,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    },
    "tiny-v2": {
        "architectures": ["DeepseekV2ForCausalLM"],
        "model_type": "deepseek_v2",
        "hidden_size": 96,
        "num_hidden_layers": 3,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "q_lora_rank": None,
        "kv_lora_rank": 32,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 8,
        "v_head_dim": 16,
        "intermediate_size": 192,
        "moe_intermediate_size": 48,
        "n_routed_experts": 8,
        "n_shared_experts": 2,
        "num_experts_per_tok": 3,
        "n_group": 1,
        "topk_group": 1,
        "scoring_func": "softmax",
        "topk_method": "greedy",
        "norm_topk_prob": False,
        "routed_scaling_factor": 1.0,
        "vocab_size": 1000,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "max_position_embeddings": 128,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
    },
    "tiny-qwen2": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 256,
        "vocab_size": 1000,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "max_position_embeddings": 128,
    },
    "tiny-llama": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 256,
        "vocab_size": 1000,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "max_position_embeddings": 256,
        # With head_dim 32 and L = 32 the three llama3 bands all occur (pair 0 unchanged,
        # pairs 1-2 blended, pairs 3+ divided by factor).
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
    },
}
PRESETS["tiny-v2-group"] = dict(PRESETS["tiny-v2"], topk_method="group_limited_greedy", n_group=4, topk_group=2,
                                num_experts_per_tok=2)

# Weights DeepSeek stores as FP8 (MODELS.md section 5): attention projections and every MLP.
_FP8_SUFFIXES = ("q_a_proj.weight", "q_b_proj.weight", "q_proj.weight", "kv_a_proj_with_mqa.weight",
                 "kv_b_proj.weight", "o_proj.weight", "gate_proj.weight", "up_proj.weight", "down_proj.weight")


def random_tensors(cfg, seed=0):
    """{HF name: float32 array} for a config, in a deterministic order."""
    rng = np.random.default_rng(seed)
    hidden = cfg["hidden_size"]
    t = {}

    def lin(name, out_dim, in_dim, bias=False):
        t[name + ".weight"] = (rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)).astype(np.float32)
        if bias:
            t[name + ".bias"] = (0.1 * rng.standard_normal(out_dim)).astype(np.float32)

    def norm(name, dim):
        t[name + ".weight"] = (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32)

    def mlp(prefix, inter):
        lin(prefix + "gate_proj", inter, hidden)
        lin(prefix + "up_proj", inter, hidden)
        lin(prefix + "down_proj", hidden, inter)

    t["model.embed_tokens.weight"] = rng.standard_normal((cfg["vocab_size"], hidden)).astype(np.float32)
    deepseek = cfg["model_type"].startswith("deepseek")
    heads = cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        norm(p + "input_layernorm", hidden)
        a = p + "self_attn."
        if deepseek:
            qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
            if cfg.get("q_lora_rank"):
                lin(a + "q_a_proj", cfg["q_lora_rank"], hidden)
                norm(a + "q_a_layernorm", cfg["q_lora_rank"])
                lin(a + "q_b_proj", heads * qk, cfg["q_lora_rank"])
            else:
                lin(a + "q_proj", heads * qk, hidden)
            lin(a + "kv_a_proj_with_mqa", cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"], hidden)
            norm(a + "kv_a_layernorm", cfg["kv_lora_rank"])
            lin(a + "kv_b_proj", heads * (cfg["qk_nope_head_dim"] + cfg["v_head_dim"]), cfg["kv_lora_rank"])
            lin(a + "o_proj", hidden, heads * cfg["v_head_dim"])
        else:
            head_dim = cfg.get("head_dim") or hidden // heads
            kv_heads = cfg["num_key_value_heads"]
            qwen = cfg["model_type"] == "qwen2"
            lin(a + "q_proj", heads * head_dim, hidden, bias=qwen)
            lin(a + "k_proj", kv_heads * head_dim, hidden, bias=qwen)
            lin(a + "v_proj", kv_heads * head_dim, hidden, bias=qwen)
            lin(a + "o_proj", hidden, heads * head_dim)
        norm(p + "post_attention_layernorm", hidden)
        m = p + "mlp."
        moe = deepseek and cfg.get("n_routed_experts") and i >= cfg.get("first_k_dense_replace", 0) \
            and i % cfg.get("moe_layer_freq", 1) == 0
        if moe:
            n_exp = cfg["n_routed_experts"]
            lin(m + "gate", n_exp, hidden)
            if cfg.get("topk_method") == "noaux_tc":
                t[m + "gate.e_score_correction_bias"] = (0.05 * rng.standard_normal(n_exp)).astype(np.float32)
            for e in range(n_exp):
                mlp(f"{m}experts.{e}.", cfg["moe_intermediate_size"])
            if cfg.get("n_shared_experts"):
                mlp(m + "shared_experts.", cfg["moe_intermediate_size"] * cfg["n_shared_experts"])
        else:
            mlp(m, cfg["intermediate_size"])
    norm("model.norm", hidden)
    if not cfg.get("tie_word_embeddings"):
        lin("lm_head", cfg["vocab_size"], hidden)
    return t


def quantize_fp8_blocks(w, block=128):
    """f32 [out, in] -> (E4M3 codes, float32 scale_inv [ceil(out/128), ceil(in/128)]) with
    scale_inv = amax/448 per block (partial edge blocks included), and the dequantised f32 weight."""
    rows, cols = w.shape
    br, bc = -(-rows // block), -(-cols // block)
    scale = np.ones((br, bc), dtype=np.float32)
    codes = np.empty(w.shape, dtype=np.uint8)
    for i in range(br):
        for j in range(bc):
            blk = w[i * block:(i + 1) * block, j * block:(j + 1) * block].astype(np.float64)
            amax = float(np.max(np.abs(blk)))
            s = np.float32(amax / 448.0) if amax > 0 else np.float32(1.0)
            scale[i, j] = s
            codes[i * block:(i + 1) * block, j * block:(j + 1) * block] = f32_to_e4m3_codes(blk / float(s))
    deq = E4M3_TABLE[codes] * np.repeat(np.repeat(scale.astype(np.float64), block, 0), block, 1)[:rows, :cols]
    return codes, scale, deq


def make(preset, out_dir, *, vocab=None, seed=0, dtype="F32", fp8=False, shards=1, overrides=None):
    """Write one tiny model folder; returns its config dict.

    dtype: storage of the float weights ("F32" or "BF16"). fp8=True: store the DeepSeek FP8 set as
    F8_E4M3 + weight_scale_inv; fp8="dequantised": the same quantised values written back as F32
    (the twin an FP8 model must match exactly). shards > 1 splits the tensors over files with an index."""
    cfg = json.loads(json.dumps(PRESETS[preset]))
    if vocab:
        cfg["vocab_size"] = vocab
    cfg.update(overrides or {})
    tensors = random_tensors(cfg, seed)
    dtypes = {}
    if fp8 is True:
        cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                      "weight_block_size": [128, 128]}
    if fp8:
        for name in list(tensors):
            if name.endswith(_FP8_SUFFIXES) and not name.startswith("lm_head"):
                codes, scale, deq = quantize_fp8_blocks(tensors[name])
                if fp8 == "dequantised":
                    # F64: an e4m3 value (4 significant bits) times an f32 scale (24) needs up to 28
                    # bits, so only float64 holds the product exactly.
                    tensors[name] = deq
                    dtypes[name] = "F64"
                else:
                    tensors[name] = codes
                    tensors[name + "_scale_inv"] = scale
                    dtypes[name] = "F8_E4M3"
    if dtype != "F32":
        for name, arr in tensors.items():
            if name not in dtypes and arr.dtype == np.float32 and not name.endswith("_scale_inv"):
                dtypes[name] = dtype
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = list(tensors)
    if shards <= 1:
        save_file(os.path.join(out_dir, "model.safetensors"), tensors, dtypes, metadata={"format": "pt"})
    else:
        weight_map = {}
        for k in range(shards):
            fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: tensors[n] for n in names[k::shards]}
            save_file(os.path.join(out_dir, fname), part, {n: dtypes[n] for n in part if n in dtypes})
            weight_map.update({n: fname for n in part})
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_root")
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS))
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--dtype", default="F32", choices=("F32", "BF16"))
    ap.add_argument("--fp8", action="store_true")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for preset in args.preset or sorted(PRESETS):
        out = os.path.join(args.out_root, preset)
        make(preset, out, vocab=args.vocab, seed=args.seed, dtype=args.dtype, fp8=args.fp8, shards=args.shards)
        print(out)


if __name__ == "__main__":
    main()
