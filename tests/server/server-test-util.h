// Helpers for the server tests: the tiny-1m model written once, HTTP requests through
// cpp-httplib's client (streamed ones read event by event), raw bytes over a socket for malformed
// HTTP, and Server-Sent Events parsing. Every wait is bounded.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>
#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tools/dummy-model.h"

namespace bitnet::test {

using json = nlohmann::json;

// tiny-1m (random weights, byte-level tokenizer with <|eot_id|>: the BitNet 2B4T chat format),
// written once per process to a temporary directory.
inline const std::string& tiny_model() {
  static const std::string path = [] {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("bitnet-test-server-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string p = (dir / "tiny-1m.gguf").string();
    model::write_dummy_model(model::find_dummy_preset("tiny-1m"), model::DummyOptions{}, p);
    return p;
  }();
  return path;
}

struct Reply {
  int status = 0;  // 0: no response (connection error)
  std::string body;
  httplib::Headers headers;
  json j() const { return json::parse(body); }
  std::string header(const std::string& k) const {
    const auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

inline Reply to_reply(const httplib::Result& r) {
  Reply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.headers = r->headers;
  return out;
}

inline httplib::Client client(int port, int timeout_s = 30) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(timeout_s, 0);
  c.set_write_timeout(timeout_s, 0);
  c.set_connection_timeout(5, 0);
  c.set_tcp_nodelay(true);
  return c;
}

inline Reply get(int port, const std::string& path, const httplib::Headers& h = {}) {
  auto c = client(port);
  return to_reply(c.Get(path.c_str(), h));
}

inline Reply post(int port, const std::string& path, const std::string& body,
                  const httplib::Headers& h = {}) {
  auto c = client(port);
  return to_reply(c.Post(path.c_str(), h, body, "application/json"));
}

// A streamed POST: on_data gets the body as it arrives and returns false to drop the connection.
inline Reply post_stream(int port, const std::string& path, const std::string& body,
                         const std::function<bool(const std::string& so_far)>& on_data = {},
                         const httplib::Headers& h = {}) {
  auto c = client(port);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = h;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  Reply out;
  req.response_handler = [&](const httplib::Response& r) {
    out.status = r.status;
    out.headers = r.headers;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    out.body.append(data, n);
    return !on_data || on_data(out.body);
  };
  c.send(req);
  return out;
}

// The data of each "data: ..." event of an SSE body, in order.
inline std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> events;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0) events.push_back(event.substr(6));
    pos = end + 2;
  }
  return events;
}

// The text a stream carried (choices[0].delta.content or .text of every chunk).
inline std::string stream_text(const std::string& body) {
  std::string text;
  for (const std::string& e : sse_data(body)) {
    if (e == "[DONE]") continue;
    const json j = json::parse(e);
    if (!j.contains("choices") || j["choices"].empty()) continue;
    const json& c = j["choices"][0];
    if (c.contains("delta") && c["delta"].contains("content")) {
      text += c["delta"]["content"].get<std::string>();
    }
    if (c.contains("text")) text += c["text"].get<std::string>();
  }
  return text;
}

// A TCP connection to 127.0.0.1:port for raw bytes; closed on destruction.
class RawConnection {
 public:
  explicit RawConnection(int port, int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return connected_; }
  bool send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads until the peer closes, `until` appears, or timeout_ms passes; returns what came.
  std::string read(int timeout_ms, const std::string& until = "") {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        peer_closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
      if (!until.empty() && out.find(until) != std::string::npos) break;
    }
    return out;
  }
  bool peer_closed() const { return peer_closed_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes with RST instead of FIN (SO_LINGER 0), as a killed client's kernel may.
  void reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool peer_closed_ = false;
};

// The status code of a raw HTTP response ("HTTP/1.1 404 ..."), or 0.
inline int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.substr(9, 3).c_str());
}

// Polls cond every 5 ms for up to timeout_ms.
inline bool eventually(const std::function<bool()>& cond, int timeout_ms = 5000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

}  // namespace bitnet::test
