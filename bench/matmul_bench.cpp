// Matmul kernels against the memory roofline: Y[m, 8960] = X[m, 1536] · W[8960, 1536]ᵀ for BF16,
// FP8 (128×128 block scales) and Q8_0 weights, per path, m = 1 … 512. Each timed repetition
// multiplies through a set of distinct weight matrices larger than 480 MiB (the L3 of the
// reference machine), so small-m figures measure memory, not cache. The same binary first
// measures the machine's read bandwidth with a streaming AVX-512 (or AVX2) read over 2 GiB, and
// prints each result's weight-read rate as a fraction of it.
//
//   build/bench/matmul_bench [--threads N] [--reps R] [--max-m M] [--dtypes bf16,fp8,q8_0]
// FP8 also runs "avx512x": the kernel for CPUs without AVX512_VBMI (MatmulVariant::fp8_vbmi).

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"

namespace seekserve {
namespace {

using bench::median;
using bench::now_seconds;
using bench::read_bandwidth;

constexpr int64_t kRows = 8960;  // n: output features (an FFN up/gate projection of a 1.5B model)
constexpr int64_t kCols = 1536;  // k: input features
constexpr int64_t kWeightSetBytes = 520ll << 20;  // > 480 MiB

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

// The matrices back to back in one arena of 2 MiB pages, as the engine holds a model's weights.
struct WeightSet {
  DType dtype;
  std::unique_ptr<uint8_t, FreeDeleter> arena;
  std::vector<float> scale_inv;  // fp8: shared [70, 12] block scales
  std::vector<WeightView> views;
  int64_t matrix_bytes = 0;
};

WeightSet make_weight_set(DType dtype) {
  WeightSet set;
  set.dtype = dtype;
  set.matrix_bytes = static_cast<int64_t>(*dtype_bytes(dtype, kRows * kCols));
  const int64_t count = (kWeightSetBytes + set.matrix_bytes - 1) / set.matrix_bytes;
  set.scale_inv.assign(((kRows + 127) / 128) * ((kCols + 127) / 128), 1.0f / 448);
  const int64_t arena_bytes = (count * set.matrix_bytes + (2 << 20) - 1) / (2 << 20) * (2 << 20);
  set.arena.reset(static_cast<uint8_t*>(std::aligned_alloc(2 << 20, arena_bytes)));
  madvise(set.arena.get(), arena_bytes, MADV_HUGEPAGE);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (int64_t i = 0; i < count; ++i) {
    uint8_t* b = set.arena.get() + i * set.matrix_bytes;
    for (int64_t t = 0; t < set.matrix_bytes; ++t) {
      uint8_t& v = b[t];
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      v = static_cast<uint8_t>(state >> 24) & 0x3F;  // small, finite values in every format
    }
    if (dtype == DType::kQ8_0) {
      for (int64_t blk = 0; blk < set.matrix_bytes / 34; ++blk) {
        const uint16_t d = f32_to_f16(0.01f);
        std::memcpy(b + blk * 34, &d, 2);
      }
    }
    set.views.push_back(WeightView{dtype, b, kRows, kCols,
                                   dtype == DType::kF8E4M3 ? set.scale_inv.data() : nullptr});
  }
  return set;
}

}  // namespace
}  // namespace seekserve
int main(int argc, char** argv) {
  using namespace seekserve;
  int threads = 2, reps = 5;
  int64_t max_m = 512;
  std::string dtypes = "bf16,fp8,q8_0";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (flag == "--reps")
      reps = std::atoi(argv[i + 1]);
    else if (flag == "--max-m")
      max_m = std::atoll(argv[i + 1]);
    else if (flag == "--dtypes")
      dtypes = argv[i + 1];
  }
  ThreadPool pool(threads);
  ThreadPool single(1);
  const double bw1 = read_bandwidth(single, reps);
  const double bw = read_bandwidth(pool, reps);
  std::printf("read bandwidth over 2 GiB: %.1f GB/s (%d threads), %.1f GB/s (1 thread)\n", bw,
              threads, bw1);
  std::printf(
      "shape: Y[m, %lld] = X[m, %lld] * W^T; weights cycled through > 480 MiB; median of %d\n",
      static_cast<long long>(kRows), static_cast<long long>(kCols), reps);
  const IsaLevel top = max_isa_level(cpu_features());
  std::vector<IsaLevel> paths;
  for (IsaLevel p : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512, IsaLevel::kAmx}) {
    if (p <= top) paths.push_back(p);
  }
  std::printf("%-6s %-7s %5s %10s %10s %9s %9s\n", "dtype", "path", "m", "ms/matrix", "GFLOP/s",
              "GB/s(W)", "roofline");
  for (DType dtype : {DType::kBF16, DType::kF8E4M3, DType::kQ8_0}) {
    if (dtypes.find(std::string(dtype_name(dtype))) == std::string::npos) continue;
    const WeightSet set = make_weight_set(dtype);
    // FP8 on kAvx512 runs twice: the default kernel (table decode where the CPU has AVX512_VBMI)
    // and "avx512x", the E4M3 → f16 bit-move kernel that CPUs without VBMI run.
    std::vector<std::pair<IsaLevel, bool>> arms;
    for (IsaLevel path : paths) {
      arms.emplace_back(path, true);
      if (dtype == DType::kF8E4M3 && path == IsaLevel::kAvx512) arms.emplace_back(path, false);
    }
    for (const auto& [path, fp8_vbmi] : arms) {
      MatmulVariant variant;
      variant.fp8_vbmi = fp8_vbmi;
      const std::string path_name = std::string(isa_level_name(path)) + (fp8_vbmi ? "" : "x");
      for (int64_t m : {1, 4, 16, 32, 128, 512}) {
        if (m > max_m) continue;
        if (path == IsaLevel::kScalar && m > 1) continue;  // far too slow to matter
        std::vector<float> x(m * kCols, 0.5f), y(m * kRows);
        // A scalar rep over all matrices takes seconds: time fewer of them.
        const int64_t n_mats =
            path == IsaLevel::kScalar ? 2 : static_cast<int64_t>(set.views.size());
        std::vector<double> times;
        for (int r = 0; r < reps; ++r) {
          const double t0 = now_seconds();
          for (int64_t i = 0; i < n_mats; ++i) {
            const Status st =
                matmul_on_path(pool, path, x.data(), m, set.views[i], y.data(), variant);
            if (!st.ok()) {
              std::fprintf(stderr, "%s\n", st.to_string().c_str());
              return 1;
            }
          }
          times.push_back((now_seconds() - t0) / n_mats);
        }
        const double t = median(times);
        const double gflops = 2.0 * m * kRows * kCols / t / 1e9;
        const double gbs = set.matrix_bytes / t / 1e9;
        std::printf("%-6s %-7s %5lld %10.3f %10.1f %9.2f %8.0f%%\n",
                    std::string(dtype_name(dtype)).c_str(), path_name.c_str(),
                    static_cast<long long>(m), t * 1e3, gflops, gbs, 100.0 * gbs / bw);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
