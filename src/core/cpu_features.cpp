#include "core/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "core/log.h"

namespace seekserve {
namespace {

struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) {
  CpuidRegs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

bool bit(uint32_t word, int index) {
  return (word >> index) & 1u;
}

// XCR0: which register states the OS saves. Only valid when CPUID.1:ECX.OSXSAVE is set. Inline asm
// so that this file needs no -mxsave.
uint64_t xgetbv0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  const uint32_t max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  const CpuidRegs l1 = cpuid(1, 0);
  const bool osxsave = bit(l1.ecx, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;                    // SSE + AVX (YMM) state
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;     // opmask + ZMM_Hi256 + Hi16_ZMM
  const bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG + XTILEDATA

  const bool avx = bit(l1.ecx, 28) && os_avx;
  f.fma = avx && bit(l1.ecx, 12);
  f.f16c = avx && bit(l1.ecx, 29);
  if (max_leaf < 7) return f;
  const CpuidRegs l7 = cpuid(7, 0);
  const CpuidRegs l7s1 = l7.eax >= 1 ? cpuid(7, 1) : CpuidRegs{};
  f.avx2 = avx && bit(l7.ebx, 5);
  f.avx512f = os_avx512 && bit(l7.ebx, 16);
  f.avx512dq = f.avx512f && bit(l7.ebx, 17);
  f.avx512bw = f.avx512f && bit(l7.ebx, 30);
  f.avx512vl = f.avx512f && bit(l7.ebx, 31);
  f.avx512_vnni = f.avx512f && bit(l7.ecx, 11);
  f.avx512_vbmi = f.avx512f && bit(l7.ecx, 1);
  f.avx512_fp16 = f.avx512f && bit(l7.edx, 23);
  f.avx512_bf16 = f.avx512f && bit(l7s1.eax, 5);
  f.amx_bf16 = os_amx && bit(l7.edx, 22);
  f.amx_tile = os_amx && bit(l7.edx, 24);
  f.amx_int8 = os_amx && bit(l7.edx, 25);
  return f;
}

Status request_amx_permission_once() {
  const CpuFeatures& f = cpu_features();
  if (!f.amx_tile) return unimplemented("AMX: the CPU or the OS does not support AMX tiles");
#if defined(__linux__)
  constexpr long kArchGetXcompPerm = 0x1022;
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    return io_error("AMX: arch_prctl(ARCH_REQ_XCOMP_PERM) failed: {}", std::strerror(errno));
  }
  uint64_t bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0 ||
      !(bitmask & (1ull << kXfeatureXtiledata))) {
    return io_error("AMX: the kernel did not grant the tile data state");
  }
  return Status::ok_status();
#else
  return unimplemented("AMX: permission request is implemented for Linux only");
#endif
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string_view isa_level_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::kScalar:
      return "scalar";
    case IsaLevel::kAvx2:
      return "avx2";
    case IsaLevel::kAvx512:
      return "avx512";
    case IsaLevel::kAmx:
      return "amx";
  }
  return "?";
}

std::optional<IsaLevel> isa_level_from_name(std::string_view name) {
  for (IsaLevel level : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512, IsaLevel::kAmx}) {
    if (isa_level_name(level) == name) return level;
  }
  return std::nullopt;
}

IsaLevel max_isa_level(const CpuFeatures& f) {
  if (!(f.avx2 && f.fma && f.f16c)) return IsaLevel::kScalar;
  if (!(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)) return IsaLevel::kAvx2;
  if (!(f.amx_tile && f.amx_bf16 && f.avx512_bf16)) return IsaLevel::kAvx512;
  return IsaLevel::kAmx;
}

IsaLevel active_isa_level() {
  IsaLevel level = max_isa_level(cpu_features());
  if (const char* env = std::getenv("SEEKSERVE_ISA"); env != nullptr && env[0] != '\0') {
    if (std::optional<IsaLevel> cap = isa_level_from_name(env)) {
      if (*cap < level) level = *cap;
    } else {
      static std::once_flag warned;
      std::call_once(warned, [env] {
        log_warn("SEEKSERVE_ISA={} is not one of scalar|avx2|avx512|amx; ignored", env);
      });
    }
  }
  if (level == IsaLevel::kAmx && !request_amx_permission().ok()) level = IsaLevel::kAvx512;
  return level;
}

Status request_amx_permission() {
  static const Status status = [] {
    Status s = request_amx_permission_once();
    if (!s.ok()) log_debug("{}", s.message());
    return s;
  }();
  return status;
}

}  // namespace seekserve
