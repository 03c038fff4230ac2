// Helpers for the kernel tests: buffers that end right before an inaccessible page (so any read or
// write past the end faults) and deterministic random data.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>

namespace bitnet::test {

// n elements of T placed so that element n is the first byte of a PROT_NONE page. The start is
// aligned to `align` bytes, so the end is exact only when n * sizeof(T) is a multiple of it.
template <class T>
class GuardedArray {
 public:
  explicit GuardedArray(size_t n, size_t align = 64) : n_(n) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = n * sizeof(T);
    const size_t start_off = bytes % align ? align - bytes % align : 0;  // keep start aligned
    const size_t body = (bytes + start_off + page - 1) / page * page;
    total_ = body + page;
    void* m = mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<uint8_t*>(m);
    if (mprotect(base_ + body, page, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
    data_ = reinterpret_cast<T*>(base_ + body - bytes - start_off);
    std::memset(base_, 0xA5, body);  // poison everything, including the slack before data_
  }
  ~GuardedArray() { munmap(base_, total_); }
  GuardedArray(const GuardedArray&) = delete;
  GuardedArray& operator=(const GuardedArray&) = delete;
  T* data() { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  size_t size() const { return n_; }

 private:
  uint8_t* base_ = nullptr;
  size_t total_ = 0;
  T* data_ = nullptr;
  size_t n_ = 0;
};

}  // namespace bitnet::test
