// The OpenAI-compatible HTTP server over a bitnet::Engine (docs/SERVING.md lists every endpoint and
// field). Built on cpp-httplib (Debian's libcpp-httplib-dev) and nlohmann::json.
//
// Every generation request is one Engine request (continuous batching does the rest). Admission
// is bounded: at most the Engine's max_concurrent_requests run and max_queue wait; a request
// beyond that is a 503 with Retry-After. A request whose prompt plus max_tokens exceeds the
// context is a 400. A client that disconnects has its request cancelled (the Engine stops it
// before its next step and its KV pages return). The server holds no state between requests, so
// replicas can sit behind any balancer; /health says when one is ready.
//
// Threads: one accepts connections; a fixed pool of HTTP threads reads requests and writes
// responses (one per connection while it is open); the Engine's scheduler thread generates and
// hands text to the HTTP threads.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "bitnet/engine.h"
#include "server/metrics.h"
#include "server/request-parser.h"

namespace bitnet::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: a free port (Server::start returns it)
  // Generation requests admitted beyond the Engine's max_concurrent_requests (waiting in its
  // queue); one more is refused with 503.
  int max_queue = 64;
  // HTTP threads; 0: max_concurrent + max_queue + 8, so every admitted request has one and health
  // probes, metrics and refusals still get through. max_concurrent is given here because the
  // threads start before the Engine is loaded.
  int http_threads = 0;
  int max_concurrent = 1;
  // Bearer token required on every endpoint except /health and /metrics; empty: none.
  std::string api_key;
  // Seconds one read or write on a connection may wait (slow or stalled clients are dropped).
  int io_timeout_s = 30;
  int keep_alive_s = 5;             // an idle keep-alive connection is closed after this
  size_t max_body_bytes = 1 << 20;  // larger request bodies get 413
  // SO_SNDBUF of each connection; 0: the kernel's (autotuned). A client that stops reading is
  // noticed once this much (and its own receive buffer) is in flight and a write then waits
  // io_timeout_s.
  int send_buffer_bytes = 0;
  std::string model_id = "bitnet";  // the id /v1/models lists and responses carry
  RequestLimits limits;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  // Shuts down (no grace) if still running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port and serves on a thread of its own; /health answers 503 until set_engine().
  // Returns the port. Throws std::runtime_error naming the address when it cannot be bound.
  int start();
  // Serves this Engine from now on; it must outlive shutdown().
  void set_engine(Engine* engine);
  // Stops accepting connections (the listening socket is closed; /health and new requests on
  // open connections answer 503), lets admitted requests run for up to grace_s seconds, cancels
  // those still running (a stream ends with an error event, a waiting client gets 503), and
  // returns once every connection is closed. Calls after the first return at once.
  void shutdown(double grace_s);
  // Blocks until shutdown() has finished (from another thread, e.g. a signal handler's).
  void wait();

  int port() const;
  const Metrics& metrics() const;
  // Generation requests admitted and not finished.
  int64_t in_flight() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet::server
