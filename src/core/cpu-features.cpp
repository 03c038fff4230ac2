#include "core/cpu-features.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

namespace bitnet {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
unsigned long long xgetbv0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

// Linux keeps the AMX tile data (XTILEDATA, state component 18) off until a process asks for it;
// without the grant the first tile instruction faults. Kernels before 5.16 have no such request
// and do not enable the state in XCR0 either.
bool request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr unsigned long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

void detect(CpuFeatures& f) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    f.amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;  // "AuthenticAMD"
  }
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  const int base_family = static_cast<int>((a >> 8) & 0xf);
  f.family = base_family == 0xf ? base_family + static_cast<int>((a >> 20) & 0xff) : base_family;
  f.model = static_cast<int>((a >> 4) & 0xf);
  if (base_family == 0xf || base_family == 0x6) f.model |= static_cast<int>((a >> 16) & 0xf) << 4;
  const bool osxsave = (c >> 27) & 1;
  const bool avx = (c >> 28) & 1;
  f.fma = (c >> 12) & 1;
  f.f16c = (c >> 29) & 1;
  if (!osxsave || !avx) {
    f.fma = f.f16c = false;
    return;
  }
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_ok = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
  const bool zmm_ok = (xcr0 & 0xe6) == 0xe6;  // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (!ymm_ok) {
    f.fma = f.f16c = false;
    return;
  }
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  if (zmm_ok) {
    f.avx512f = (b >> 16) & 1;
    f.avx512bw = (b >> 30) & 1;
    f.avx512vl = (b >> 31) & 1;
    f.avx512vnni = (c >> 11) & 1;
  }
  const bool tiles_ok = (xcr0 & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA
  if (tiles_ok && ((d >> 24) & 1) && ((d >> 25) & 1)) f.amx_int8 = request_amx_permission();
  __cpuid_count(7, 1, a, b, c, d);
  f.avx_vnni = (a >> 4) & 1;

  unsigned brand[12] = {};
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002u + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2],
                  &brand[4 * i + 3]);
    }
    f.model_name.assign(reinterpret_cast<const char*>(brand), sizeof(brand));
    f.model_name = f.model_name.c_str();  // cut at the first NUL
    while (!f.model_name.empty() && f.model_name.back() == ' ') f.model_name.pop_back();
  }
}
#elif defined(__aarch64__)
void detect(CpuFeatures& f) {
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  f.neon = (hw & HWCAP_ASIMD) != 0;
  f.dotprod = (hw & HWCAP_ASIMDDP) != 0;
#else
  f.neon = true;  // mandatory in AArch64
#endif
}
#else
void detect(CpuFeatures&) {}
#endif

}  // namespace

std::string CpuFeatures::describe() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512vnni, "avx512vnni");
  add(avx_vnni, "avxvnni");
  add(amx_int8, "amx-int8");
  add(neon, "neon");
  add(dotprod, "dotprod");
  return s.empty() ? std::string("(no SIMD extensions detected)") : s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
    detect(f);
    return f;
  }();
  return features;
}

}  // namespace bitnet
