#!/usr/bin/python3
"""Tests of the float64 numpy reference (run by reference_test.sh under ctest).

The expected numbers in the RoPE, YaRN, llama3 and routing tests were worked out by hand from the
formulas in shared/reference/MODELS.md, not produced by the code under test.
"""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_tiny  # noqa: E402
import reference_model as R  # noqa: E402
import safetensors_np as S  # noqa: E402

TMP = None
SMALL_VOCAB = 1000


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="seekserve-reference-")
    for preset in ("tiny-v3", "tiny-v2", "tiny-v2-group", "tiny-qwen2", "tiny-llama"):
        make_tiny.make(preset, os.path.join(TMP, preset), vocab=SMALL_VOCAB)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def path(name):
    return os.path.join(TMP, name)


def prompt(n=64, vocab=SMALL_VOCAB, seed=7):
    """64 tokens: crosses the tiny presets' YaRN / llama3 original context of 32."""
    return np.random.default_rng(seed).integers(0, vocab, n)


def rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


# --------------------------------------------------------------------------------------------------


class SafetensorsTest(unittest.TestCase):
    def test_round_trip_dtypes(self):
        rng = np.random.default_rng(0)
        f32 = rng.standard_normal((3, 5)).astype(np.float32)
        tensors = {"a": f32, "b": f32.astype(np.float16), "c": f32, "d": np.arange(6, dtype=np.int32).reshape(2, 3),
                   "e": np.array([-(2**40), 7], dtype=np.int64)}
        p = path("roundtrip.safetensors")
        S.save_file(p, tensors, {"c": "BF16"})
        st = S.SafetensorsFile(p)
        np.testing.assert_array_equal(st.get("a"), f32)
        np.testing.assert_array_equal(st.get("b"), f32.astype(np.float16))
        np.testing.assert_array_equal(st.get("d"), tensors["d"])
        np.testing.assert_array_equal(st.get("e"), tensors["e"])
        bf = st.get("c")
        self.assertEqual(bf.dtype, np.float32)
        # BF16 keeps 8 significant bits: within 2^-9 relative, and exactly representable values survive.
        np.testing.assert_allclose(bf, f32, rtol=2.0**-8)
        S.save_file(p, {"x": np.array([1.0, -2.5, 0.15625, 3.0e38], np.float32)}, {"x": "BF16"})
        self.assertEqual(S.SafetensorsFile(p).get("x")[:3].tolist(), [1.0, -2.5, 0.15625])
        raw, dtype = S.SafetensorsFile(p).raw("x")
        self.assertEqual(dtype, "BF16")
        self.assertEqual(raw[0], 0x3F80)  # 1.0f = 0x3F800000

    def test_e4m3_table(self):
        t = S.E4M3_TABLE
        self.assertEqual(t[0x00], 0.0)
        self.assertTrue(np.signbit(t[0x80]))
        self.assertEqual(t[0x38], 1.0)            # e=7, m=0
        self.assertEqual(t[0x7E], 448.0)          # e=15, m=6: 2^8 * 1.75
        self.assertEqual(t[0xFE], -448.0)
        self.assertEqual(t[0x08], 2.0**-6)        # smallest normal
        self.assertEqual(t[0x07], 2.0**-6 * 7 / 8)  # largest subnormal
        self.assertEqual(t[0x01], 2.0**-9)        # smallest subnormal
        self.assertEqual(t[0x3C], 1.5)
        self.assertEqual(t[0xC4], -3.0)           # 1.1000.100: -(2^1 * 1.5)
        self.assertTrue(np.isnan(t[0x7F]) and np.isnan(t[0xFF]))
        self.assertEqual(int(np.isnan(t).sum()), 2)
        self.assertEqual(len(set(t[:0x7F].tolist())), 0x7F)  # no infinities, all distinct

    def test_e4m3_quantiser(self):
        codes = S.f32_to_e4m3_codes(np.array([1000.0, 464.0, -500.0, 1.0625, 1.1875, 2.0**-10, 0.3]))
        # clamp to 448; 1.0625 is halfway 1.0 (code 0x38, even) / 1.125 (0x39): ties to even -> 1.0;
        # 1.1875 is halfway 1.125 (0x39) / 1.25 (0x3A) -> 1.25; 2^-10 halfway 0 / 2^-9 -> 0.
        self.assertEqual(S.E4M3_TABLE[codes].tolist()[:6], [448.0, 448.0, -448.0, 1.0, 1.25, 0.0])
        self.assertEqual(S.E4M3_TABLE[codes[6]], 0.3125)  # nearest to 0.3 (0.28125 / 0.3125)

    def test_block_scales_with_partial_edges(self):
        rng = np.random.default_rng(1)
        w = rng.standard_normal((200, 300))
        codes, scale, deq = make_tiny.quantize_fp8_blocks(w)
        self.assertEqual(scale.shape, (2, 3))
        p = path("fp8.safetensors")
        S.save_file(p, {"m.weight": codes, "m.weight_scale_inv": scale}, {"m.weight": "F8_E4M3"})
        os.makedirs(path("fp8dir"), exist_ok=True)
        shutil.copy(p, os.path.join(path("fp8dir"), "model.safetensors"))
        ck = S.Checkpoint(path("fp8dir"))
        self.assertEqual(ck.names(), ["m.weight"])
        got = ck.get("m.weight")
        np.testing.assert_array_equal(got, deq)
        # spot-check by hand: element (150, 290) sits in block (1, 2), a partial block on both axes
        self.assertEqual(got[150, 290], S.E4M3_TABLE[codes[150, 290]] * float(scale[1, 2]))
        # and the quantiser is reasonable: within half an e4m3 step (2^-4 relative) of the input
        self.assertLess(np.max(np.abs(deq - w) / np.maximum(np.abs(w), 1e-3)), 0.07)

    def _write_raw(self, header, data):
        p = path("bad.safetensors")
        text = json.dumps(header).encode()
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + data)
        return p

    def test_reader_rejects_bad_files(self):
        good = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
        S.SafetensorsFile(self._write_raw(good, bytes(12)))
        bad_cases = {
            "size": {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
            "overlap": {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            "gap": {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}},
            "past end": {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
            "dtype": {"a": {"dtype": "F12", "shape": [1], "data_offsets": [0, 4]}},
        }
        for why, header in bad_cases.items():
            with self.subTest(why), self.assertRaises(ValueError):
                S.SafetensorsFile(self._write_raw(header, bytes(12)))
        p = path("huge.safetensors")
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", 200 * 1000 * 1000) + b"{}")
        with self.assertRaises(ValueError):
            S.SafetensorsFile(p)

    def test_sharded_equals_single(self):
        make_tiny.make("tiny-qwen2", path("qwen2-sharded"), vocab=SMALL_VOCAB, shards=3)
        self.assertTrue(os.path.exists(os.path.join(path("qwen2-sharded"), "model.safetensors.index.json")))
        toks = prompt(16)
        a = R.load(path("tiny-qwen2")).logits(toks)
        b = R.load(path("qwen2-sharded")).logits(toks)
        np.testing.assert_array_equal(a, b)

    def test_bf16_checkpoint(self):
        make_tiny.make("tiny-llama", path("llama-bf16"), vocab=SMALL_VOCAB, dtype="BF16")
        ck = S.Checkpoint(path("llama-bf16"))
        self.assertEqual(ck.dtype("model.layers.0.self_attn.q_proj.weight"), "BF16")
        with open(os.path.join(path("llama-bf16"), "config.json")) as f:
            w32 = make_tiny.random_tensors(json.load(f))
        name = "model.layers.1.mlp.down_proj.weight"
        expect = S.bf16_to_f32(S.f32_to_bf16_bits(w32[name]))
        np.testing.assert_array_equal(ck.get(name), expect)
        logits = R.load(path("llama-bf16")).logits(prompt(8))
        self.assertTrue(np.all(np.isfinite(logits)))

    def test_fp8_model_equals_its_dequantised_twin(self):
        make_tiny.make("tiny-v3", path("v3-fp8"), vocab=SMALL_VOCAB, fp8=True)
        make_tiny.make("tiny-v3", path("v3-deq"), vocab=SMALL_VOCAB, fp8="dequantised")
        ck = S.Checkpoint(path("v3-fp8"))
        self.assertEqual(ck.dtype("model.layers.0.mlp.gate_proj.weight"), "F8_E4M3")
        _, dtype = ck.where["model.layers.0.mlp.gate_proj.weight_scale_inv"].raw(
            "model.layers.0.mlp.gate_proj.weight_scale_inv")
        self.assertEqual(dtype, "F32")
        self.assertEqual(ck.where["model.layers.0.mlp.gate_proj.weight_scale_inv"].entries[
            "model.layers.0.mlp.gate_proj.weight_scale_inv"][1], (3, 1))  # 320 rows: partial block
        self.assertEqual(ck.dtype("model.layers.1.mlp.gate.weight"), "F32")  # router gate stays
        toks = prompt(64)
        a = R.load(path("v3-fp8")).logits(toks)
        b = R.load(path("v3-deq")).logits(toks)
        self.assertLess(rel_diff(a, b), 1e-13)


# --------------------------------------------------------------------------------------------------


class RopeTest(unittest.TestCase):
    def test_yarn_v3_published_config(self):
        # d = 64, base 1e4, L = 4096, beta 32/1, factor 40. By hand:
        # corr(32) = 64 ln(4096 / (2 pi 32)) / (2 ln 1e4) = 64 * 3.014153 / 18.420681 = 10.4722 -> low 10
        # corr(1)  = 64 ln(4096 / (2 pi))     / 18.420681 = 64 * 6.479854 / 18.420681 = 22.5134 -> high 23
        self.assertEqual(R.yarn_correction_range(64, 10000.0, 4096, 32, 1), (10, 23))
        inv = R.yarn_inv_freq(64, 10000.0, 40.0, 4096, 32, 1)
        self.assertEqual(inv.shape, (32,))
        expect = {
            0: 1.0,                        # ramp 0: plain
            10: 10 ** -1.25,               # = 0.0562341325, last unramped pair
            12: 10 ** -1.5 * 0.85,         # ramp 2/13: 11/13 + (2/13)/40 = 0.85 -> 0.0268793601
            16: 0.0055,                    # 10^-2 * (7/13 + (6/13)/40) = 0.01 * 0.55
            23: 10 ** -2.875 / 40,         # ramp 1: 3.33380e-5
            31: 10 ** -3.875 / 40,         # 3.33380e-6
        }
        for i, v in expect.items():
            self.assertAlmostEqual(inv[i] / v, 1.0, places=12, msg=f"inv_freq[{i}]")
        self.assertAlmostEqual(inv[31], 3.33380e-6, delta=1e-11)
        _, attention_factor = R.rope_parameters(64, 10000.0, {"type": "yarn", "factor": 40,
                                                              "original_max_position_embeddings": 4096,
                                                              "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                                                              "mscale_all_dim": 1.0})
        self.assertEqual(attention_factor, 1.0)

    def test_mla_softmax_scale(self):
        v3 = {"type": "yarn", "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0}
        # 192^-0.5 = 0.0721688; m = 1 + 0.1 ln 40 = 1.3688879; m^2 = 1.8738539 -> 0.135234
        self.assertAlmostEqual(R.mla_softmax_scale(192, v3), 0.13523, places=5)
        v2lite = {"type": "yarn", "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707}
        # m = 1 + 0.0707 ln 40 = 1.2608038; m^2 = 1.5896262
        self.assertAlmostEqual(R.mla_softmax_scale(192, v2lite) / 192 ** -0.5, 1.58963, places=5)
        self.assertEqual(R.mla_softmax_scale(192, None), 192 ** -0.5)

    def test_llama3_bands(self):
        # Llama 3.1: d 128, theta 5e5, factor 8, low/high freq factor 1/4, L 8192.
        # wavelen_i = 2 pi 5e5^(i/64). Unchanged while wavelen < 8192/4 = 2048:
        #   i < 64 ln(2048/2pi)/ln(5e5) = 64 * 5.786741/13.122363 = 28.22 -> i <= 28.
        # Divided by 8 once wavelen > 8192: i > 64 * 7.173037/13.122363 = 34.98 -> i >= 35.
        inv = R.llama3_inv_freq(128, 500000.0, 8.0, 1.0, 4.0, 8192)
        plain = 500000.0 ** (-np.arange(64) / 64.0)
        np.testing.assert_array_equal(inv[:29], plain[:29])
        np.testing.assert_allclose(inv[35:], plain[35:] / 8, rtol=1e-15)
        for i in range(29, 35):
            self.assertTrue(plain[i] / 8 < inv[i] < plain[i], f"pair {i} is blended")
        # pair 30: 5e5^(30/64) = 469.237, wavelen 2948.28, smooth = (8192/2948.28 - 1)/3 = 0.59286
        #   inv = 0.00213112 * (0.40714/8 + 0.59286) = 0.00137191
        self.assertAlmostEqual(inv[30] / 0.00137191, 1.0, delta=2e-5)
        self.assertEqual(inv[0], 1.0)

    def test_tiny_llama_preset_hits_all_bands(self):
        m = R.load(path("tiny-llama"))
        plain = 10000.0 ** (-np.arange(16) / 16.0)
        self.assertEqual(m.inv_freq[0], plain[0])
        self.assertTrue(plain[1] / 8 < m.inv_freq[1] < plain[1] and plain[2] / 8 < m.inv_freq[2] < plain[2])
        np.testing.assert_allclose(m.inv_freq[3:], plain[3:] / 8, rtol=1e-15)

    def test_pairing_conventions_on_a_unit_vector(self):
        # d = 8, base 1e4, position 1, x = e_1. Adjacent: pair (0, 1), angle inv_0 * 1 = 1 rad.
        # Rotate-half: pair (1, 5), angle inv_1 = 1e4^(-2/8) = 0.1 rad.
        inv = R.rope_parameters(8, 10000.0, None)[0]
        cos, sin = R.rope_cos_sin([1], inv, 1.0)
        x = np.zeros((1, 8))
        x[0, 1] = 1.0
        adj = R.apply_rope(x, cos, sin, "adjacent")[0]
        half = R.apply_rope(x, cos, sin, "rotate_half")[0]
        np.testing.assert_allclose(adj, [-0.8414710, 0.5403023, 0, 0, 0, 0, 0, 0], atol=1e-7)
        np.testing.assert_allclose(half, [0, 0.9950042, 0, 0, 0, 0.0998334, 0, 0], atol=1e-7)

    def test_deepseek_adjacent_equals_rotate_half_on_deinterleaved_rows(self):
        """HF's de-interleave + rotate-half == adjacent pairs: permuting the rope rows of q and k_pe
        (evens, then odds) and rotating halves must give the same logits; rotating halves of the
        unpermuted rows must not."""
        toks = prompt(48)
        m = R.load(path("tiny-v3"))
        ref = m.logits(toks)
        d, nope, heads = m.rope_dim, m.nope, m.n_heads
        perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
        wrong = R.load(path("tiny-v3"))
        wrong.rope_style = "rotate_half"
        self.assertGreater(rel_diff(ref, wrong.logits(toks)), 1e-2)
        for i in range(m.n_layers):
            a = f"model.layers.{i}.self_attn."
            qb = m.w[a + "q_b_proj.weight"].reshape(heads, nope + d, -1)
            qb[:, nope:, :] = qb[:, nope:, :][:, perm, :]
            kva = m.w[a + "kv_a_proj_with_mqa.weight"]
            kva[m.kv_lora_rank:] = kva[m.kv_lora_rank:][perm]
        m.rope_style = "rotate_half"
        self.assertLess(rel_diff(ref, m.logits(toks)), 1e-12)

    def test_llama_rotate_half_equals_adjacent_on_gguf_permuted_rows(self):
        """GGUF's llama converter permutes q/k rows per head (new 2i = old i, new 2i+1 = old i + d/2)
        so adjacent pairs reproduce HF's rotate-half; the unpermuted rows with adjacent pairs differ."""
        toks = prompt(48)
        m = R.load(path("tiny-llama"))
        ref = m.logits(toks)
        wrong = R.load(path("tiny-llama"))
        wrong.rope_style = "adjacent"
        self.assertGreater(rel_diff(ref, wrong.logits(toks)), 1e-2)
        d = m.head_dim
        perm = np.empty(d, dtype=int)
        perm[0::2] = np.arange(d // 2)
        perm[1::2] = np.arange(d // 2) + d // 2
        for i in range(m.n_layers):
            a = f"model.layers.{i}.self_attn."
            for proj, nh in (("q_proj", m.n_heads), ("k_proj", m.n_kv_heads)):
                w = m.w[a + proj + ".weight"].reshape(nh, d, -1)
                w[:] = w[:, perm, :]
        m.rope_style = "adjacent"
        self.assertLess(rel_diff(ref, m.logits(toks)), 1e-12)

    def test_rope_parameters_field_form(self):
        with open(os.path.join(path("tiny-v3"), "config.json")) as f:
            cfg = json.load(f)
        new = dict(cfg)
        scaling = dict(new.pop("rope_scaling"))
        scaling["rope_type"] = scaling.pop("type")
        scaling["rope_theta"] = new.pop("rope_theta")
        new["rope_parameters"] = scaling
        os.makedirs(path("v3-ropeparams"), exist_ok=True)
        shutil.copy(os.path.join(path("tiny-v3"), "model.safetensors"), path("v3-ropeparams"))
        with open(os.path.join(path("v3-ropeparams"), "config.json"), "w") as f:
            json.dump(new, f)
        a, b = R.load(path("tiny-v3")), R.load(path("v3-ropeparams"))
        np.testing.assert_array_equal(a.inv_freq, b.inv_freq)
        self.assertEqual(a.softmax_scale, b.softmax_scale)
        self.assertNotEqual(a.inv_freq[-1], 10000.0 ** (-6 / 8))  # yarn really applied


# --------------------------------------------------------------------------------------------------


def logit(p):
    return math.log(p / (1 - p))


class RoutingTest(unittest.TestCase):
    V3 = dict(scoring_func="sigmoid", topk_method="noaux_tc", norm_topk_prob=True, routed_scaling_factor=2.5)

    def test_group_masking_changes_the_choice(self):
        s = [0.9, 0.1, 0.6, 0.6, 0.55, 0.55, 0.2, 0.2]
        x = np.array([[logit(p) for p in s]])
        # groups of 2: sums of top-2 = 1.0, 1.2, 1.1, 0.4 -> keep groups 1 and 2; expert 0 (0.9) is out.
        idx, w = R.route(x, top_k=2, n_group=4, topk_group=2, **self.V3)
        self.assertEqual(idx[0].tolist(), [2, 3])
        np.testing.assert_allclose(w[0], [1.25, 1.25], rtol=1e-12)  # 0.6/1.2 * 2.5
        # without groups: 0.9 first, then the 0.6 tie goes to the lower index (2)
        idx, w = R.route(x, top_k=2, n_group=1, topk_group=1, **self.V3)
        self.assertEqual(idx[0].tolist(), [0, 2])
        np.testing.assert_allclose(w[0], [1.5, 1.0], rtol=1e-12)  # 0.9/1.5*2.5, 0.6/1.5*2.5

    def test_bias_changes_selection_not_weights(self):
        s = [0.7, 0.1, 0.5, 0.1, 0.45, 0.1, 0.3, 0.1]
        x = np.array([[logit(p) for p in s]])
        idx, w = R.route(x, top_k=2, n_group=1, topk_group=1, **self.V3)
        self.assertEqual(idx[0].tolist(), [0, 2])
        np.testing.assert_allclose(w[0], [0.7 / 1.2 * 2.5, 0.5 / 1.2 * 2.5], rtol=1e-12)
        bias = np.array([0, 0, 0, 0, 0.1, 0, 0, 0])  # expert 4: 0.45 + 0.1 = 0.55 > 0.5
        idx, w = R.route(x, top_k=2, n_group=1, topk_group=1, bias=bias, **self.V3)
        self.assertEqual(idx[0].tolist(), [0, 4])
        # weights from the unbiased scores: 0.7/1.15*2.5 = 1.5217391, 0.45/1.15*2.5 = 0.9782609
        np.testing.assert_allclose(w[0], [1.5217391, 0.9782609], rtol=1e-7)

    def test_masked_groups_score_zero_not_minus_infinity(self):
        # s = [0.5, 0.5, 0.2, 0.2], bias [-0.1, -0.6, -0.3, -0.3]: s' = [0.4, -0.1, -0.1, -0.1];
        # group sums 0.3 vs -0.2 keep group 0; masked s' = [0.4, -0.1, 0.0, 0.0]. HF's 0.0 mask lets
        # masked expert 2 (0.0, lower index than 3) beat kept expert 1 (-0.1); -inf would pick 1.
        x = np.array([[logit(p) for p in (0.5, 0.5, 0.2, 0.2)]])
        idx, w = R.route(x, top_k=2, n_group=2, topk_group=1, bias=np.array([-0.1, -0.6, -0.3, -0.3]), **self.V3)
        self.assertEqual(idx[0].tolist(), [0, 2])
        np.testing.assert_allclose(w[0], [0.5 / 0.7 * 2.5, 0.2 / 0.7 * 2.5], rtol=1e-12)

    def test_v2_softmax_greedy_no_renormalisation(self):
        # softmax([1, 2, 3, 0]): e^3/(1 + e + e^2 + e^3) = 20.085537/31.192875 = 0.643914, e^2/.. = 0.236883
        idx, w = R.route(np.array([[1.0, 2.0, 3.0, 0.0]]), top_k=2, scoring_func="softmax", topk_method="greedy",
                         norm_topk_prob=False, routed_scaling_factor=1.0)
        self.assertEqual(idx[0].tolist(), [2, 1])
        np.testing.assert_allclose(w[0], [0.643914, 0.236883], atol=1e-6)

    def test_v2_group_limited_greedy(self):
        # softmax proportional to [5, 1, 4, 4, 1, 1]/16; group maxima 5/16, 4/16, 1/16 -> keep group 0
        x = np.log(np.array([[5.0, 1, 4, 4, 1, 1]]))
        args = dict(top_k=2, scoring_func="softmax", norm_topk_prob=True, routed_scaling_factor=1.0)
        idx, w = R.route(x, topk_method="group_limited_greedy", n_group=3, topk_group=1, **args)
        self.assertEqual(idx[0].tolist(), [0, 1])
        np.testing.assert_allclose(w[0], [5 / 6, 1 / 6], rtol=1e-12)
        idx, _ = R.route(x, topk_method="greedy", **args)
        self.assertEqual(idx[0].tolist(), [0, 2])

    def test_moe_layer_matches_a_per_token_loop(self):
        m = R.load(path("tiny-v3"))
        self.assertEqual([m.is_moe(i) for i in range(3)], [False, True, True])
        x = np.random.default_rng(3).standard_normal((10, m.hidden))
        p = "model.layers.1.mlp."
        got = m._moe(x, p)
        w = m.w
        for t in range(10):
            s = 1 / (1 + np.exp(-(w[p + "gate.weight"] @ x[t])))
            sb = s + w[p + "gate.e_score_correction_bias"]
            groups = sb.reshape(4, 4)
            gscore = [sorted(g)[-1] + sorted(g)[-2] for g in groups]
            kept = sorted(range(4), key=lambda g: (-gscore[g], g))[:2]
            masked = [sb[e] if e // 4 in kept else 0.0 for e in range(16)]
            chosen = sorted(range(16), key=lambda e: (-masked[e], e))[:4]
            total = sum(s[e] for e in chosen)
            out = np.zeros(m.hidden)
            for e in chosen + ["shared"]:
                q = p + ("shared_experts." if e == "shared" else f"experts.{e}.")
                g = w[q + "gate_proj.weight"] @ x[t]
                h = (g / (1 + np.exp(-g))) * (w[q + "up_proj.weight"] @ x[t])
                weight = 1.0 if e == "shared" else s[e] / total * 2.5
                out += weight * (w[q + "down_proj.weight"] @ h)
            np.testing.assert_allclose(got[t], out, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------------


class ModelTest(unittest.TestCase):
    DEEPSEEK = ("tiny-v3", "tiny-v2", "tiny-v2-group")
    ALL = DEEPSEEK + ("tiny-qwen2", "tiny-llama")

    def test_naive_and_absorbed_mla_agree(self):
        toks = prompt(64)
        for preset in self.DEEPSEEK:
            with self.subTest(preset):
                m = R.load(path(preset))
                naive = m.logits(toks)
                absorbed = m.logits(toks, mla="absorbed")
                self.assertLess(np.max(np.abs(naive - absorbed)), 1e-10)
                self.assertGreater(np.std(naive), 0.1)

    def test_causal_masking(self):
        for preset in self.ALL:
            with self.subTest(preset):
                m = R.load(path(preset))
                a = prompt(64)
                b = a.copy()
                b[40:] = (b[40:] + 17) % SMALL_VOCAB
                la, lb = m.logits(a), m.logits(b)
                self.assertLess(np.max(np.abs(la[:40] - lb[:40])), 1e-12)
                self.assertGreater(np.max(np.abs(la[40:] - lb[40:])), 1e-3)
                self.assertLess(np.max(np.abs(la[:40] - m.logits(a[:40]))), 1e-12)

    def test_positions_beyond_the_original_context_use_scaled_rope(self):
        # Removing YaRN must change logits both before and after position 32 (it applies everywhere).
        toks = prompt(64)
        m = R.load(path("tiny-v3"))
        ref = m.logits(toks)
        m.inv_freq = R.rope_parameters(m.rope_dim, m.theta, None)[0]
        plain = m.logits(toks)
        self.assertGreater(np.max(np.abs(ref[1:32] - plain[1:32])), 1e-6)
        self.assertGreater(np.max(np.abs(ref[32:] - plain[32:])), 1e-3)
        np.testing.assert_allclose(ref[0], plain[0], rtol=1e-12)  # position 0: no rotation at all

    def test_gqa_head_mapping(self):
        """Head h reads kv head h // (H/KV): duplicating k/v rows that way gives an MHA model with
        identical logits (h % KV would not)."""
        toks = prompt(32)
        m = R.load(path("tiny-qwen2"))
        ref = m.logits(toks)
        d, group = m.head_dim, m.n_heads // m.n_kv_heads
        for i in range(m.n_layers):
            a = f"model.layers.{i}.self_attn."
            for proj in ("k_proj", "v_proj"):
                w = m.w[a + proj + ".weight"].reshape(m.n_kv_heads, d, -1)
                m.w[a + proj + ".weight"] = np.repeat(w, group, axis=0).reshape(m.n_heads * d, -1)
                b = m.w[a + proj + ".bias"].reshape(m.n_kv_heads, d)
                m.w[a + proj + ".bias"] = np.repeat(b, group, axis=0).reshape(-1)
        m.n_kv_heads = m.n_heads
        self.assertLess(rel_diff(ref, m.logits(toks)), 1e-12)

    def test_qwen2_bias_is_used(self):
        toks = prompt(16)
        m = R.load(path("tiny-qwen2"))
        ref = m.logits(toks)
        m.w["model.layers.0.self_attn.k_proj.bias"] = m.w["model.layers.0.self_attn.k_proj.bias"] * 0
        self.assertGreater(rel_diff(ref, m.logits(toks)), 1e-4)

    def test_tied_embeddings(self):
        make_tiny.make("tiny-qwen2", path("qwen2-tied"), vocab=SMALL_VOCAB, overrides={"tie_word_embeddings": True})
        self.assertNotIn("lm_head.weight", R.Checkpoint(path("qwen2-tied")).names())
        m = R.load(path("qwen2-tied"))
        toks = prompt(8)
        expect = m.hidden_states(toks) @ np.asarray(m.embed, np.float64).T
        np.testing.assert_array_equal(m.logits(toks), expect)

    def test_cli_full_vocab_v3(self):
        """The engine's test path: 64 tokens on tiny-v3 with its real 129280 vocab, --out then
        --compare (passes on itself, fails on a perturbed copy)."""
        folder = path("tiny-v3-full")
        make_tiny.make("tiny-v3", folder)
        toks = ",".join(str(t) for t in prompt(64, vocab=129280))
        out = path("ref.npy")
        cli = [sys.executable, os.path.join(HERE, "reference_model.py"), folder, "--tokens", toks]
        start = time.time()
        subprocess.run(cli + ["--out", out], check=True)
        seconds = time.time() - start
        logits = np.load(out)
        self.assertEqual((logits.shape, logits.dtype), ((64, 129280), np.float32))
        print(f"\n  reference CLI, tiny-v3, 64 tokens x 129280 vocab: {seconds:.1f} s", file=sys.stderr)
        r = subprocess.run(cli + ["--compare", out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK", r.stdout)
        bad = logits.copy()
        bad[63, 5] += 2e-3 * np.max(np.abs(logits))
        np.save(path("bad.npy"), bad)
        r = subprocess.run(cli + ["--compare", path("bad.npy")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("FAIL", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
