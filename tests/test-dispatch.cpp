#include <gtest/gtest.h>

#include <string>

#include "core/cpu-features.h"
#include "kernels/ternary-matmul.h"

namespace bitnet::kernels {
namespace {

TEST(Dispatch, ScalarIsAlwaysAvailableAndFirst) {
  const auto isas = available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::Scalar);
  EXPECT_EQ(select_kernels("scalar").isa, Isa::Scalar);
}

TEST(Dispatch, DefaultPicksTheWidestAvailable) {
  const KernelTable& t = select_kernels(nullptr);
  const CpuFeatures& f = cpu_features();
#if defined(__x86_64__)
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.amx_int8 &&
      kernels_for(Isa::Amx)) {
    EXPECT_EQ(t.isa, Isa::Amx);
  } else if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni) {
    EXPECT_EQ(t.isa, Isa::Avx512);
  } else if (f.avx2 && f.fma && f.f16c && f.avx_vnni) {
    EXPECT_EQ(t.isa, Isa::AvxVnni);
  } else if (f.avx2 && f.fma && f.f16c) {
    EXPECT_EQ(t.isa, Isa::Avx2);
  } else {
    EXPECT_EQ(t.isa, Isa::Scalar);
  }
#elif defined(__aarch64__)
  EXPECT_EQ(t.isa, f.dotprod ? Isa::NeonDot : Isa::Neon);
#endif
  EXPECT_EQ(select_kernels("").isa, t.isa);
}

TEST(Dispatch, ForcingEachAvailableIsaWorks) {
  for (Isa isa : available_isas()) EXPECT_EQ(select_kernels(isa_name(isa)).isa, isa);
}

TEST(Dispatch, ForcingAnUnusableIsaFailsLoudly) {
  const auto avail = available_isas();
  for (int i = 0; i < kNumIsas; ++i) {
    const Isa isa = static_cast<Isa>(i);
    if (std::find(avail.begin(), avail.end(), isa) != avail.end()) continue;
    try {
      select_kernels(isa_name(isa));
      FAIL() << "forcing " << isa_name(isa) << " did not fail";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("BITNET_FORCE_ISA=") + isa_name(isa)),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(Dispatch, PreferredLayouts) {
  // T1 only where its digits decode on an unsigned-byte dot (AVX-512 VNNI); the others run T2.
  for (Isa isa : available_isas()) {
    EXPECT_EQ(kernels_for(isa)->preferred_layout,
              isa == Isa::Avx512 ? TernaryLayout::T1 : TernaryLayout::T2)
        << isa_name(isa);
  }
}

TEST(Dispatch, PreferredLayoutOnThisCpu) {
  // AVX-512 keeps the table's T1 only on Zen 5 (AMD family 0x1a) and packs T2 on Zen 4 and Intel;
  // every other ISA keeps the table's choice.
  CpuFeatures zen4;
  zen4.amd = true;
  zen4.family = 0x19;
  CpuFeatures zen5 = zen4;
  zen5.family = 0x1a;
  CpuFeatures intel;
  intel.family = 6;
  for (Isa isa : available_isas()) {
    const KernelTable& t = *kernels_for(isa);
    EXPECT_EQ(preferred_layout(t, zen4),
              isa == Isa::Avx512 ? TernaryLayout::T2 : t.preferred_layout)
        << isa_name(isa);
    EXPECT_EQ(preferred_layout(t, zen5), t.preferred_layout) << isa_name(isa);
    EXPECT_EQ(preferred_layout(t, intel),
              isa == Isa::Avx512 ? TernaryLayout::T2 : t.preferred_layout)
        << isa_name(isa);
    EXPECT_EQ(preferred_layout(t), preferred_layout(t, cpu_features())) << isa_name(isa);
  }
}

TEST(Dispatch, UnknownNameListsTheChoices) {
  try {
    select_kernels("sse9");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("scalar, avx2, avxvnni, avx512, amx, neon or neondot"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace bitnet::kernels
