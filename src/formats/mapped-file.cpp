#include "formats/mapped-file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace bitnet::formats {

namespace {

[[noreturn]] void throw_errno(const std::string& path, const char* what, int err) {
  throw std::runtime_error(path + ": " + what + " failed: " + std::strerror(err));
}

// Closes the descriptor on every exit path; the data outlives it (a mapping stays valid after
// close).
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile::MappedFile(std::string path, size_t mmap_threshold) : path_(std::move(path)) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is rejected just below).
  Fd f{::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) throw_errno(path_, "open", errno);
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw_errno(path_, "stat", errno);
  if (!S_ISREG(st.st_mode)) {
    throw std::runtime_error(path_ + ": expected a regular file, found " +
                             (S_ISDIR(st.st_mode) ? "a directory" : "a special file"));
  }
  const size_t size = static_cast<size_t>(st.st_size);

  if (size > 0 && size >= mmap_threshold) {
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd, 0);
    if (m == MAP_FAILED) throw_errno(path_, "mmap", errno);
    map_ = m;
    data_ = static_cast<const uint8_t*>(m);
    size_ = size;
    return;
  }

  buffer_ = AlignedBuffer<uint8_t>(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(f.fd, buffer_.data() + done, size - done);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw_errno(path_, "read", errno);
    }
    if (n == 0) {
      throw std::runtime_error(path_ + ": read: expected " + std::to_string(size) +
                               " bytes (the size at open), found " + std::to_string(done) +
                               " (the file shrank while being read)");
    }
    done += static_cast<size_t>(n);
  }
  data_ = buffer_.data();
  size_ = size;
}

MappedFile::~MappedFile() {
  release();
}

void MappedFile::release() noexcept {
  if (map_) ::munmap(map_, size_);
  map_ = nullptr;
  data_ = nullptr;
  size_ = 0;
  buffer_ = AlignedBuffer<uint8_t>();
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      map_(std::exchange(o.map_, nullptr)),
      buffer_(std::move(o.buffer_)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    map_ = std::exchange(o.map_, nullptr);
    buffer_ = std::move(o.buffer_);
  }
  return *this;
}

}  // namespace bitnet::formats
