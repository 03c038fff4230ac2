#include <gtest/gtest.h>

#include "core/cpu-features.h"

namespace bitnet {
namespace {

TEST(CpuFeatures, AgreesWithCompilerBuiltins) {
  const CpuFeatures& f = cpu_features();
  EXPECT_FALSE(f.describe().empty());
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(f.avx2, static_cast<bool>(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(f.fma, static_cast<bool>(__builtin_cpu_supports("fma")));
  EXPECT_EQ(f.avx512f, static_cast<bool>(__builtin_cpu_supports("avx512f")));
  EXPECT_EQ(f.avx512bw, static_cast<bool>(__builtin_cpu_supports("avx512bw")));
  EXPECT_EQ(f.avx512vl, static_cast<bool>(__builtin_cpu_supports("avx512vl")));
  EXPECT_EQ(f.avx512vnni, static_cast<bool>(__builtin_cpu_supports("avx512vnni")));
  EXPECT_FALSE(f.neon);
#elif defined(__aarch64__)
  EXPECT_TRUE(f.neon);
#endif
}

TEST(CpuFeatures, DetectedOnce) {
  EXPECT_EQ(&cpu_features(), &cpu_features());
}

}  // namespace
}  // namespace bitnet
