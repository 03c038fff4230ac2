// Kernel selection. Compiled without ISA flags: it only reads CPU features and picks a table.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/cpu-features.h"
#include "kernels/ternary-matmul.h"

namespace bitnet::kernels {

extern const KernelTable kTableScalar;
#if BITNET_HAVE_AVX2
extern const KernelTable kTableAvx2;
#endif
#if BITNET_HAVE_AVXVNNI
extern const KernelTable kTableAvxVnni;
#endif
#if BITNET_HAVE_AVX512
extern const KernelTable kTableAvx512;
#endif
#if BITNET_HAVE_AMX
extern const KernelTable kTableAmx;
#endif
#if BITNET_HAVE_NEON
extern const KernelTable kTableNeon;
#endif
#if BITNET_HAVE_NEONDOT
extern const KernelTable kTableNeonDot;
#endif

namespace {

constexpr const char* kIsaNames[kNumIsas] = {"scalar",  "avx2",    "avx512", "neon",
                                             "neondot", "avxvnni", "amx"};

const KernelTable* built_table(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return &kTableScalar;
#if BITNET_HAVE_AVX2
    case Isa::Avx2:
      return &kTableAvx2;
#endif
#if BITNET_HAVE_AVXVNNI
    case Isa::AvxVnni:
      return &kTableAvxVnni;
#endif
#if BITNET_HAVE_AVX512
    case Isa::Avx512:
      return &kTableAvx512;
#endif
#if BITNET_HAVE_AMX
    case Isa::Amx:
      return &kTableAmx;
#endif
#if BITNET_HAVE_NEON
    case Isa::Neon:
      return &kTableNeon;
#endif
#if BITNET_HAVE_NEONDOT
    case Isa::NeonDot:
      return &kTableNeonDot;
#endif
    default:
      return nullptr;
  }
}

bool cpu_supports(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Avx2:
      return f.avx2 && f.fma && f.f16c;
    case Isa::AvxVnni:
      return f.avx2 && f.fma && f.f16c && f.avx_vnni;
    case Isa::Avx512:
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.avx2;
    case Isa::Amx:
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.avx2 && f.amx_int8;
    case Isa::Neon:
      return f.neon;
    case Isa::NeonDot:
      return f.neon && f.dotprod;
  }
  return false;
}

}  // namespace

const char* isa_name(Isa isa) {
  return kIsaNames[static_cast<int>(isa)];
}
const char* layout_name(TernaryLayout layout) {
  return layout == TernaryLayout::T2 ? "t2" : "t1";
}

Isa parse_isa(std::string_view name) {
  for (int i = 0; i < kNumIsas; ++i) {
    if (name == kIsaNames[i]) return static_cast<Isa>(i);
  }
  throw std::invalid_argument("unknown ISA '" + std::string(name) +
                              "' (expected scalar, avx2, avxvnni, avx512, amx, neon or neondot)");
}

const KernelTable* kernels_for(Isa isa) {
  return cpu_supports(isa) ? built_table(isa) : nullptr;
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (int i = 0; i < kNumIsas; ++i) {
    if (kernels_for(static_cast<Isa>(i))) out.push_back(static_cast<Isa>(i));
  }
  return out;
}

const KernelTable& select_kernels(const char* force) {
  if (force && *force) {
    const Isa isa = parse_isa(force);
    if (!built_table(isa)) {
      throw std::runtime_error(std::string("BITNET_FORCE_ISA=") + force +
                               ": this binary was not built with that kernel variant");
    }
    if (!cpu_supports(isa)) {
      throw std::runtime_error(std::string("BITNET_FORCE_ISA=") + force +
                               ": this CPU lacks the instructions it needs (CPU has: " +
                               cpu_features().describe() + ")");
    }
    return *built_table(isa);
  }
  // Fastest first.
  for (Isa isa : {Isa::Amx, Isa::Avx512, Isa::AvxVnni, Isa::Avx2, Isa::NeonDot, Isa::Neon}) {
    if (const KernelTable* t = kernels_for(isa)) return *t;
  }
  return kTableScalar;
}

// AVX-512 keeps T1 only on AMD family 0x1a (Zen 5), which retires two vpdpbusd zmm per cycle
// beside T1's digit decoding and so keeps its 20% fewer bytes. Elsewhere the decoding competes with
// vpdpbusd for the 512-bit ports:
// - AMD family 0x19 (Zen 4; Zen 3 has no AVX-512), double-pumped, one vpdpbusd zmm per cycle, one
//   core in L2: decode T1 95 G weights/s against T2's 186 (T1's linear decoding takes two per
//   digit where T2 takes one per field), prefill T1 75% of the int8 peak against T2's 96%.
// - Intel (a Xeon, family 6 model 207; vpdpbusd zmm and the byte ops share two ports): T1's GEMM
//   at 59% of the peak against T2's 79%; end to end (2B4T shape, 2 threads) T2 prefilled
//   1.14-1.39x faster and decoded 6-16% slower, and with T2 both stayed ahead of ik_llama.cpp
//   where T1's prefill fell behind it (docs/PERFORMANCE.md, "On an Intel Xeon").
// Unknown vendors and later families get T2, the layout that needs no second multiply port.
TernaryLayout preferred_layout(const KernelTable& table, const CpuFeatures& cpu) {
  if (table.isa == Isa::Avx512 && !(cpu.amd && cpu.family == 0x1a)) return TernaryLayout::T2;
  return table.preferred_layout;
}

TernaryLayout preferred_layout(const KernelTable& table) {
  return preferred_layout(table, cpu_features());
}

const KernelTable& active_kernels() {
  static const KernelTable& table = select_kernels(std::getenv("BITNET_FORCE_ISA"));
  return table;
}

void ternary_matmul(ThreadPool& pool, const KernelTable& table, const TernaryMatrixView& w,
                    const QuantizedRows& a, float* y, int64_t ldy) {
  const MatmulFn fn = table.matmul[static_cast<int>(w.layout)];
  pool.parallel_for(w.groups(), [&](int64_t g0, int64_t g1, int) { fn(w, a, y, ldy, g0, g1); });
}

void int8_matmul(ThreadPool& pool, const KernelTable& table, const Int8MatrixView& w,
                 const QuantizedRows& a, float* y, int64_t ldy) {
  pool.parallel_for(w.groups(),
                    [&](int64_t g0, int64_t g1, int) { table.matmul_i8(w, a, y, ldy, g0, g1); });
}

void quantize_rows(ThreadPool& pool, const KernelTable& table, const float* x, int64_t ldx,
                   int64_t m, int64_t k, int8_t* q, int64_t ldq, float* scale, int32_t* sum) {
  if (m == 1) {
    table.quantize(x, ldx, 1, k, q, ldq, scale, sum);
    return;
  }
  pool.parallel_for(m, [&](int64_t r0, int64_t r1, int) {
    table.quantize(x + r0 * ldx, ldx, r1 - r0, k, q + r0 * ldq, ldq, scale + r0, sum + r0);
  });
}

}  // namespace bitnet::kernels
