#include "server/socket-util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>

namespace bitnet::server {
namespace {

// TCP states as /proc/net/tcp writes them (include/net/tcp_states.h).
constexpr int kEstablished = 0x01;
constexpr int kCloseWait = 0x08;  // the peer has closed its side
constexpr int kListen = 0x0A;

struct TcpSocket {
  std::string local_addr, remote_addr;
  int local_port = 0, remote_port = 0;
  int state = 0;
  unsigned long inode = 0;
};

// "0100007F:1F90" (IPv4) or 32 hex digits (IPv6): the address as the kernel holds it, one 32-bit
// word per 8 digits in this machine's byte order, then the port.
bool parse_endpoint(const std::string& s, std::string& addr, int& port) {
  const size_t colon = s.find(':');
  if (colon == std::string::npos) return false;
  const std::string hex = s.substr(0, colon);
  port = static_cast<int>(std::strtol(s.c_str() + colon + 1, nullptr, 16));
  char buf[INET6_ADDRSTRLEN] = "";
  if (hex.size() == 8) {
    in_addr a{};
    a.s_addr = static_cast<uint32_t>(std::strtoul(hex.c_str(), nullptr, 16));
    inet_ntop(AF_INET, &a, buf, sizeof buf);
  } else if (hex.size() == 32) {
    in6_addr a{};
    for (int w = 0; w < 4; ++w) {
      const auto word = static_cast<uint32_t>(
          std::strtoul(hex.substr(static_cast<size_t>(8 * w), 8).c_str(), nullptr, 16));
      std::memcpy(reinterpret_cast<char*>(&a) + 4 * w, &word, 4);
    }
    inet_ntop(AF_INET6, &a, buf, sizeof buf);
  } else {
    return false;
  }
  addr = buf;
  return true;
}

// The first TCP socket of this network namespace for which f is true (IPv4 then IPv6), or
// nullopt; unknown is set when neither table could be read.
template <class F>
std::optional<TcpSocket> find_tcp(F&& f, bool& unknown) {
  unknown = true;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    if (!in) continue;
    unknown = false;
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      char local[64], remote[64];
      unsigned state = 0;
      unsigned long inode = 0;
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
      if (std::sscanf(line.c_str(), " %*s %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote,
                      &state, &inode) != 4) {
        continue;
      }
      TcpSocket s;
      s.state = static_cast<int>(state);
      s.inode = inode;
      if (!parse_endpoint(local, s.local_addr, s.local_port) ||
          !parse_endpoint(remote, s.remote_addr, s.remote_port)) {
        continue;
      }
      if (f(s)) return s;
    }
  }
  return std::nullopt;
}

// The descriptor of this process whose link is "socket:[inode]", or -1. Only the links are read
// (/proc/self/fd/N): no other thread's descriptor is touched.
int fd_of_socket(unsigned long inode) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  const int self = dirfd(dir);
  char want[64];
  std::snprintf(want, sizeof want, "socket:[%lu]", inode);
  int found = -1;
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == self) continue;
    char link[64];
    const ssize_t n = readlinkat(self, e->d_name, link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = '\0';
    if (std::strcmp(link, want) == 0) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

std::string without_zone(const std::string& addr) {
  return addr.substr(0, addr.find('%'));
}

}  // namespace

int find_connection_socket(const std::string& local_addr, int local_port,
                           const std::string& remote_addr, int remote_port) {
  const std::string la = without_zone(local_addr), ra = without_zone(remote_addr);
  bool unknown = false;
  const auto s = find_tcp(
      [&](const TcpSocket& t) {
        return t.local_port == local_port && t.remote_port == remote_port && t.local_addr == la &&
               t.remote_addr == ra && (t.state == kEstablished || t.state == kCloseWait);
      },
      unknown);
  if (unknown) return kUnknown;
  if (!s || s->state == kCloseWait) return kNotConnected;
  const int fd = fd_of_socket(s->inode);
  return fd >= 0 ? fd : kUnknown;
}

int find_listening_socket(int port) {
  bool unknown = false;
  const auto s = find_tcp(
      [&](const TcpSocket& t) { return t.state == kListen && t.local_port == port; }, unknown);
  if (!s) return -1;
  return fd_of_socket(s->inode);
}

bool peer_connected(int fd) {
  pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
  const int n = poll(&p, 1, 0);
  if (n < 0) return errno == EINTR;
  if (n == 0) return true;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return false;
  // Readable: more bytes of a pipelined request, or the end of the stream.
  char c;
  const ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

}  // namespace bitnet::server
