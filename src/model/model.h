#pragma once
// The forward pass over a varlen batch: several sequences, each bringing any number of new
// tokens, share every matrix multiplication of a step (what continuous batching needs). One
// thread (the engine's) calls forward(); kernels parallelise inside it on the ThreadPool.
//
// Determinism: with options.deterministic (the default) every kernel runs on a path whose
// per-row result does not depend on the batch, and MoE sums experts in ascending index order,
// so a sequence's logits are the same alone or batched.

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"

namespace seekserve {

struct SequenceInput {
  std::span<const int32_t> tokens;       // new tokens of this step
  int64_t n_past = 0;                    // tokens of this sequence already in the cache
  std::span<const int32_t> block_table;  // covers positions [0, n_past + tokens.size())
  bool all_logits = false;               // logits for every new token, else the last only
};

struct ModelOptions {
  bool deterministic = true;
  // Q8_0/Q4_0 matmuls keep f32 activations (MatmulOptions::exact_activations) instead of int8:
  // the reference arithmetic, for checking the engine against a float64 reference on the same
  // weights. Off by default (int8 activations decode the GEMV faster); the environment variable
  // SEEKSERVE_EXACT_ACTIVATIONS=1 turns it on for every Model of the process.
  bool exact_activations = false;
};

class Model {
 public:
  Model(std::unique_ptr<ModelWeights> weights, ThreadPool& pool, ModelOptions options = {});

  const ModelConfig& config() const { return w_->config; }
  const ModelWeights& weights() const { return *w_; }
  int64_t n_vocab() const { return w_->config.vocab_size; }

  // Runs the batch, writing each sequence's new KV slots, and returns logits [n_out, n_vocab]
  // f32 in batch order (all new tokens of an all_logits sequence, else its last token).
  // Errors (bad token id, block table too short) leave the cache untouched for that step.
  Status forward(std::span<const SequenceInput> batch, KvCache& cache, std::vector<float>& logits);

 private:
  struct Step;  // per-forward scratch (defined in model.cpp)

  void linear(const float* x, int64_t m, const WeightView& w, float* y);
  void mlp(const MlpWeights& w, const float* x, int64_t m, float* y);
  void moe(const LayerWeights& L, const float* x, int64_t m, float* y);
  void mla_attention(Step& s, int64_t il, const float* x, float* y, KvCache& cache);
  void gqa_attention(Step& s, int64_t il, const float* x, float* y, KvCache& cache);

  std::unique_ptr<ModelWeights> w_;
  ThreadPool& pool_;
  ModelOptions options_;
  // Per-thread attention scratch (scores, folded queries, a decoded block), grown on first use
  // and kept: [pool threads] vectors, each touched only by its thread during a step.
  std::vector<std::vector<float>> attn_scratch_;
  // mlp()'s gate and up activations [m, inter] f32, grown on first use and kept: allocating them
  // per call cost a page fault per 4 KiB and a memset (~14% of a 16-sequence decode step).
  std::vector<float> mlp_gate_, mlp_up_;
};

// RMSNorm of n values: x / sqrt(mean(x²) + eps) · weight (accumulated in double).
void rms_norm(const float* x, const float* weight, int64_t n, double eps, float* out);

// Expert selection for one token (MODELS.md §4). scores_logits [n_experts] (router output);
// returns the chosen experts in ascending index order with their weights.
struct ExpertChoice {
  int32_t expert;
  float weight;
};
std::vector<ExpertChoice> route_token(const ModelConfig& config, const float* router_logits,
                                      const float* correction_bias);

}  // namespace seekserve
