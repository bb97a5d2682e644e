#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "core/quant.h"
#include "kernels/matmul_kernels.h"

namespace seekserve {

using matmul_detail::kFp8ScaleBlock;
using matmul_detail::kQBlock;
using matmul_detail::MatmulJob;

namespace {

constexpr int64_t kAmxMinRows = 16;   // below this the tiles are mostly padding: use AVX-512
constexpr int64_t kColsPerTask = 16;  // multiple of every SIMD kernel's column block (4)
constexpr int64_t kRowsPerTask = 64;
constexpr int64_t kAmxRowsPerTask = 256;  // multiple of kAmxRowBlock

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

bool is_q8act_dtype(DType t) {
  return t == DType::kQ8_0 || t == DType::kQ4_0;
}

// MatmulJob::x_sum128 and xd16 of one activation row (q [n_blocks * 32], d [n_blocks]).
void prepare_vnni_row(const int8_t* q, const float* d, int64_t n_blocks, int32_t* sum,
                      float* scale) {
  for (int64_t p = 0; p < ceil_div(n_blocks, 2); ++p) {
    for (int64_t t = 0; t < 16; ++t) {
      const int64_t block = 2 * p + t / 8;
      int32_t s = 0;
      if (block < n_blocks) {
        for (int64_t u = 0; u < 4; ++u) s += q[p * 2 * kQBlock + 4 * t + u];
      }
      sum[p * 16 + t] = -128 * s;
      scale[p * 16 + t] = block < n_blocks ? d[block] : 0.0f;
    }
  }
}

bool amx_takes(DType t) {
  return t == DType::kBF16 || t == DType::kF8E4M3 || t == DType::kQ8_0 || t == DType::kQ4_0;
}

}  // namespace

namespace matmul_detail {

float weight_block_q8(const WeightView& w, int64_t row, int64_t block, int8_t* q) {
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t n_blocks = w.cols / kQBlock;
  if (w.layout == WeightLayout::kRows16 && row < w.rows / 16 * 16) {  // see matmul.h
    const bool q8 = w.dtype == DType::kQ8_0;
    SEEK_CHECK(q8 || w.dtype == DType::kQ4_0, "weight_block_q8: Q8_0 or Q4_0 only");
    const int64_t r = row % 16;
    const uint8_t* p = base + ((row / 16) * n_blocks + block) * 16 * (q8 ? 34 : 18);
    for (int64_t t = 0; t < (q8 ? 32 : 16); ++t) {
      const uint8_t v = p[32 + (t / 4) * 64 + 4 * r + t % 4];
      if (q8) {
        q[t] = static_cast<int8_t>(v ^ 0x80);
      } else {
        q[t] = static_cast<int8_t>((v & 15) - 8);
        q[t + 16] = static_cast<int8_t>((v >> 4) - 8);
      }
    }
    return f16_to_f32(load_u16(p + 2 * r));
  }
  if (w.dtype == DType::kQ8_0) {
    const uint8_t* p = base + (row * n_blocks + block) * 34;  // f16 d, 32 x i8
    std::memcpy(q, p + 2, kQBlock);
    return f16_to_f32(load_u16(p));
  }
  SEEK_CHECK(w.dtype == DType::kQ4_0, "weight_block_q8: Q8_0 or Q4_0 only");
  const uint8_t* p = base + (row * n_blocks + block) * 18;  // f16 d, 16 bytes of nibbles
  for (int t = 0; t < 16; ++t) {
    q[t] = static_cast<int8_t>((p[2 + t] & 15) - 8);
    q[t + 16] = static_cast<int8_t>((p[2 + t] >> 4) - 8);
  }
  return f16_to_f32(load_u16(p));
}

float weight_element(const WeightView& w, int64_t row, int64_t col) {
  const auto* base = static_cast<const uint8_t*>(w.data);
  switch (w.dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, base + (row * w.cols + col) * 4, 4);
      return v;
    }
    case DType::kF16:
      return f16_to_f32(load_u16(base + (row * w.cols + col) * 2));
    case DType::kBF16:
      return bf16_to_f32(load_u16(base + (row * w.cols + col) * 2));
    case DType::kF8E4M3: {
      const int64_t n_col_blocks = ceil_div(w.cols, kFp8ScaleBlock);
      const float scale = w.scale_inv[(row / kFp8ScaleBlock) * n_col_blocks + col / kFp8ScaleBlock];
      return fp8_e4m3_to_f32(base[row * w.cols + col]) * scale;
    }
    case DType::kQ8_0:
    case DType::kQ4_0: {
      int8_t q[kQBlock];
      const float d = weight_block_q8(w, row, col / kQBlock, q);
      return d * static_cast<float>(q[col % kQBlock]);
    }
    default:
      SEEK_CHECK(false, "weight_element: unsupported dtype (validate_weight first)");
  }
  return 0.0f;
}

