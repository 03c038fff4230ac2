#include "core/memory.h"

#include <unistd.h>

#include <cstdio>

namespace bitnet {

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 6) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

AllocationError::AllocationError(const std::string& what_for, uint64_t bytes) : bytes_(bytes) {
  message_ = "cannot allocate " + format_bytes(bytes) + " for " + what_for;
  if (const uint64_t phys = physical_memory_bytes()) {
    message_ += ": this machine has " + format_bytes(phys) + " of memory";
  }
}

void check_fits_in_memory(uint64_t bytes, const std::string& what_for) {
  const uint64_t phys = physical_memory_bytes();
  if (phys > 0 && bytes > phys) throw AllocationError(what_for, bytes);
}

}  // namespace bitnet
