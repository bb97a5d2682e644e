#pragma once
// What the processor (and the operating system) let this process run, read once from CPUID and
// XGETBV, and the instruction-set level the kernels dispatch to.
//
// A feature counts only if both the CPU has it and the OS saves its register state on a context
// switch (XCR0): AVX needs the YMM state, AVX-512 the opmask + ZMM states, AMX the tile states.
// On Linux AMX additionally needs a per-process permission (request_amx_permission()); until it is
// granted the first tile instruction dies with SIGILL.

#include <optional>
#include <string_view>

#include "core/status.h"

namespace seekserve {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_bf16 = false;  // vdpbf16ps, vcvtneps2bf16
  bool avx512_vnni = false;  // vpdpbusd
  bool avx512_vbmi = false;  // vpermb, vpermi2b (byte permutes across the register)
  bool avx512_fp16 = false;
  bool amx_tile = false;  // CPU + OS (XCR0) support; the Linux permission is separate
  bool amx_bf16 = false;
  bool amx_int8 = false;
};

// Read once per process (thread-safe; later calls return the cached value).
const CpuFeatures& cpu_features();

// Kernel instruction-set levels, ordered: a level implies every level below it.
//   kScalar: plain C++.            kAvx2: AVX2 + FMA + F16C.
//   kAvx512: F + BW + VL + DQ (BF16/VNNI used inside when present).
//   kAmx:    kAvx512 + AVX512_BF16 + AMX-TILE + AMX-BF16, with the Linux permission granted
//            (AVX512_BF16 converts f32 to bf16 for the tiles; every AMX CPU has it).
enum class IsaLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };

std::string_view isa_level_name(IsaLevel level);  // "scalar", "avx2", "avx512", "amx"
std::optional<IsaLevel> isa_level_from_name(std::string_view name);

// The highest level `features` supports, ignoring the AMX permission.
IsaLevel max_isa_level(const CpuFeatures& features);

// The level the kernels should use: max_isa_level(cpu_features()), capped by the environment
// variable SEEKSERVE_ISA=scalar|avx2|avx512|amx when set (an unknown value is ignored with a
// warning), and lowered below kAmx when request_amx_permission() fails. Read the environment on
// every call (tests change it); thread-safe.
IsaLevel active_isa_level();

// Asks Linux for permission to use the AMX tile data state (arch_prctl(ARCH_REQ_XCOMP_PERM,
// XFEATURE_XTILEDATA)). Idempotent and thread-safe: the first call decides, later calls return the
// same answer. Fails where the CPU or OS lacks AMX or the kernel refuses.
Status request_amx_permission();

}  // namespace seekserve