void matmul_block_scalar(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  std::vector<float> w_row(job.k);  // [k] f32
  for (int64_t j = j0; j < j1; ++j) {
    weight_row_to_f32(*job.w, j, w_row.data());
    for (int64_t i = i0; i < i1; ++i) {
      const float* x_row = job.x + i * job.k;
      float sum = 0.0f;
      for (int64_t c = 0; c < job.k; ++c) sum += x_row[c] * w_row[c];
      job.y[i * job.n + j] = sum;
    }
  }
}

}  // namespace matmul_detail

Status validate_weight(const WeightView& w) {
  if (w.rows < 0 || w.cols < 0) return invalid_argument("matmul: negative weight shape");
  if (w.data == nullptr && w.rows * w.cols > 0) return invalid_argument("matmul: null weights");
  if (w.layout == WeightLayout::kRows16 && !is_q8act_dtype(w.dtype)) {
    return invalid_argument("matmul: the 16-row packed layout is for Q8_0/Q4_0 weights only");
  }
  switch (w.dtype) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return Status::ok_status();
    case DType::kF8E4M3:
      if (w.scale_inv == nullptr) return invalid_argument("matmul: fp8 weights need scale_inv");
      return Status::ok_status();
    case DType::kQ8_0:
    case DType::kQ4_0:
      if (w.cols % kQBlock != 0) {
        return invalid_argument("matmul: {} weights need cols ({}) a multiple of 32",
                                dtype_name(w.dtype), w.cols);
      }
      return Status::ok_status();
    default:
      return unimplemented("matmul: weight type {} not supported", dtype_name(w.dtype));
  }
}

IsaLevel choose_matmul_path(IsaLevel max_level, DType dtype, int64_t m,
                            const MatmulOptions& options) {
  if (max_level == IsaLevel::kAmx) {
    if (amx_takes(dtype) && (options.batch_invariant || m >= kAmxMinRows)) return IsaLevel::kAmx;
    return IsaLevel::kAvx512;
  }
  return max_level;
}

Status matmul(ThreadPool& pool, const float* x, int64_t m, const WeightView& w, float* y,
              const MatmulOptions& options) {
  const IsaLevel path = choose_matmul_path(active_isa_level(), w.dtype, m, options);
  MatmulVariant variant;
  variant.int8_activations = !options.exact_activations;
  return matmul_on_path(pool, path, x, m, w, y, variant);
}

