#pragma once
// The matmul kernel family: Y[m, n] = X[m, k] · W[n, k]ᵀ, activations f32 row-major, weights
// row-major [out = n, in = k] as checkpoints store them, in any of F32, F16, BF16, F8_E4M3 (with
// DeepSeek's 128×128 block scale_inv), Q8_0 and Q4_0.
//
// Paths (IsaLevel) and their arithmetic; each is tested against a scalar reference of the same
// arithmetic (tests/kernels/matmul_test.cpp states the tolerances):
//   kScalar  weights dequantised to f32 exactly, X·W summed in f32 in k order. The reference.
//   kAvx2    F32/F16/BF16/FP8: f32 FMA on the exact f32 weights, 8 lanes. (kAvx2, and kAvx512
//            without VBMI, decode E4M3 by moving bits into f16, exact for every finite code; the
//            NaN codes 0x7F/0xFF, which checkpoints never hold, read as ±480·scale instead of NaN.)
//            Q8_0/Q4_0: activations quantised to int8 per 32-block (quantize_activations_q8),
//            exact integer block dots, f32 sum of d_x·d_w·dot (the llama.cpp scheme); or, with
//            exact_activations, f32 FMA on the exact f32 weights d·q like the types above.
//   kAvx512  as kAvx2 with 16 lanes, except BF16 weights with AVX512_BF16: X rounded to BF16 and
//            vdpbf16ps. Integer dots use VNNI vpdpbusd when present (bit-identical without).
//            FP8 with AVX512_VBMI: E4M3 decoded exactly by byte-table lookups (NaN codes read as
//            NaN, like the reference), same f32 products as the reference, two accumulators.
//   kAmx     BF16, FP8, Q8_0, Q4_0 weights: X rounded to BF16, each weight widened to
//            bf16(dequantised f32) 32 rows at a time into per-thread scratch (never a whole copy),
//            tdpbf16ps on 16×16 tiles. F32/F16 weights fall back to kAvx512 (no precision loss).
//
// Determinism: on every path the value of Y[i, j] depends only on X row i, W row j and the path,
// never on m, on the other rows, on the thread count or on timing (the per-element reduction order
// is fixed by k alone). matmul() picks the path from m, so results cross a path boundary as m
// grows unless MatmulOptions::batch_invariant pins the path.
//
// Thread-safety: the functions are reentrant; parallel work runs on the given ThreadPool.

#include <cstdint>
#include <string_view>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace seekserve {

// How a matrix's bytes are arranged.
enum class WeightLayout {
  kRows,  // row-major, as files store it
  // Q8_0/Q4_0 repacked at load by pack_weight_rows16 (same size, same bytes per 16 rows) so that
  // one VNNI dot of 64 weight bytes serves 16 rows: rows [0, n16), n16 = rows rounded down to
  // 16, in groups of 16 (group g = rows 16g..16g+15); the group's blocks in k order, block b of
  // group g at byte (g·n_blocks + b)·16·block_bytes:
  //   16 f16 scales d[r] (32 bytes), then 64-byte chunks, chunk c holding 4 bytes per row r at
  //   c·64 + 4r:  Q8_0: 8 chunks, bytes q[r][4c..4c+3] XOR 0x80 (= w + 128, unsigned);
  //               Q4_0: 4 chunks, the block's nibble bytes 4c..4c+3 as stored (low nibble
  //               element 4c+u, high nibble element 4c+16+u, both w + 8).
  // Rows [n16, rows) stay row-major after the groups.
  kRows16,
};

// A weight matrix in memory (typically memory-mapped); not owned.
struct WeightView {
  DType dtype = DType::kF32;
  const void* data = nullptr;        // [rows, cols] in dtype; block types: blocks of 32 along cols
  int64_t rows = 0;                  // n, output features
  int64_t cols = 0;                  // k, input features
  const float* scale_inv = nullptr;  // kF8E4M3 only: [ceil(rows/128), ceil(cols/128)] f32;
                                     // W[i][j] = fp8(W[i][j]) · scale_inv[i/128][j/128]
  WeightLayout layout = WeightLayout::kRows;
};

struct MatmulOptions {
  // Use a path independent of m (the best one for the dtype), so that a row's result never
  // depends on the batch it was computed in (DESIGN "Determinism").
  bool batch_invariant = false;
  // Q8_0/Q4_0 on kAvx2/kAvx512 keep f32 activations (the reference arithmetic) instead of
  // quantising them to int8: exact, but the GEMV decodes ~2x more instructions per weight byte.
  bool exact_activations = false;
};

