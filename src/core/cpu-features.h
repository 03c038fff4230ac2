// CPU feature detection. This file and its .cpp are compiled without ISA flags: detection must run
// on every CPU, including ones that lack the features being probed.
#pragma once

#include <string>

namespace bitnet {

struct CpuFeatures {
  // x86-64
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx_vnni = false;  // VEX-encoded VNNI (vpdpbusd on ymm without AVX-512)
  // AMX-TILE and AMX-INT8, the OS saving the tile state (XCR0) and, on Linux, granting it to this
  // process (detection requests the permission, ARCH_REQ_XCOMP_PERM, once for the whole process).
  bool amx_int8 = false;
  // aarch64
  bool neon = false;
  bool dotprod = false;

  // x86: vendor and display family / model (CPUID leaf 1), for choices that differ between
  // microarchitectures of one ISA (kernels::preferred_layout); zero when unknown.
  bool amd = false;
  int family = 0, model = 0;

  std::string model_name;        // best effort, may be empty
  std::string describe() const;  // e.g. "avx2 fma f16c avx512f avx512bw avx512vl avx512vnni"
};

// Detected once (thread-safe static), including OS support for the vector register state (XGETBV).
const CpuFeatures& cpu_features();

}  // namespace bitnet
