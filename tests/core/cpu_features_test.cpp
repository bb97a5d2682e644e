#include "core/cpu_features.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

// The kernel's view of the CPU: "flags" of the first processor in /proc/cpuinfo. Linux hides
// flags whose register state it does not enable, so these should equal our CPUID+XGETBV reading.
std::set<std::string> proc_cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> flags;
      for (std::string w; words >> w;) flags.insert(w);
      return flags;
    }
  }
  return {};
}

TEST(CpuFeaturesTest, MatchesProcCpuinfo) {
  const std::set<std::string> flags = proc_cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags line on this system";
  const CpuFeatures& f = cpu_features();
  auto has = [&](const char* name) { return flags.count(name) > 0; };
  EXPECT_EQ(f.avx2, has("avx2"));
  EXPECT_EQ(f.fma, has("fma"));
  EXPECT_EQ(f.f16c, has("f16c"));
  EXPECT_EQ(f.avx512f, has("avx512f"));
  EXPECT_EQ(f.avx512bw, has("avx512bw"));
  EXPECT_EQ(f.avx512vl, has("avx512vl"));
  EXPECT_EQ(f.avx512dq, has("avx512dq"));
  EXPECT_EQ(f.avx512_bf16, has("avx512_bf16"));
  EXPECT_EQ(f.avx512_vnni, has("avx512_vnni"));
  EXPECT_EQ(f.avx512_fp16, has("avx512_fp16"));
  EXPECT_EQ(f.amx_tile, has("amx_tile"));
  EXPECT_EQ(f.amx_bf16, has("amx_bf16"));
  EXPECT_EQ(f.amx_int8, has("amx_int8"));
}

TEST(CpuFeaturesTest, LevelsFollowFeatures) {
  CpuFeatures f;
  EXPECT_EQ(max_isa_level(f), IsaLevel::kScalar);
  f.avx2 = f.fma = f.f16c = true;
  EXPECT_EQ(max_isa_level(f), IsaLevel::kAvx2);
  f.avx512f = f.avx512bw = f.avx512vl = true;
  EXPECT_EQ(max_isa_level(f), IsaLevel::kAvx2);  // DQ missing
  f.avx512dq = true;
  EXPECT_EQ(max_isa_level(f), IsaLevel::kAvx512);
  f.amx_tile = true;
  EXPECT_EQ(max_isa_level(f), IsaLevel::kAvx512);  // AMX-BF16 missing
  f.amx_bf16 = true;
  EXPECT_EQ(max_isa_level(f), IsaLevel::kAvx512);  // AVX512_BF16 missing
  f.avx512_bf16 = true;
  EXPECT_EQ(max_isa_level(f), IsaLevel::kAmx);
}

TEST(CpuFeaturesTest, LevelNamesRoundTrip) {
  for (IsaLevel level : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512, IsaLevel::kAmx}) {
    EXPECT_EQ(isa_level_from_name(isa_level_name(level)), level);
  }
  EXPECT_FALSE(isa_level_from_name("sse2").has_value());
}

TEST(CpuFeaturesTest, EnvironmentCapsTheLevel) {
  const IsaLevel hw = max_isa_level(cpu_features());
  ASSERT_EQ(setenv("SEEKSERVE_ISA", "scalar", 1), 0);
  EXPECT_EQ(active_isa_level(), IsaLevel::kScalar);
  ASSERT_EQ(setenv("SEEKSERVE_ISA", "avx2", 1), 0);
  EXPECT_EQ(active_isa_level(), std::min(hw, IsaLevel::kAvx2));
  ASSERT_EQ(setenv("SEEKSERVE_ISA", "bogus", 1), 0);  // ignored with a warning
  const IsaLevel uncapped = active_isa_level();
  ASSERT_EQ(unsetenv("SEEKSERVE_ISA"), 0);
  EXPECT_EQ(active_isa_level(), uncapped);
  EXPECT_LE(uncapped, hw);
  // Only a refused AMX permission may lower the level below the hardware's.
  if (uncapped != hw) {
    EXPECT_EQ(hw, IsaLevel::kAmx);
  }
}

TEST(CpuFeaturesTest, AmxPermissionIsIdempotentAndFollowsTheCpu) {
  const Status first = request_amx_permission();
  const Status second = request_amx_permission();
  EXPECT_EQ(first.ok(), second.ok());
  EXPECT_EQ(first.message(), second.message());
  if (!cpu_features().amx_tile) {
    EXPECT_FALSE(first.ok()) << "no AMX on this CPU, the request must fail";
  } else {
    EXPECT_TRUE(first.ok()) << first.to_string();
  }
}

}  // namespace
}  // namespace seekserve
