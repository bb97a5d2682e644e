#pragma once
// Helpers shared by the benchmark binaries (header only: bench/*.cpp are one binary each).

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace seekserve::bench {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

__attribute__((target("avx512f"))) inline uint64_t read_avx512(const uint8_t* p, int64_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 256 <= bytes; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
  }
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
  uint64_t sum = 0;
  for (uint64_t v : lanes) sum += v;
  return sum;
}

__attribute__((target("avx2"))) inline uint64_t read_avx2(const uint8_t* p, int64_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 128 <= bytes; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// Sum of the bytes (keeps a streaming read from being optimised away).
inline uint64_t read_bytes(const uint8_t* p, int64_t bytes) {
  return cpu_features().avx512f ? read_avx512(p, bytes) : read_avx2(p, bytes);
}

// GB/s of a streaming read over `bytes` (default 2 GiB, in 2 MiB pages as the engine holds its
// weights) on the pool's threads; median of `reps`.
inline double read_bandwidth(ThreadPool& pool, int reps, int64_t bytes = 2ll << 30) {
  auto* buffer = static_cast<uint8_t*>(std::aligned_alloc(2 << 20, bytes));
  madvise(buffer, bytes, MADV_HUGEPAGE);
  std::memset(buffer, 1, bytes);
  const int n = pool.n_threads();
  std::vector<uint64_t> sink(n);
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_seconds();
    pool.parallel_for(n, [&](int64_t task, int) {
      const int64_t part = bytes / n / 256 * 256;
      const uint8_t* p = buffer + task * part;
      sink[task] += read_bytes(p, part);
    });
    times.push_back(now_seconds() - t0);
  }
  std::free(buffer);
  uint64_t total = 0;
  for (uint64_t s : sink) total += s;
  if (total == 42) std::printf(" ");  // keep the reads
  return bytes / median(times) / 1e9;
}

// A field of /proc/self/status in bytes (VmHWM: peak resident set, VmRSS: now); 0 if absent.
inline uint64_t proc_status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
  }
  return 0;
}

}  // namespace seekserve::bench
