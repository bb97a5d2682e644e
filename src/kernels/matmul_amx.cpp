// kAmx matmul kernel. Compiled with AMX-TILE/AMX-BF16 + AVX-512 flags (CMakeLists.txt); the tile
// instructions run only after the CPU was checked and request_amx_permission() succeeded.
//
// Computed as Yᵀ = W · Xᵀ so that weights need no transpose: the A tiles are 16 weight rows × 32 k
// in bf16, read straight from a per-thread strip of 32 rows widened to bf16 (32 × k_pad × 2 bytes,
// in L2, never a whole copy of the weights); the B tiles are Xᵀ in the VNNI pair layout, packed
// once per call (amx_pack_x). Four C tiles hold a 32 (n) × 32 (m) block of Yᵀ in f32 over the whole
// k.
//
// Determinism: C[n][m] depends only on weight row n and activation row m, summed over k chunks in
// order, so a row's result does not depend on m or on its slot in the tile.
//
// The tile loop is a template over the tile operations: RealTiles issues AMX instructions,
// EmulatedTiles computes the same operations in scalar code (TDPBF16PS as Intel documents it:
// per pair, c += a0·b0 then c += a1·b1, products exact in f32) so that the layout and loop are
// tested on CPUs without AMX.

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "kernels/matmul_kernels.h"