Status matmul_on_path(ThreadPool& pool, IsaLevel path, const float* x, int64_t m,
                      const WeightView& w, float* y, const MatmulVariant& variant) {
  SEEK_RETURN_IF_ERROR(validate_weight(w));
  if (m < 0) return invalid_argument("matmul: negative row count");
  const CpuFeatures& cpu = cpu_features();
  const IsaLevel cpu_level = max_isa_level(cpu);
  if (path == IsaLevel::kAmx && !amx_takes(w.dtype)) path = IsaLevel::kAvx512;
  // The tiles read the files' layout; packed weights take the VNNI kernel (every AMX CPU has it).
  const bool packed = w.layout == WeightLayout::kRows16;
  if (path == IsaLevel::kAmx && packed) path = IsaLevel::kAvx512;
  if (path == IsaLevel::kAmx) {
    if (variant.amx_emulated) {
      if (cpu_level < IsaLevel::kAvx512 || !cpu.avx512_bf16) {
        return unimplemented("matmul: emulated AMX needs AVX-512 with AVX512_BF16");
      }
    } else {
      if (cpu_level < IsaLevel::kAmx) return unimplemented("matmul: this CPU has no AMX-BF16");
      SEEK_RETURN_IF_ERROR(request_amx_permission());
    }
  } else if (path > cpu_level) {
    return unimplemented("matmul: this CPU cannot run the {} path", isa_level_name(path));
  }

  MatmulJob job;
  job.x = x;
  job.m = m;
  job.n = w.rows;
  job.k = w.cols;
  job.w = &w;
  job.y = y;
  if (m == 0 || job.n == 0) return Status::ok_status();
  if (job.k == 0) {
    std::fill(y, y + m * job.n, 0.0f);
    return Status::ok_status();
  }

  std::vector<uint16_t> x_bf16;      // [m, x_bf16_ld] bf16
  std::vector<int8_t> xq;            // [m, k] i8
  std::vector<float> xd;             // [m, k / 32] f32
  std::vector<int32_t> x_sum128;     // [m, ceil(k / 64), 16] i32 (VNNI)
  std::vector<float> xd16;           // [m, ceil(k / 64), 16] f32 (VNNI)
  std::vector<int32_t> x_block_sum;  // [m, k / 32] i32 (VNNI on packed weights)
  if ((path == IsaLevel::kAvx2 || path == IsaLevel::kAvx512) && is_q8act_dtype(w.dtype) &&
      variant.int8_activations) {
    job.use_vnni = path == IsaLevel::kAvx512 && variant.avx512_vnni && cpu.avx512_vnni;
    const int64_t n_blocks = job.k / kQBlock, n_pairs = ceil_div(n_blocks, 2);
    xq.resize(m * job.k);
    xd.resize(m * n_blocks);
    const bool block_sums = job.use_vnni && packed;
    if (block_sums) {
      x_block_sum.resize(m * n_blocks);
    } else if (job.use_vnni) {
      x_sum128.resize(m * n_pairs * 16);
      xd16.resize(m * n_pairs * 16);
    }
    const int32_t bias = w.dtype == DType::kQ8_0 ? 128 : 8;  // what the packed bytes add to w
    pool.parallel_for(m, [&](int64_t i, int) {
      int8_t* q = xq.data() + i * job.k;
      float* d = xd.data() + i * n_blocks;
      if (path == IsaLevel::kAvx512) {  // the same integers and scales, vectorised
        matmul_detail::quantize_activations_q8_avx512(
            x + i * job.k, job.k, q, d, block_sums ? x_block_sum.data() + i * n_blocks : nullptr,
            bias);
      } else {
        quantize_activations_q8(x + i * job.k, job.k, q, d);
      }
      if (job.use_vnni && !block_sums) {  // (block sums: only with VNNI, filled above)
        prepare_vnni_row(q, d, n_blocks, x_sum128.data() + i * n_pairs * 16,
                         xd16.data() + i * n_pairs * 16);
      }
    });
    job.xq = xq.data();
    job.xd = xd.data();
    job.x_sum128 = x_sum128.empty() ? nullptr : x_sum128.data();
    job.xd16 = xd16.empty() ? nullptr : xd16.data();
    job.x_block_sum = x_block_sum.empty() ? nullptr : x_block_sum.data();
  }
  if (path == IsaLevel::kAvx512 && w.dtype == DType::kBF16 && variant.avx512_bf16 &&
      cpu.avx512_bf16) {
    job.use_bf16_dot = true;
    job.x_bf16_ld = ceil_div(job.k, 32) * 32;
    x_bf16.assign(m * job.x_bf16_ld, 0);
    pool.parallel_for(m, [&](int64_t i, int) {
      for (int64_t c = 0; c < job.k; ++c) {
        x_bf16[i * job.x_bf16_ld + c] = f32_to_bf16(x[i * job.k + c]);
      }
    });
    job.x_bf16 = x_bf16.data();
  }

  std::vector<float> x_fp8;  // [m, x_fp8_ld] f32
  if (path == IsaLevel::kAvx512 && w.dtype == DType::kF8E4M3 && variant.fp8_vbmi &&
      cpu.avx512_vbmi) {
    job.x_fp8_ld = matmul_detail::fp8_permute_x_ld(job.k);
    x_fp8.resize(m * job.x_fp8_ld);
    pool.parallel_for(m, [&](int64_t i, int) {
      matmul_detail::fp8_permute_x(x + i * job.k, job.k, x_fp8.data() + i * job.x_fp8_ld);
    });
    job.x_fp8 = x_fp8.data();
  }

  if (path == IsaLevel::kAmx) {
    using matmul_detail::kAmxRowBlock;
    using matmul_detail::kAmxStripRows;
    std::vector<uint16_t> x_tiles(matmul_detail::amx_x_tiles_elements(m, job.k));
    const int64_t m_pad = ceil_div(m, kAmxRowBlock) * kAmxRowBlock;
    pool.parallel_for(m_pad / 16, [&](int64_t b, int) {
      matmul_detail::amx_pack_x(x, m, job.k, b * 16, b * 16 + 16, x_tiles.data());
    });
    job.x_tiles = x_tiles.data();
    const int64_t scratch_elements = matmul_detail::amx_scratch_elements(job.k);
    std::vector<uint16_t> scratch(scratch_elements * pool.n_threads());  // per thread
    const int64_t n_col_tasks = ceil_div(job.n, kAmxStripRows);
    const int64_t n_row_tasks = ceil_div(m, kAmxRowsPerTask);
    pool.parallel_for(n_col_tasks * n_row_tasks, [&](int64_t task, int thread) {
      const int64_t i0 = (task % n_row_tasks) * kAmxRowsPerTask;
      const int64_t j0 = (task / n_row_tasks) * kAmxStripRows;
      matmul_detail::matmul_block_amx(
          job, i0, std::min(m, i0 + kAmxRowsPerTask), j0, std::min(job.n, j0 + kAmxStripRows),
          scratch.data() + thread * scratch_elements, variant.amx_emulated);
    });
    return Status::ok_status();
  }

  auto* block_fn = job.x_fp8 != nullptr        ? matmul_detail::matmul_block_fp8_vbmi
                   : path == IsaLevel::kAvx512 ? matmul_detail::matmul_block_avx512
                   : path == IsaLevel::kAvx2   ? matmul_detail::matmul_block_avx2
                                               : matmul_detail::matmul_block_scalar;
  if (packed) {  // tasks' j0 stay on 16-row groups
    block_fn = job.x_block_sum != nullptr ? matmul_detail::matmul_block_rows16_avx512
               : job.xq != nullptr        ? matmul_detail::matmul_block_q8act_generic
                                          : matmul_detail::matmul_block_scalar;
  }
  // Packed weights: two 16-row groups per task (the VNNI kernel's widest tile).
  const int64_t cols_per_task = packed ? 2 * kColsPerTask : kColsPerTask;
  const int64_t n_col_tasks = ceil_div(job.n, cols_per_task);
  const int64_t n_row_tasks = ceil_div(m, kRowsPerTask);
  pool.parallel_for(n_col_tasks * n_row_tasks, [&](int64_t task, int) {
    const int64_t i0 = (task % n_row_tasks) * kRowsPerTask;
    const int64_t j0 = (task / n_row_tasks) * cols_per_task;
    block_fn(job, i0, std::min(m, i0 + kRowsPerTask), j0, std::min(job.n, j0 + cols_per_task));
  });
  return Status::ok_status();
}