// Fine control for tests and benchmarks: which optional instructions a path may use. A feature the
// CPU lacks is never used whatever these say.
struct MatmulVariant {
  bool avx512_bf16 = true;       // vdpbf16ps for BF16 weights on kAvx512
  bool avx512_vnni = true;       // vpdpbusd for Q8_0/Q4_0 on kAvx512
  bool int8_activations = true;  // Q8_0/Q4_0 on kAvx2/kAvx512: int8 activations (else f32)
  bool fp8_vbmi = true;          // FP8 on kAvx512: the AVX512_VBMI table-decode kernel (else the
                                 // E4M3 → f16 bit-move kernel)
  bool amx_emulated = false;     // kAmx: run the tile loop on a scalar model of the tiles (any CPU
                                 // with kAvx512), to test the layout where no AMX exists
};

// Ok if w is a matrix the kernels take: a supported dtype, cols a whole number of blocks,
// scale_inv present for kF8E4M3, data non-null.
Status validate_weight(const WeightView& w);

// The path matmul() uses for `m` rows of w.dtype when the kernels may use up to `max_level`.
IsaLevel choose_matmul_path(IsaLevel max_level, DType dtype, int64_t m,
                            const MatmulOptions& options = {});

// Y = X · Wᵀ on the path chosen from active_isa_level(), m and w.dtype.
// x: [m, w.cols] f32 row-major; y: [m, w.rows] f32 row-major (overwritten).
Status matmul(ThreadPool& pool, const float* x, int64_t m, const WeightView& w, float* y,
              const MatmulOptions& options = {});

// Same on an explicit path; fails if the CPU (or AMX permission) does not allow it, unless the
// variant asks for emulated AMX. kAmx with F32/F16 weights runs kAvx512.
Status matmul_on_path(ThreadPool& pool, IsaLevel path, const float* x, int64_t m,
                      const WeightView& w, float* y, const MatmulVariant& variant = {});

// The scalar reference (single-threaded, plain loops): W row dequantised to f32, then for each
// output y = Σ_k x[k]·w[k] accumulated in f32 in increasing k.
void matmul_reference(const float* x, int64_t m, const WeightView& w, float* y);

// Row `row` of w dequantised to f32: out [w.cols]. Exact (every supported dtype's values are
// representable in f32 before the fp8 scale multiply, which rounds once).
void weight_row_to_f32(const WeightView& w, int64_t row, float* out);

// --- The int8-activation arithmetic of the Q8_0/Q4_0 SIMD paths ---

// One row of activations quantised per 32-block the llama.cpp way: d = max|x| / 127,
// q = round-to-nearest-even(x / d) (q = 0 when d = 0). Shared by every path so they agree bit
// for bit on the integers.
void quantize_activations_q8(const float* x, int64_t k, int8_t* q /*[k]*/, float* d /*[k/32]*/);

// --- Q8_0/Q4_0 weights packed for the VNNI kernel (WeightLayout::kRows16) ---
//
// With kRows16 weights the kAvx512 path with VNNI and int8 activations runs one kernel for every
// m: each output's 32-block integer dot in one 32-bit lane, then, block by block in k order,
// sum += (d_x·d_w)·dot in f32 — exactly matmul_reference_q8act's arithmetic, so results are
// bit-identical to it (and to the same row in any batch). Every other path reads the packed
// bytes through weight_block_q8 with the reference arithmetic of its kind (slow; tests only).

// True when w is a row-major Q8_0/Q4_0 matrix of at least 16 rows and this machine's kernels
// would run the packed kernel on it (active level kAvx512 with AVX512_VNNI: AMX machines keep
// the files' layout for their tile path, AVX2 machines for theirs).
bool rows16_packing_pays(const WeightView& w);

// Rewrites groups [g0, g1) of row-major Q8_0/Q4_0 `w` in place into the kRows16 layout; `bytes`
// is w.data, writable. The caller sets w.layout = kRows16 once every group is done. Groups are
// independent, so disjoint ranges may run on different threads.
int64_t rows16_groups(const WeightView& w);  // rows / 16
void pack_weight_rows16(const WeightView& w, uint8_t* bytes, int64_t g0, int64_t g1);

// Reference of that arithmetic for Q8_0/Q4_0 weights: y = Σ_blocks (d_x·d_w)·Σ q_x·q_w, summed in
// f32 in block order, the block dot in exact integers.
void matmul_reference_q8act(const float* x, int64_t m, const WeightView& w, float* y);

}  // namespace seekserve
