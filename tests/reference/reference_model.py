#!/usr/bin/python3
"""Independent float64 numpy reference of every architecture seekserve serves.

Written from the math in shared/reference/MODELS.md (sections 2-4); it is the oracle the C++ engine
is tested against. Architectures (HF `model_type`): deepseek_v3, deepseek_v2, qwen2, llama.

    model = load("path/to/hf_folder")
    logits = model.logits([1, 2, 3])          # [n_tokens, vocab] float64, full causal attention

CLI (the engine's tests call this; numpy lives in /usr/bin/python3):
    /usr/bin/python3 reference_model.py MODEL_DIR --tokens 1,2,3 --out ref.npy
    /usr/bin/python3 reference_model.py MODEL_DIR --tokens 1,2,3 --compare engine.npy [--tol 1e-3]

Conventions the engine must share:
  * top-k ties (expert and group selection) go to the lowest index first, as a stable sort on the
    negated scores does.
  * every sum is float64; routing scores are computed in float64 too (the engine computes them in
    f32, which can only matter on near-ties).
"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_np import Checkpoint  # noqa: E402

# --------------------------------------------------------------------------------------------------
# Elementwise helpers


def rms_norm(x, weight, eps):
    """x / sqrt(mean(x^2) + eps) * w over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def sigmoid(z):
    # tanh form: no overflow warning for large |z|.
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def silu(z):
    return z * sigmoid(z)


def softmax(z, axis=-1):
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def topk_lowest_index_on_ties(values, k):
    """Indices of the k largest values, best first; equal values are taken lowest index first."""
    return np.argsort(-np.asarray(values), kind="stable")[:k]


# --------------------------------------------------------------------------------------------------
# RoPE (MODELS.md section 3)


def rope_config(raw):
    """(rope_theta, scaling dict or None) from HF config fields: rope_theta + rope_scaling, or the
    newer rope_parameters that holds rope_theta and the scaling fields together."""
    theta = raw.get("rope_theta")
    scaling = raw.get("rope_scaling")
    params = raw.get("rope_parameters")
    if isinstance(params, dict):
        if theta is None:
            theta = params.get("rope_theta")
        kind = params.get("rope_type", params.get("type", "default"))
        if scaling is None and kind not in (None, "default"):
            scaling = params
    if theta is None:
        theta = 10000.0
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind in (None, "default"):
            scaling = None
    return float(theta), scaling


def get_mscale(scale, mscale=1.0):
    """YaRN magnitude correction: 0.1 * mscale * ln(scale) + 1 (1 when scale <= 1)."""
    if scale <= 1.0:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def yarn_correction_range(dim, base, original_max_pos, beta_fast, beta_slow):
    """low/high dimension-pair indices of the YaRN ramp.

    corr(r) = d * ln(L / (2 pi r)) / (2 ln base) is the pair index whose wavelength fits r times in
    the original context L. Pairs below low (fast-rotating, >= beta_fast turns) keep their frequency;
    pairs above high (< beta_slow turns) are interpolated by 1/factor."""

    def corr(rotations):
        return dim * math.log(original_max_pos / (2.0 * math.pi * rotations)) / (2.0 * math.log(base))

    low = max(math.floor(corr(beta_fast)), 0)
    high = min(math.ceil(corr(beta_slow)), dim - 1)
    return low, high