void weight_row_to_f32(const WeightView& w, int64_t row, float* out) {
  if (w.layout == WeightLayout::kRows16) {
    int8_t q[kQBlock];
    for (int64_t b = 0; b < w.cols / kQBlock; ++b) {
      const float d = matmul_detail::weight_block_q8(w, row, b, q);
      for (int64_t t = 0; t < kQBlock; ++t) out[b * kQBlock + t] = d * static_cast<float>(q[t]);
    }
    return;
  }
  // One decoder for files and kernels: core/quant.h's dequantize_row, then fp8's block scales.
  const uint64_t row_bytes = *dtype_bytes(w.dtype, static_cast<uint64_t>(w.cols));
  dequantize_row(w.dtype, static_cast<const uint8_t*>(w.data) + row * row_bytes, out, w.cols);
  if (w.dtype == DType::kF8E4M3) {
    const int64_t n_col_blocks = ceil_div(w.cols, kFp8ScaleBlock);
    const float* scale = w.scale_inv + (row / kFp8ScaleBlock) * n_col_blocks;
    for (int64_t c = 0; c < w.cols; ++c) out[c] *= scale[c / kFp8ScaleBlock];
  }
}

void matmul_reference(const float* x, int64_t m, const WeightView& w, float* y) {
  SEEK_CHECK(validate_weight(w).ok(), "matmul_reference: invalid weight view");
  MatmulJob job;
  job.x = x;
  job.m = m;
  job.n = w.rows;
  job.k = w.cols;
  job.w = &w;
  job.y = y;
  matmul_detail::matmul_block_scalar(job, 0, m, 0, w.rows);
}

void quantize_activations_q8(const float* x, int64_t k, int8_t* q, float* d) {
  for (int64_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float scale = amax / 127.0f;
    const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
    d[b] = scale;
    for (int64_t j = 0; j < kQBlock; ++j) {
      const float v = std::nearbyint(xb[j] * inv);  // round to nearest even (default mode)
      q[b * kQBlock + j] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

void matmul_reference_q8act(const float* x, int64_t m, const WeightView& w, float* y) {
  SEEK_CHECK(is_q8act_dtype(w.dtype) && validate_weight(w).ok(),
             "matmul_reference_q8act: needs valid Q8_0/Q4_0 weights");
  const int64_t k = w.cols, n_blocks = k / kQBlock;
  std::vector<int8_t> xq(k);        // [k] i8
  std::vector<float> xd(n_blocks);  // [k / 32] f32
  for (int64_t i = 0; i < m; ++i) {
    quantize_activations_q8(x + i * k, k, xq.data(), xd.data());
    for (int64_t j = 0; j < w.rows; ++j) {
      float sum = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b) {
        int8_t qw[kQBlock];
        const float d_w = matmul_detail::weight_block_q8(w, j, b, qw);
        int32_t dot = 0;
        for (int64_t t = 0; t < kQBlock; ++t) dot += qw[t] * xq[b * kQBlock + t];
        sum += (xd[b] * d_w) * static_cast<float>(dot);
      }
      y[i * w.rows + j] = sum;
    }
  }
}

}  // namespace seekserve
