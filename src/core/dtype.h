#pragma once
// Element and block types of tensors, and scalar conversions between them and f32.
// Block-quantised types (Q8_0, Q4_0, Q4_K) store `block_elements` values in `block_bytes` bytes;
// plain types have block_elements = 1.

#include <cstdint>
#include <optional>
#include <string_view>

namespace seekserve {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kF8E4M3,  // OCP E4M3 "fn": max 448, no infinities, NaN = S.1111.111
  kQ8_0,    // 32 values: f16 d + 32 x i8
  kQ4_0,    // 32 values: f16 d + 16 bytes of nibbles
  kQ4_K,    // 256 values: f16 d, f16 dmin, 12 bytes scales/mins, 128 bytes nibbles
  kI8,
  kU8,
  kI16,
  kI32,
  kI64,
  kF64,
  kBool,
};

struct DTypeInfo {
  std::string_view name;  // lower-case name used on the command line and in tables: "q8_0"
  uint32_t block_elements;
  uint32_t block_bytes;
  bool is_float;      // plain floating-point element type
  bool is_quantized;  // block-quantised (needs a scale to read)
};

const DTypeInfo& dtype_info(DType type);
inline std::string_view dtype_name(DType type) {
  return dtype_info(type).name;
}
std::optional<DType> dtype_from_name(std::string_view name);  // case-insensitive

// Bytes taken by n_elements values; nullopt if n_elements is not a whole number of blocks or
// the byte count overflows.
std::optional<uint64_t> dtype_bytes(DType type, uint64_t n_elements);

// Scalar conversions (the reference every fast path is tested against).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even; overflow -> inf
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);  // round to nearest even; NaN stays NaN
float fp8_e4m3_to_f32(uint8_t v);
uint8_t f32_to_fp8_e4m3(float f);  // round to nearest even, saturating at +-448; NaN -> 0x7F

}  // namespace seekserve