def yarn_inv_freq(dim, base, factor, original_max_pos, beta_fast=32.0, beta_slow=1.0):
    """inv_freq_i = base^(-2i/d) * ((1 - ramp_i) + ramp_i / factor), i < d/2."""
    low, high = yarn_correction_range(dim, base, original_max_pos, beta_fast, beta_slow)
    high_f = high + 0.001 if low == high else float(high)
    i = np.arange(dim // 2, dtype=np.float64)
    ramp = np.clip((i - low) / (high_f - low), 0.0, 1.0)
    plain = base ** (-2.0 * i / dim)
    return plain * ((1.0 - ramp) + ramp / factor)


def llama3_inv_freq(dim, base, factor, low_freq_factor, high_freq_factor, original_max_pos):
    """Llama 3.1 bands: wavelength above L/low_freq_factor -> inv/factor; below L/high_freq_factor
    -> unchanged; in between, smooth = (L/wavelen - lff)/(hff - lff) blends the two."""
    i = np.arange(dim // 2, dtype=np.float64)
    inv = base ** (-2.0 * i / dim)
    wavelen = 2.0 * math.pi / inv
    low_freq_wavelen = original_max_pos / low_freq_factor
    high_freq_wavelen = original_max_pos / high_freq_factor
    smooth = (original_max_pos / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1.0 - smooth) * inv / factor + smooth * inv
    out = np.where(wavelen > low_freq_wavelen, inv / factor, inv)
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return np.where(medium, blended, out)


def rope_parameters(dim, theta, scaling):
    """(inv_freq [dim/2] float64, attention_factor multiplying cos and sin)."""
    if scaling is None:
        i = np.arange(dim // 2, dtype=np.float64)
        return theta ** (-2.0 * i / dim), 1.0
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = float(scaling.get("factor", 1.0))
    if kind == "linear":
        inv, _ = rope_parameters(dim, theta, None)
        return inv / factor, 1.0
    if kind == "yarn":
        original = float(scaling["original_max_position_embeddings"])
        inv = yarn_inv_freq(dim, theta, factor, original,
                            float(scaling.get("beta_fast") or 32.0), float(scaling.get("beta_slow") or 1.0))
        attention_factor = scaling.get("attention_factor")
        if attention_factor is None:
            mscale = scaling.get("mscale")
            mscale_all_dim = scaling.get("mscale_all_dim")
            if mscale and mscale_all_dim:
                attention_factor = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
            else:
                attention_factor = get_mscale(factor)
        return inv, float(attention_factor)
    if kind == "llama3":
        inv = llama3_inv_freq(dim, theta, factor, float(scaling["low_freq_factor"]),
                              float(scaling["high_freq_factor"]),
                              float(scaling["original_max_position_embeddings"]))
        return inv, 1.0
    raise ValueError(f"unsupported rope scaling type {kind!r}")


def rope_cos_sin(positions, inv_freq, attention_factor):
    """cos, sin [n, d/2] of angle position * inv_freq_i, both scaled by attention_factor."""
    angle = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angle) * attention_factor, np.sin(angle) * attention_factor


def apply_rope(x, cos, sin, style):
    """Rotate x [n, ..., d] (token axis first) by cos/sin [n, d/2].

    style "adjacent":    pairs (2i, 2i+1) rotate by angle i   (HF DeepSeek, rope_interleave true)
    style "rotate_half": pairs (i, i + d/2) rotate by angle i (HF Qwen2/Llama)

    Why HF's DeepSeek code (de-interleave, then rotate-half) equals "adjacent": it permutes the d
    values of q_pe and of k_pe by the same permutation P (evens first, then odds), so pair (2i, 2i+1)
    lands on (i, i + d/2) and is rotated by angle i exactly as here. The outputs are P(adjacent(x)),
    and q.k is invariant under applying one permutation to both vectors, so the attention scores,
    and everything after them, are identical. (Only q_pe and k_pe are permuted; they never meet
    anything but each other.)
    """
    d = x.shape[-1]
    shape = (cos.shape[0],) + (1,) * (x.ndim - 2) + (d // 2,)
    c = cos.reshape(shape)
    s = sin.reshape(shape)
    out = np.empty_like(x)
    if style == "adjacent":
        a, b = x[..., 0::2], x[..., 1::2]
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = b * c + a * s
    elif style == "rotate_half":
        a, b = x[..., : d // 2], x[..., d // 2:]
        out[..., : d // 2] = a * c - b * s
        out[..., d // 2:] = b * c + a * s
    else:
        raise ValueError(f"unknown rope style {style!r}")
    return out


# --------------------------------------------------------------------------------------------------
# MoE routing (MODELS.md section 4)


def route(router_logits, *, top_k, scoring_func="sigmoid", topk_method="noaux_tc", n_group=1,
          topk_group=1, norm_topk_prob=True, routed_scaling_factor=1.0, bias=None):
    """Experts and weights for each token. router_logits [n, E] -> (idx [n, k] int, w [n, k]).

    noaux_tc (V3): s = sigmoid(logits); selection scores s' = s + e_score_correction_bias; group
      score = sum of the two largest s' in the group; the topk_group best groups stay; the other
      groups' s' become 0.0; the top_k experts by s' are chosen; their weights come from the
      UNBIASED s, divided by (sum + 1e-20) when norm_topk_prob, then times routed_scaling_factor.
      Masking to 0.0 follows HF transformers; DeepSeek's own inference code masks with -inf. They
      differ only when a kept expert has s' < 0 (a negative bias larger than s): with 0.0 a masked
      expert can then beat it, with -inf it cannot. We follow HF, as the engine must.
    greedy (V2): s = softmax(logits); top_k over all experts.
    group_limited_greedy (V2): group score = max s in the group; keep topk_group groups; others 0.0.
    V2 weights: s_sel, renormalised only if norm_topk_prob and top_k > 1; times routed_scaling_factor.
    (Sources disagree when a V2 config renormalises: DeepSeek's V2 remote code then skips the scaling
    factor, and an HF transformers port of V2 never renormalises at all. No published V2 config sets
    norm_topk_prob, so they agree on every real checkpoint; we follow MODELS.md.)
    Ties: lowest expert / group index first.
    """
    router_logits = np.asarray(router_logits, dtype=np.float64)
    n, n_experts = router_logits.shape
    if scoring_func == "sigmoid":
        scores = sigmoid(router_logits)
    elif scoring_func == "softmax":
        scores = softmax(router_logits, axis=-1)
    else:
        raise ValueError(f"unsupported scoring_func {scoring_func!r}")
    choice = scores + (np.asarray(bias, np.float64) if bias is not None else 0.0)
    idx = np.empty((n, top_k), dtype=np.int64)
    for t in range(n):
        sel = choice[t].copy()
        if topk_method in ("noaux_tc", "group_limited_greedy") and n_group > 1:
            per_group = sel.reshape(n_group, n_experts // n_group)
            if topk_method == "noaux_tc":
                group_score = np.sort(per_group, axis=1)[:, ::-1][:, :2].sum(axis=1)
            else:
                group_score = per_group.max(axis=1)
            keep = np.zeros(n_group, dtype=bool)
            keep[topk_lowest_index_on_ties(group_score, topk_group)] = True
            sel = np.where(np.repeat(keep, n_experts // n_group), sel, 0.0)
        elif topk_method not in ("noaux_tc", "greedy", "group_limited_greedy"):
            raise ValueError(f"unsupported topk_method {topk_method!r}")
        idx[t] = topk_lowest_index_on_ties(sel, top_k)
    weights = np.take_along_axis(scores, idx, axis=1)
    renormalise = norm_topk_prob and (top_k > 1 or topk_method == "noaux_tc")
    if renormalise:
        weights = weights / (weights.sum(axis=1, keepdims=True) + 1e-20)
    return idx, weights * routed_scaling_factor


# --------------------------------------------------------------------------------------------------
# The model


def mla_softmax_scale(qk_head_dim, scaling):
    """(nope + rope)^-0.5, times m^2 with m = 0.1 * mscale_all_dim * ln(factor) + 1 when the yarn
    config has mscale_all_dim (V3: 0.13523)."""
    scale = qk_head_dim ** -0.5
    if scaling is not None and scaling.get("mscale_all_dim"):
        m = get_mscale(float(scaling["factor"]), float(scaling["mscale_all_dim"]))
        scale *= m * m
    return scale


# HF's and DeepSeek's code build q_a_layernorm and kv_a_layernorm with the RMSNorm default eps 1e-6,
# not config.rms_norm_eps (the same value in every published DeepSeek config, but not necessarily in a
# hand-made one).
LATENT_NORM_EPS = 1e-6


class Model:
    """float64 weights of one HF checkpoint and a full-prompt forward pass."""

    def __init__(self, raw_config, checkpoint):
        self.raw = raw_config
        cfg = raw_config
        self.model_type = cfg.get("model_type")
        if self.model_type not in ("deepseek_v3", "deepseek_v2", "qwen2", "llama"):
            raise ValueError(f"unsupported model_type {self.model_type!r}")
        self.deepseek = self.model_type.startswith("deepseek")
        self.hidden = int(cfg["hidden_size"])
        self.n_layers = int(cfg["num_hidden_layers"])
        self.n_heads = int(cfg["num_attention_heads"])
        self.n_kv_heads = int(cfg.get("num_key_value_heads") or self.n_heads)
        self.vocab = int(cfg["vocab_size"])
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.theta, self.scaling = rope_config(cfg)
        if self.scaling is not None and self.scaling.get("rope_type", self.scaling.get("type")) == "yarn":
            # Some transformers releases derive the yarn factor as max_position_embeddings /
            # original_max_position_embeddings; we use rope_scaling.factor (MODELS.md). Say so
            # when a config makes them disagree.
            mpe = cfg.get("max_position_embeddings")
            omp = self.scaling.get("original_max_position_embeddings")
            if mpe and omp and abs(mpe / omp - float(self.scaling["factor"])) > 1e-9:
                print(f"reference_model: note: max_position_embeddings/original = {mpe / omp} "
                      f"!= rope_scaling.factor {self.scaling['factor']}; using factor", file=sys.stderr)

        if self.deepseek:
            self.q_lora_rank = cfg.get("q_lora_rank")
            self.kv_lora_rank = int(cfg["kv_lora_rank"])
            self.nope = int(cfg["qk_nope_head_dim"])
            self.rope_dim = int(cfg["qk_rope_head_dim"])
            self.v_dim = int(cfg["v_head_dim"])
            self.softmax_scale = mla_softmax_scale(self.nope + self.rope_dim, self.scaling)
            # HF DeepSeek-V3: rope_interleave (default true) = adjacent pairs; false = rotate-half.
            self.rope_style = "adjacent" if cfg.get("rope_interleave", True) else "rotate_half"
            self.inv_freq, self.attention_factor = rope_parameters(self.rope_dim, self.theta, self.scaling)
            self.n_routed = cfg.get("n_routed_experts")
            self.first_dense = int(cfg.get("first_k_dense_replace", 0))
            self.moe_freq = int(cfg.get("moe_layer_freq", 1))
            self.top_k = int(cfg.get("num_experts_per_tok") or 0)
            default_method = "noaux_tc" if self.model_type == "deepseek_v3" else "greedy"
            self.route_args = dict(
                top_k=self.top_k,
                scoring_func=cfg.get("scoring_func", "sigmoid" if self.model_type == "deepseek_v3" else "softmax"),
                topk_method=cfg.get("topk_method", default_method),
                n_group=int(cfg.get("n_group") or 1),
                topk_group=int(cfg.get("topk_group") or 1),
                norm_topk_prob=bool(cfg.get("norm_topk_prob", False)),
                routed_scaling_factor=float(cfg.get("routed_scaling_factor", 1.0)),
            )
        else:
            self.head_dim = int(cfg.get("head_dim") or self.hidden // self.n_heads)
            self.rope_style = "rotate_half"
            self.inv_freq, self.attention_factor = rope_parameters(self.head_dim, self.theta, self.scaling)
            self.softmax_scale = self.head_dim ** -0.5

        ck = checkpoint
        self.w = {}

        def take(name, required=True):
            if name in ck:
                self.w[name] = ck.get(name)
            elif required:
                raise KeyError(f"checkpoint lacks {name}")

        # The embedding is only gathered by rows: keep its decoded storage type (exact: f32 holds
        # F32/BF16/F16 values) and widen the gathered rows, instead of a 129280-row float64 copy.
        self.embed = ck.get("model.embed_tokens.weight", dtype=None)
        take("model.norm.weight")
        tied = cfg.get("tie_word_embeddings", False)
        if not tied:
            take("lm_head.weight", required=False)
        self.lm_head = self.w.get("lm_head.weight")
        if self.lm_head is None:
            self.lm_head = np.asarray(self.embed, dtype=np.float64)
        for i in range(self.n_layers):
            p = f"model.layers.{i}."
            take(p + "input_layernorm.weight")
            take(p + "post_attention_layernorm.weight")
            a = p + "self_attn."
            if self.deepseek:
                for proj in ("q_a_proj", "q_proj", "kv_a_proj_with_mqa", "o_proj"):
                    take(a + proj + ".bias", required=False)  # config.attention_bias (false in V2/V3)
                if self.q_lora_rank:
                    take(a + "q_a_proj.weight")
                    take(a + "q_a_layernorm.weight")
                    take(a + "q_b_proj.weight")
                else:
                    take(a + "q_proj.weight")
                take(a + "kv_a_proj_with_mqa.weight")
                take(a + "kv_a_layernorm.weight")
                take(a + "kv_b_proj.weight")
                take(a + "o_proj.weight")
            else:
                for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
                    take(a + proj + ".weight")
                    take(a + proj + ".bias", required=(self.model_type == "qwen2" and proj != "o_proj"))
            m = p + "mlp."
            if self.is_moe(i):
                take(m + "gate.weight")
                take(m + "gate.e_score_correction_bias", required=self.route_args["topk_method"] == "noaux_tc")
                for e in range(int(self.n_routed)):
                    for proj in ("gate_proj", "up_proj", "down_proj"):
                        take(f"{m}experts.{e}.{proj}.weight")
                if cfg.get("n_shared_experts"):
                    for proj in ("gate_proj", "up_proj", "down_proj"):
                        take(f"{m}shared_experts.{proj}.weight")
            else:
                for proj in ("gate_proj", "up_proj", "down_proj"):
                    take(m + proj + ".weight")

    def is_moe(self, layer):
        return (self.deepseek and self.n_routed is not None and layer >= self.first_dense
                and layer % self.moe_freq == 0)

    # --- blocks -----------------------------------------------------------------------------------

    def _linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        return y if b is None else y + b

    def _mlp(self, x, prefix):
        return self._linear(silu(self._linear(x, prefix + "gate_proj")) * self._linear(x, prefix + "up_proj"),
                            prefix + "down_proj")

    def _moe(self, x, prefix):
        router_logits = x @ self.w[prefix + "gate.weight"].T
        idx, weights = route(router_logits, bias=self.w.get(prefix + "gate.e_score_correction_bias"),
                             **self.route_args)
        out = np.zeros_like(x)
        for e in np.unique(idx):
            rows, slot = np.nonzero(idx == e)
            out[rows] += weights[rows, slot][:, None] * self._mlp(x[rows], f"{prefix}experts.{e}.")
        if self.raw.get("n_shared_experts"):
            out += self._mlp(x, prefix + "shared_experts.")
        return out

    def _mla_projections(self, x, prefix, cos, sin):
        """Per-token MLA pieces: q_nope [n,H,nope], q_pe (rotated) [n,H,rope], c (normalised
        latent) [n,r], k_pe (rotated, shared by all heads) [n,rope]."""
        n = x.shape[0]
        if self.q_lora_rank:
            q = self._linear(rms_norm(self._linear(x, prefix + "q_a_proj"),
                                      self.w[prefix + "q_a_layernorm.weight"], LATENT_NORM_EPS), prefix + "q_b_proj")
        else:
            q = self._linear(x, prefix + "q_proj")
        q = q.reshape(n, self.n_heads, self.nope + self.rope_dim)
        q_nope, q_pe = q[:, :, : self.nope], q[:, :, self.nope:]
        kv = self._linear(x, prefix + "kv_a_proj_with_mqa")
        c = rms_norm(kv[:, : self.kv_lora_rank], self.w[prefix + "kv_a_layernorm.weight"], LATENT_NORM_EPS)
        k_pe = kv[:, self.kv_lora_rank:]
        q_pe = apply_rope(q_pe, cos, sin, self.rope_style)
        k_pe = apply_rope(k_pe, cos, sin, self.rope_style)
        return q_nope, q_pe, c, k_pe

    def _mla_naive(self, x, prefix, cos, sin):
        """Materialise k and v for every head, then ordinary causal attention."""
        n = x.shape[0]
        q_nope, q_pe, c, k_pe = self._mla_projections(x, prefix, cos, sin)
        kv = (c @ self.w[prefix + "kv_b_proj.weight"].T).reshape(n, self.n_heads, self.nope + self.v_dim)
        k_nope, v = kv[:, :, : self.nope], kv[:, :, self.nope:]
        scores = (np.einsum("thd,shd->hts", q_nope, k_nope) + np.einsum("thd,sd->hts", q_pe, k_pe))
        scores = scores * self.softmax_scale
        causal = np.triu(np.ones((n, n), dtype=bool), k=1)
        scores = np.where(causal[None], -np.inf, scores)
        p = softmax(scores, axis=-1)
        out = np.einsum("hts,shd->thd", p, v).reshape(n, self.n_heads * self.v_dim)
        return self._linear(out, prefix + "o_proj")

    def _mla_absorbed(self, x, prefix, cos, sin):
        """Decode form, one token at a time against a cache holding only c_t and k_pe_t
        (kv_lora_rank + rope values per token, all heads together):
            q_abs_h = W_UK_h^T q_nope_h;  score(h,s) = scale (q_abs_h . c_s + q_pe_h . k_pe_s)
            o_h = sum_s p c_s;            out_h = W_UV_h o_h."""
        n = x.shape[0]
        q_nope, q_pe, c, k_pe = self._mla_projections(x, prefix, cos, sin)
        w_kvb = self.w[prefix + "kv_b_proj.weight"].reshape(self.n_heads, self.nope + self.v_dim, self.kv_lora_rank)
        w_uk = w_kvb[:, : self.nope, :]  # [H, nope, r]
        w_uv = w_kvb[:, self.nope:, :]   # [H, v, r]
        cache_c = np.empty((0, self.kv_lora_rank))
        cache_pe = np.empty((0, self.rope_dim))
        out = np.empty((n, self.n_heads, self.v_dim))
        for t in range(n):
            cache_c = np.concatenate([cache_c, c[t: t + 1]])
            cache_pe = np.concatenate([cache_pe, k_pe[t: t + 1]])
            q_abs = np.einsum("hd,hdr->hr", q_nope[t], w_uk)
            scores = (q_abs @ cache_c.T + q_pe[t] @ cache_pe.T) * self.softmax_scale  # [H, t+1]
            p = softmax(scores, axis=-1)
            latent = p @ cache_c  # [H, r]
            out[t] = np.einsum("hvr,hr->hv", w_uv, latent)
        return self._linear(out.reshape(n, self.n_heads * self.v_dim), prefix + "o_proj")

    def _gqa(self, x, prefix, cos, sin):
        """Grouped-query attention (Qwen2, Llama): head h reads kv head h // (H / KV)."""
        n = x.shape[0]
        q = self._linear(x, prefix + "q_proj").reshape(n, self.n_heads, self.head_dim)
        k = self._linear(x, prefix + "k_proj").reshape(n, self.n_kv_heads, self.head_dim)
        v = self._linear(x, prefix + "v_proj").reshape(n, self.n_kv_heads, self.head_dim)
        q = apply_rope(q, cos, sin, self.rope_style)
        k = apply_rope(k, cos, sin, self.rope_style)
        group = self.n_heads // self.n_kv_heads
        k = np.repeat(k, group, axis=1)
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) * self.softmax_scale
        causal = np.triu(np.ones((n, n), dtype=bool), k=1)
        p = softmax(np.where(causal[None], -np.inf, scores), axis=-1)
        out = np.einsum("hts,shd->thd", p, v).reshape(n, self.n_heads * self.head_dim)
        return self._linear(out, prefix + "o_proj")

    # --- forward ----------------------------------------------------------------------------------

    def hidden_states(self, tokens, mla="naive"):
        """Final normed hidden states [n, hidden] for one sequence starting at position 0."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or tokens.size == 0:
            raise ValueError("tokens must be a non-empty 1-D sequence")
        if tokens.min() < 0 or tokens.max() >= self.vocab:
            raise ValueError(f"token id outside [0, {self.vocab})")
        cos, sin = rope_cos_sin(np.arange(tokens.size), self.inv_freq, self.attention_factor)
        h = np.asarray(self.embed[tokens], dtype=np.float64)
        for i in range(self.n_layers):
            p = f"model.layers.{i}."
            x = rms_norm(h, self.w[p + "input_layernorm.weight"], self.eps)
            if self.deepseek:
                attn = self._mla_absorbed if mla == "absorbed" else self._mla_naive
                h = h + attn(x, p + "self_attn.", cos, sin)
            else:
                h = h + self._gqa(x, p + "self_attn.", cos, sin)
            x = rms_norm(h, self.w[p + "post_attention_layernorm.weight"], self.eps)
            h = h + (self._moe(x, p + "mlp.") if self.is_moe(i) else self._mlp(x, p + "mlp."))
        return rms_norm(h, self.w["model.norm.weight"], self.eps)

    def logits(self, tokens, mla="naive"):
        """[n_tokens, vocab] float64 logits of every prompt position."""
        return self.hidden_states(tokens, mla=mla) @ self.lm_head.T


def load(folder):
    with open(os.path.join(folder, "config.json")) as f:
        raw = json.load(f)
    return Model(raw, Checkpoint(folder))


def compare(reference, engine):
    """max|engine - reference| / max|reference|."""
    if reference.shape != engine.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape} vs engine {engine.shape}")
    return float(np.max(np.abs(engine.astype(np.float64) - reference)) / np.max(np.abs(reference)))


def main(argv=None):
    ap = argparse.ArgumentParser(description="float64 numpy reference logits for an HF model folder")
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    ap.add_argument("--out", help="write float32 logits [n_tokens, vocab] to this .npy")
    ap.add_argument("--compare", help="engine logits .npy to compare against the reference")
    ap.add_argument("--tol", type=float, default=1e-3, help="max allowed max|diff|/max|logit| (default 1e-3)")
    ap.add_argument("--mla", choices=("naive", "absorbed"), default="naive")
    args = ap.parse_args(argv)
    try:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    except ValueError:
        ap.error("--tokens must be comma-separated integers")
        return 2
    model = load(args.model_dir)
    ref = model.logits(tokens, mla=args.mla)
    if args.out:
        np.save(args.out, ref.astype(np.float32))
    if args.compare:
        engine = np.load(args.compare)
        rel = compare(ref, engine)
        ok = rel <= args.tol
        print(f"max|diff|/max|logit| = {rel:.3e} (tol {args.tol:.1e}) {'OK' if ok else 'FAIL'}")
        top_ref = ref.argmax(axis=1)
        top_eng = engine.argmax(axis=1)
        print(f"top-1 agreement {np.mean(top_ref == top_eng) * 100:.1f}% over {len(tokens)} positions")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
