// Sockets the HTTP library (cpp-httplib 0.11) does not hand to its users: the connection a
// request arrived on (to notice a client that hung up while its request waits or generates,
// before anything is written to it) and the listening socket (to stop accepting on SIGTERM while
// the running requests finish, which httplib's own stop() does not allow: it ends them too).
// Both are found by their addresses in the kernel's TCP tables (Linux /proc/net/tcp, tcp6), then
// by their inode among the links of /proc/self/fd: no other thread's descriptor is touched.
#pragma once

#include <string>

namespace bitnet::server {

// The connected socket whose local and peer ports and addresses are these; kNotConnected when
// there is none or the peer has already closed its side (the connection is gone or going), and
// kUnknown when the tables or the descriptors cannot be read. The descriptor stays valid while the
// request that named it is being handled (httplib closes a connection only after its handler
// returns), and only for that thread's use.
inline constexpr int kNotConnected = -1;
inline constexpr int kUnknown = -2;
int find_connection_socket(const std::string& local_addr, int local_port,
                           const std::string& remote_addr, int remote_port);

// The listening TCP socket bound to this port, or a negative value.
int find_listening_socket(int port);

// False once the peer has closed or reset the connection (end of stream, RDHUP, HUP or error).
// Does not consume data; never blocks.
bool peer_connected(int fd);

}  // namespace bitnet::server
