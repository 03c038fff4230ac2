#include "server/socket-util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace bitnet::server {
namespace {

// Port and numeric address of a socket address (IPv4, IPv6; "" for others), without an IPv6 zone.
int port_of(const sockaddr_storage& a, std::string* addr) {
  char buf[INET6_ADDRSTRLEN] = "";
  int port = -1;
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    port = ntohs(in->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    port = ntohs(in6->sin6_port);
  }
  if (addr) *addr = buf;
  return port;
}

std::string without_zone(const std::string& addr) {
  return addr.substr(0, addr.find('%'));
}

// Calls f(fd) for each open descriptor of this process that is a socket, until f returns true;
// returns that fd, kNotConnected, or kUnknown when /proc/self/fd cannot be read.
template <class F>
int find_socket(F&& f) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return kUnknown;
  const int self = dirfd(dir);
  int found = kNotConnected;
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == self) continue;
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (f(static_cast<int>(fd))) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

}  // namespace

int find_connection_socket(const std::string& local_addr, int local_port,
                           const std::string& remote_addr, int remote_port) {
  return find_socket([&](int fd) {
    sockaddr_storage local{}, peer{};
    socklen_t ll = sizeof local, pl = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) return false;
    std::string la, ra;
    if (port_of(local, &la) != local_port) return false;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) return false;
    return port_of(peer, &ra) == remote_port && la == without_zone(local_addr) &&
           ra == without_zone(remote_addr);
  });
}

int find_listening_socket(int port) {
  return find_socket([&](int fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
      return false;
    }
    sockaddr_storage local{};
    socklen_t ll = sizeof local;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) return false;
    return port_of(local, nullptr) == port;
  });
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
