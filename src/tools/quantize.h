#pragma once
// quantize: converts a model (HF folder or GGUF file, any weight type the loader reads) to another
// weight type, written as GGUF or as an HF folder. Tensor by tensor: each output tensor is
// computed (source dequantised to f32, transformed, quantised) straight into the output file, so
// peak memory is about one tensor in f32 plus its encoded bytes.
//
// What is quantised: the linear weights of attention, dense MLP, shared and routed experts
// (TensorRole::kLinear). What is not: embeddings and lm_head keep their source type (a plain float
// type; llama.cpp by habit quantises token_embd too and makes output.weight Q6_K/Q8_0 — we keep
// both exact), and the router gate, norms, biases and e_score_correction_bias keep their source
// type in HF form and are F32 in GGUF (as llama.cpp stores 1-D tensors and the gate). With
// --dtype f32 every tensor is F32 (the "dequantise everything" form the float64 reference reads).
//
// Per output format:
//   hf:   f32 | f16 | bf16 | fp8. fp8 is DeepSeek's layout: F8_E4M3 `*.weight` plus f32
//         `*.weight_scale_inv` [ceil(out/128), ceil(in/128)] (quantize_fp8_blocks), and
//         config.json gets DeepSeek's quantization_config. Block types have no safetensors form.
//   gguf: f32 | f16 | bf16 | q8_0 | q4_0. GGUF has no FP8 type. A Q8_0/Q4_0 tensor whose rows are
//         not a multiple of 32 long is written F16 instead (and reported).
// Re-quantising quantised input (FP8, Q8_0, Q4_0, Q4_K) dequantises it to f32 first, so errors
// compound: Q8_0 -> Q4_0 is further from the original than F32 -> Q4_0.

#include <string>

#include "core/status.h"
#include "tools/command.h"

namespace seekserve {

struct QuantizeOptions {
  std::string in;      // HF folder or .gguf file
  std::string out;     // folder (hf) or file (gguf)
  std::string dtype;   // f32 | f16 | bf16 | fp8 | q8_0 | q4_0
  std::string format;  // hf | gguf; empty: gguf for q8_0/q4_0, hf for fp8, else the input's form
  // HF output from a GGUF input: the config.json to write instead of the one derived from the
  // GGUF metadata. Required when the GGUF holds llama3 rope_freqs (config.json cannot be derived
  // from the factors); checked against the input's shapes and factors.
  std::string config;
  bool quiet = false;  // no per-class summary on stdout
};

Status quantize_model(const QuantizeOptions& options);

// The subcommand is declared in tools/command.h.

}  // namespace seekserve
