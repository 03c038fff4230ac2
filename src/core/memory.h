// Memory the process asks for in one piece (KV caches, activation arenas, packed weights): a
// request that cannot be met fails with a message naming what it was for and how much it was,
// instead of a bare std::bad_alloc.
#pragma once

#include <cstdint>
#include <new>
#include <string>

namespace bitnet {

// A std::bad_alloc (so code that handles running out of memory still catches it) whose what()
// says "cannot allocate 1.3 TiB for the KV cache (...): this machine has 23.4 GiB".
class AllocationError : public std::bad_alloc {
 public:
  AllocationError(const std::string& what_for, uint64_t bytes);
  const char* what() const noexcept override { return message_.c_str(); }
  uint64_t bytes() const { return bytes_; }

 private:
  std::string message_;
  uint64_t bytes_;
};

// "512 B", "1.5 KiB", "23.4 GiB".
std::string format_bytes(uint64_t bytes);

// This machine's physical memory in bytes (0 when it cannot be told).
uint64_t physical_memory_bytes();

// Throws AllocationError when `bytes` exceed the machine's physical memory: such a buffer could
// only be had by overcommit and would fail when touched. Call before allocating it.
void check_fits_in_memory(uint64_t bytes, const std::string& what_for);

}  // namespace bitnet
