#include "core/dtype.h"

#include <array>
#include <bit>
#include <cctype>
#include <cmath>
#include <limits>

namespace seekserve {
namespace {

constexpr DTypeInfo kInfos[] = {
    {"f32", 1, 4, true, false},      {"f16", 1, 2, true, false},    {"bf16", 1, 2, true, false},
    {"fp8", 1, 1, true, false},      {"q8_0", 32, 34, false, true}, {"q4_0", 32, 18, false, true},
    {"q4_k", 256, 144, false, true}, {"i8", 1, 1, false, false},    {"u8", 1, 1, false, false},
    {"i16", 1, 2, false, false},     {"i32", 1, 4, false, false},   {"i64", 1, 8, false, false},
    {"f64", 1, 8, true, false},      {"bool", 1, 1, false, false},
};
static_assert(std::size(kInfos) == static_cast<size_t>(DType::kBool) + 1);

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::array<float, 256> make_fp8_table() {
  std::array<float, 256> t{};
  for (int v = 0; v < 256; ++v) {
    int sign = v >> 7, exp = (v >> 3) & 15, man = v & 7;
    float x;
    if (exp == 15 && man == 7) {
      x = std::numeric_limits<float>::quiet_NaN();
    } else if (exp == 0) {
      x = std::ldexp(static_cast<float>(man) / 8.0f, -6);
    } else {
      x = std::ldexp(1.0f + static_cast<float>(man) / 8.0f, exp - 7);
    }
    t[v] = sign ? -x : x;
  }
  return t;
}

}  // namespace

const DTypeInfo& dtype_info(DType type) {
  return kInfos[static_cast<size_t>(type)];
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (size_t i = 0; i < std::size(kInfos); ++i) {
    if (iequals(kInfos[i].name, name)) return static_cast<DType>(i);
  }
  if (iequals(name, "float32")) return DType::kF32;
  if (iequals(name, "float16")) return DType::kF16;
  if (iequals(name, "bfloat16")) return DType::kBF16;
  if (iequals(name, "f8_e4m3") || iequals(name, "fp8_e4m3") || iequals(name, "e4m3"))
    return DType::kF8E4M3;
  return std::nullopt;
}

std::optional<uint64_t> dtype_bytes(DType type, uint64_t n_elements) {
  const DTypeInfo& info = dtype_info(type);
  if (n_elements % info.block_elements != 0) return std::nullopt;
  uint64_t blocks = n_elements / info.block_elements;
  if (blocks > std::numeric_limits<uint64_t>::max() / info.block_bytes) return std::nullopt;
  return blocks * info.block_bytes;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  if (exp == 0) {
    float mag = std::ldexp(static_cast<float>(man), -24);  // subnormal or zero
    return sign ? -mag : mag;
  }
  uint32_t bits;
  if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return sign | 0x7e00;   // NaN
  if (absx >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: inf
  if (absx < 0x38800000u) {
    // Subnormal half (or zero): value = m * 2^-24, round to nearest even.
    float mag = std::bit_cast<float>(absx);
    float scaled = mag * 16777216.0f;  // 2^24, exact
    float r = std::nearbyint(scaled);  // default rounding mode: nearest even
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t exp = (absx >> 23) - 112;
  uint32_t man = absx & 0x7fffff;
  uint32_t half = (exp << 10) | (man >> 13);
  uint32_t rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;  // carries into exp correctly
  return sign | static_cast<uint16_t>(half);
}

float bf16_to_f32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

uint16_t f32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  uint32_t rounding = 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

float fp8_e4m3_to_f32(uint8_t v) {
  static const std::array<float, 256> table = make_fp8_table();
  return table[v];
}

uint8_t f32_to_fp8_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;  // saturate: plain RNE would turn > 464 into NaN
  // Smallest normal is 2^-6; below it the step is 2^-9 (subnormals).
  int exp;
  std::frexp(a, &exp);  // a = m * 2^exp, m in [0.5, 1)
  int e = exp - 1;      // a = 1.x * 2^e
  if (e < -6) e = -6;
  float step = std::ldexp(1.0f, e - 3);       // 3 mantissa bits
  float q = std::nearbyint(a / step) * step;  // exact division by a power of two
  if (q >= 448.0f) return sign | 0x7e;
  if (q == 0.0f) return sign;
  int qe;
  float qm = std::frexp(q, &qe);
  int biased = qe - 1 + 7;
  if (biased <= 0) {  // subnormal: q = man * 2^-9
    int man = static_cast<int>(std::ldexp(q, 9));
    return sign | static_cast<uint8_t>(man);
  }
  int man = static_cast<int>(std::ldexp(qm * 2.0f - 1.0f, 3));
  return sign | static_cast<uint8_t>((biased << 3) | man);
}

}  // namespace seekserve