namespace seekserve::matmul_detail {
namespace {

constexpr int kTileRows = 16;
constexpr int kTileBytesPerRow = 64;
constexpr int64_t kChunk = 32;  // k per tile step (32 bf16 = 64 bytes)
constexpr int64_t kTileElements = kTileRows * kTileBytesPerRow / 2;  // u16 elements per tile

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

struct alignas(64) TileConfig {
  uint8_t palette_id = 0;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0..3: C (f32 16×16); 4, 5: A = weight rows 0-15 / 16-31; 6, 7: B = activation rows
// 0-15 / 16-31. The tile number must be a literal in the intrinsics, hence the fixed names.
struct RealTiles {
  RealTiles() {
    TileConfig config;
    config.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
      config.colsb[t] = kTileBytesPerRow;
      config.rows[t] = kTileRows;
    }
    _tile_loadconfig(&config);
  }
  ~RealTiles() { _tile_release(); }
  void zero_c() {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  void load_a(const uint16_t* w0, const uint16_t* w1, int64_t stride_bytes) {
    _tile_loadd(4, w0, stride_bytes);
    _tile_loadd(5, w1, stride_bytes);
  }
  void load_b(const uint16_t* x0, const uint16_t* x1) {
    _tile_loadd(6, x0, kTileBytesPerRow);
    _tile_loadd(7, x1, kTileBytesPerRow);
  }
  void multiply() {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  void store_c(float* c /*[4][16][16]*/) {
    _tile_stored(0, c + 0 * 256, kTileBytesPerRow);
    _tile_stored(1, c + 1 * 256, kTileBytesPerRow);
    _tile_stored(2, c + 2 * 256, kTileBytesPerRow);
    _tile_stored(3, c + 3 * 256, kTileBytesPerRow);
  }
};

struct EmulatedTiles {
  float c[4][16][16] = {};     // [tile][row][col] f32
  uint16_t a[2][16][32] = {};  // [tile][row][k] bf16
  uint16_t b[2][16][32] = {};  // [tile][pair][col * 2 + e] bf16

  void zero_c() { std::memset(c, 0, sizeof c); }
  static void load(uint16_t (&t)[16][32], const uint16_t* p, int64_t stride_bytes) {
    for (int r = 0; r < 16; ++r) std::memcpy(t[r], p + r * (stride_bytes / 2), 64);
  }
  void load_a(const uint16_t* w0, const uint16_t* w1, int64_t stride_bytes) {
    load(a[0], w0, stride_bytes);
    load(a[1], w1, stride_bytes);
  }
  void load_b(const uint16_t* x0, const uint16_t* x1) {
    load(b[0], x0, kTileBytesPerRow);
    load(b[1], x1, kTileBytesPerRow);
  }
  void dp(float (&ct)[16][16], const uint16_t (&at)[16][32], const uint16_t (&bt)[16][32]) {
    for (int r = 0; r < 16; ++r) {
      for (int col = 0; col < 16; ++col) {
        float sum = ct[r][col];
        for (int p = 0; p < 16; ++p) {
          sum += bf16_to_f32(at[r][2 * p]) * bf16_to_f32(bt[p][2 * col]);
          sum += bf16_to_f32(at[r][2 * p + 1]) * bf16_to_f32(bt[p][2 * col + 1]);
        }
        ct[r][col] = sum;
      }
    }
  }
  void multiply() {
    dp(c[0], a[0], b[0]);
    dp(c[1], a[0], b[1]);
    dp(c[2], a[1], b[0]);
    dp(c[3], a[1], b[1]);
  }
  void store_c(float* out) { std::memcpy(out, c, sizeof c); }
};

template <typename Tiles>
void block_amx(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
               uint16_t* strip /*[kAmxStripRows, k_pad] bf16*/) {
  const int64_t k_chunks = ceil_div(job.k, kChunk);
  const int64_t k_pad = k_chunks * kChunk;
  Tiles tiles;
  alignas(64) float c[4][16][16];  // [tile][n][m] f32: tile t covers n half t/2, m half t%2
  for (int64_t js = j0; js < j1; js += kAmxStripRows) {
    const int64_t n_rows = std::min(kAmxStripRows, j1 - js);
    avx512_rows_to_bf16(*job.w, js, n_rows, k_pad, strip);
    if (n_rows < kAmxStripRows) {
      std::memset(strip + n_rows * k_pad, 0, (kAmxStripRows - n_rows) * k_pad * 2);
    }
    for (int64_t is = i0; is < i1; is += kAmxRowBlock) {
      tiles.zero_c();
      const uint16_t* x0 = job.x_tiles + (is / 16) * k_chunks * kTileElements;
      const uint16_t* x1 = x0 + k_chunks * kTileElements;
      for (int64_t ch = 0; ch < k_chunks; ++ch) {
        tiles.load_a(strip + ch * kChunk, strip + 16 * k_pad + ch * kChunk, k_pad * 2);
        tiles.load_b(x0 + ch * kTileElements, x1 + ch * kTileElements);
        tiles.multiply();
      }
      tiles.store_c(&c[0][0][0]);
      for (int t = 0; t < 4; ++t) {
        const int64_t n_base = js + (t / 2) * 16, m_base = is + (t % 2) * 16;
        for (int mm = 0; mm < 16 && m_base + mm < i1; ++mm) {
          for (int nn = 0; nn < 16 && n_base + nn < js + n_rows; ++nn) {
            job.y[(m_base + mm) * job.n + n_base + nn] = c[t][nn][mm];
          }
        }
      }
    }
  }
}

}  // namespace

int64_t amx_x_tiles_elements(int64_t m, int64_t k) {
  return ceil_div(m, kAmxRowBlock) * kAmxRowBlock / 16 * ceil_div(k, kChunk) * kTileElements;
}

void amx_pack_x(const float* x, int64_t m, int64_t k, int64_t i0, int64_t i1, uint16_t* x_tiles) {
  const int64_t k_chunks = ceil_div(k, kChunk);
  alignas(64) uint32_t pairs[16][16];  // [row][pair] two bf16 of one chunk: k = 2·pair, 2·pair+1
  for (int64_t ib = i0; ib < i1; ib += 16) {
    uint16_t* out = x_tiles + (ib / 16) * k_chunks * kTileElements;
    for (int64_t ch = 0; ch < k_chunks; ++ch) {
      for (int r = 0; r < 16; ++r) {
        for (int half = 0; half < 2; ++half) {
          const int64_t col = ch * kChunk + half * 16;
          __m512 v = _mm512_setzero_ps();
          if (ib + r < m && col < k) {
            const int64_t left = k - col;
            v = _mm512_maskz_loadu_ps(left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1),
                                      x + (ib + r) * k + col);
          }
          _mm256_store_si256(reinterpret_cast<__m256i*>(&pairs[r][half * 8]),
                             (__m256i)_mm512_cvtneps_pbh(v));
        }
      }
      // VNNI pair layout: tile[p][r][e] = x[r][2p + e], a 16×16 transpose of the 32-bit pairs.
      uint16_t* tile = out + ch * kTileElements;
      for (int p = 0; p < 16; ++p) {
        for (int r = 0; r < 16; ++r) std::memcpy(tile + (p * 16 + r) * 2, &pairs[r][p], 4);
      }
    }
  }
}

int64_t amx_scratch_elements(int64_t k) {
  return kAmxStripRows * ceil_div(k, kChunk) * kChunk;
}

void matmul_block_amx(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                      uint16_t* scratch, bool emulated) {
  if (emulated) return block_amx<EmulatedTiles>(job, i0, i1, j0, j1, scratch);
  return block_amx<RealTiles>(job, i0, i1, j0, j1, scratch);
}

}  // namespace seekserve::matmul_detail
