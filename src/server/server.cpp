#include "server/server.h"

#include <sys/socket.h>

#include <httplib.h>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <list>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include "server/api-error.h"
#include "server/completion.h"
#include "server/openai-json.h"
#include "server/socket-util.h"

namespace bitnet::server {
namespace {

// How often a waiting HTTP thread checks that its client is still connected (and a stream with
// nothing to send re-checks the exchange).
constexpr auto kPollInterval = std::chrono::milliseconds(20);
// A stream that has sent nothing for this long gets an SSE comment, so that balancers and
// clients with idle timeouts keep it open while the request waits in the queue.
constexpr auto kStreamKeepAlive = std::chrono::seconds(10);

const char* const kRoutes[] = {"/v1/chat/completions",
                               "/v1/completions",
                               "/v1/models",
                               "/chat/completions",
                               "/completions",
                               "/models",
                               "/tokenize",
                               "/detokenize",
                               "/health",
                               "/metrics"};

// The endpoint label of a path: a route, or "other" (unknown paths must not create series).
std::string route_label(const std::string& path) {
  for (const char* r : kRoutes)
    if (path == r) return r;
  return "other";
}

const char* status_type(int status) {
  return status >= 500 ? "server_error" : "invalid_request_error";
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_body(e), "application/json");
}

// Compares in time that depends only on the expected key's length, not on where they differ.
bool constant_time_equal(std::string_view given, std::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char g = i < given.size() ? given[i] : 0;
    diff |= static_cast<unsigned char>(g ^ expected[i]);
  }
  return diff == 0;
}

std::string random_hex(std::mt19937_64& rng, int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  uint64_t bits = 0;
  for (int i = 0; i < n; ++i) {
    if (i % 16 == 0) bits = rng();
    s += kHex[bits & 15];
    bits >>= 4;
  }
  return s;
}

}  // namespace

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  void setup_routes();
  Engine* ready_engine(httplib::Response& res);
  void handle_generation(const httplib::Request& req, httplib::Response& res, ApiKind kind);
  void respond_when_done(int fd, httplib::Response& res, const std::shared_ptr<Exchange>& ex,
                         const ResponseHead& head, bool logprobs, int32_t top_n, PieceFn piece);
  void stream(int fd, httplib::Response& res, const std::shared_ptr<Exchange>& ex,
              StreamEncoder encoder);
  std::shared_ptr<Exchange> admit(int capacity);
  void release(const std::shared_ptr<Exchange>& ex);
  template <class F>
  void guarded(httplib::Response& res, F&& handler);

  ServerOptions options;
  httplib::Server http;
  Metrics metrics;
  std::thread listener;
  int bound_port = -1;
  int listen_fd = -1;
  std::atomic<Engine*> engine{nullptr};
  std::atomic<bool> draining{false};
  int64_t created = std::time(nullptr);

  // Admitted generation requests (guarded by mu).
  mutable std::mutex mu;
  std::condition_variable idle_cv;
  std::list<std::shared_ptr<Exchange>> running;
  std::atomic<int64_t> in_flight{0};
  std::mt19937_64 rng{std::random_device{}()};  // seeds and ids; guarded by mu

  std::mutex shutdown_mu;  // one shutdown at a time; the others wait for it
  std::condition_variable shutdown_cv;
  bool shut_down = false;  // guarded by shutdown_mu
};

template <class F>
void Server::Impl::guarded(httplib::Response& res, F&& handler) {
  try {
    handler();
  } catch (const ApiException& e) {
    send_error(res, e.error());
  } catch (const Error& e) {
    // The Engine refuses what it can never run (e.g. more KV pages than its budget).
    send_error(res, {400, e.what(), "invalid_request_error", "", ""});
  } catch (const std::exception& e) {
    send_error(res, {500, std::string("internal error: ") + e.what(), "server_error", "", ""});
  }
}

Engine* Server::Impl::ready_engine(httplib::Response& res) {
  if (draining.load()) {
    res.set_header("Retry-After", "1");
    res.set_header("Connection", "close");
    send_error(res, {503, "the server is shutting down", "server_error", "", "shutting_down"});
    return nullptr;
  }
  Engine* e = engine.load();
  if (!e) {
    res.set_header("Retry-After", "1");
    send_error(res, {503, "the model is loading", "server_error", "", "loading"});
  }
  return e;
}

std::shared_ptr<Exchange> Server::Impl::admit(int capacity) {
  std::lock_guard lock(mu);
  if (in_flight.load() >= capacity) return nullptr;
  auto ex = std::make_shared<Exchange>();
  running.push_back(ex);
  in_flight.fetch_add(1);
  return ex;
}

void Server::Impl::release(const std::shared_ptr<Exchange>& ex) {
  {
    std::lock_guard lock(mu);
    running.remove(ex);
    in_flight.fetch_sub(1);
  }
  idle_cv.notify_all();
}

void Server::Impl::handle_generation(const httplib::Request& req, httplib::Response& res,
                                     ApiKind kind) {
  Engine* eng = ready_engine(res);
  if (!eng) return;
  const GenerationRequest request = parse_generation_request(req.body, kind, options.limits);
  // The connection, watched while the request waits or generates. Looked up first: once the
  // client has reset it, it has no peer address to be found by.
  const int fd =
      find_connection_socket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  if (fd == kNotConnected) {
    metrics.client_disconnects.fetch_add(1);
    res.status = 499;  // the client left before anything ran
    return;
  }
  uint64_t seed;
  ResponseHead head;
  {
    std::lock_guard lock(mu);
    seed = rng();
    head.id = (kind == ApiKind::Chat ? "chatcmpl-" : "cmpl-") + random_hex(rng, 24);
  }
  head.kind = kind;
  head.created = std::time(nullptr);
  head.model = options.model_id;
  PreparedRequest prepared = prepare_request(request, *eng, seed);

  const int capacity = eng->info().max_concurrent_requests + options.max_queue;
  std::shared_ptr<Exchange> ex = admit(capacity);
  if (!ex) {
    metrics.rejected_overload.fetch_add(1);
    res.set_header("Retry-After", "1");
    send_error(res, {503,
                     "the server is at capacity (" + std::to_string(capacity) +
                         " requests running or queued); retry later",
                     "server_error", "", "server_overloaded"});
    return;
  }
  TokenCallback on_piece;
  attach_callbacks(prepared.options, on_piece, ex, metrics, request.stream, fd);
  prepared.options.cancel = ex->cancel;
  metrics.prompt_tokens.fetch_add(prepared.prompt.size());
  ex->submitted = Clock::now();
  try {
    eng->submit(TokenPrompt{std::move(prepared.prompt)}, prepared.options, std::move(on_piece),
                [this, ex](const GenerateResult* r, std::exception_ptr error) {
                  metrics.request_duration.observe(
                      std::chrono::duration<double>(Clock::now() - ex->submitted).count());
                  // Released before the result is handed over, so that a client holding its
                  // response finds the slot free.
                  release(ex);
                  {
                    std::lock_guard lock(ex->mu);
                    ex->done = true;
                    if (r) {
                      ex->result = *r;
                    } else {
                      ex->error = error;
                    }
                  }
                  ex->cv.notify_all();
                });
  } catch (...) {
    release(ex);
    throw;
  }

  const int32_t top_n = prepared.options.logprobs ? prepared.options.top_logprobs : 0;
  PieceFn piece = [eng](int32_t t) { return eng->detokenize(std::span<const int32_t>(&t, 1)); };
  if (request.stream) {
    stream(fd, res, ex, StreamEncoder(head, request.include_usage, top_n, std::move(piece)));
  } else {
    respond_when_done(fd, res, ex, head, prepared.options.logprobs, top_n, std::move(piece));
  }
}

void Server::Impl::respond_when_done(int fd, httplib::Response& res,
                                     const std::shared_ptr<Exchange>& ex, const ResponseHead& head,
                                     bool logprobs, int32_t top_n, PieceFn piece) {
  std::unique_lock lock(ex->mu);
  while (!ex->done) {
    ex->cv.wait_for(lock, kPollInterval);
    // Also while the request waits in the queue (no tokens, so no check by the token callback).
    if (!ex->done && fd >= 0 && !ex->client_gone.load() && !peer_connected(fd)) {
      client_left(*ex, metrics);
    }
  }
  if (ex->error) std::rethrow_exception(ex->error);  // guarded(): 400 or 500
  const GenerateResult& r = *ex->result;
  if (r.stop_reason == StopReason::Cancelled) {
    if (ex->client_gone.load()) {
      res.status = 499;  // nginx's "client closed request": only the metrics see it
      return;
    }
    res.set_header("Retry-After", "1");
    res.set_header("Connection", "close");
    send_error(res, {503, "the server is shutting down; the request was cancelled", "server_error",
                     "", "shutting_down"});
    return;
  }
  std::optional<LogprobSpan> lp;
  if (logprobs) lp = LogprobSpan{r.logprobs, r.top_logprobs, top_n};
  res.set_content(completion_body(head, r, lp, piece), "application/json");
}

void Server::Impl::stream(int fd, httplib::Response& res, const std::shared_ptr<Exchange>& ex,
                          StreamEncoder encoder) {
  struct State {
    std::shared_ptr<Exchange> ex;
    StreamEncoder encoder;
    int fd = -1;
    bool started = false;
    Clock::time_point last_write{};
  };
  auto st = std::make_shared<State>(State{ex, std::move(encoder), -1, false, Clock::now()});
  st->fd = fd;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // nginx: pass events on as they come
  Metrics* m = &metrics;
  res.set_chunked_content_provider(
      "text/event-stream",
      [st, m](size_t, httplib::DataSink& sink) {
        Exchange& x = *st->ex;
        auto gone = [&] {
          client_left(x, *m);
          return false;  // httplib closes the connection
        };
        std::string out;
        if (!st->started) {
          st->started = true;
          out = st->encoder.start();
        }
        std::string text;
        std::vector<TokenLogprob> lps, tops;
        bool done = false;
        {
          std::unique_lock lock(x.mu);
          if (out.empty() && !x.done && x.text.empty() && x.lps.empty()) {
            x.waiting = true;
            x.cv.wait_for(lock, kPollInterval,
                          [&] { return x.done || !x.text.empty() || !x.lps.empty(); });
            x.waiting = false;
          }
          text.swap(x.text);
          lps.swap(x.lps);
          tops.swap(x.tops);
          done = x.done;
        }
        out += st->encoder.text(text, lps, tops);
        if (done) {
          if (x.error) {
            std::string message = "generation failed";
            try {
              std::rethrow_exception(x.error);
            } catch (const std::exception& e) {
              message += std::string(": ") + e.what();
            } catch (...) {
            }
            out += StreamEncoder::error({500, message, "server_error", "", ""});
          } else if (x.result->stop_reason == StopReason::Cancelled) {
            out += StreamEncoder::error({503,
                                         "the server is shutting down; the request was "
                                         "cancelled",
                                         "server_error", "", "shutting_down"});
          } else {
            out += st->encoder.finish(*x.result);
          }
        }
        const Clock::time_point now = Clock::now();
        if (out.empty() && now - st->last_write > kStreamKeepAlive) out = ": keep-alive\n\n";
        if (!out.empty()) {
          if (!sink.write(out.data(), out.size())) return gone();
          st->last_write = now;
        }
        if (done) {
          sink.done();
          return true;
        }
        if (st->fd >= 0 && !peer_connected(st->fd)) return gone();
        return true;
      },
      [st, m](bool success) {
        // The response is over (sent, or the connection failed before the end): a request still
        // generating is cancelled and waited for, so its KV pages are back before the next one.
        // A stream that did not reach its end counts as a departed client even when the
        // generation had finished: httplib may give up on an unwritable socket (the write
        // timeout) before calling the provider again, so gone() above never ran.
        Exchange& x = *st->ex;
        std::unique_lock lock(x.mu);
        if (!x.done || !success) client_left(x, *m);
        if (!x.done) x.cv.wait(lock, [&] { return x.done; });
      });
}

void Server::Impl::setup_routes() {
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining.load()) {
      res.status = 503;
      res.set_content(R"({"status":"shutting down"})", "application/json");
    } else if (!engine.load()) {
      res.status = 503;
      res.set_content(R"({"status":"loading"})", "application/json");
    } else {
      res.set_content(R"({"status":"ok"})", "application/json");
    }
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = engine.load() && !draining.load();
    res.set_content(metrics.render(engine.load(), ready, in_flight.load()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  auto models = [this](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      if (!ready_engine(res)) return;
      res.set_content(models_body(options.model_id, created), "application/json");
    });
  };
  http.Get("/v1/models", models);
  http.Get("/models", models);
  for (const char* path : {"/v1/chat/completions", "/chat/completions"}) {
    http.Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { handle_generation(req, res, ApiKind::Chat); });
    });
  }
  for (const char* path : {"/v1/completions", "/completions"}) {
    http.Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { handle_generation(req, res, ApiKind::Completion); });
    });
  }
  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      Engine* eng = ready_engine(res);
      if (!eng) return;
      const TokenizeRequest r = parse_tokenize_request(req.body, options.limits);
      const std::vector<int32_t> ids = eng->tokenize(r.content, r.add_special, r.parse_special);
      res.set_content(tokenize_body(ids, r.with_pieces,
                                    [eng](int32_t t) {
                                      return eng->detokenize(std::span<const int32_t>(&t, 1), true);
                                    }),
                      "application/json");
    });
  });
  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      Engine* eng = ready_engine(res);
      if (!eng) return;
      const DetokenizeRequest r = parse_detokenize_request(req.body, options.limits);
      std::string text;
      try {
        text = eng->detokenize(r.tokens, true);
      } catch (const Error& e) {
        bad_request("tokens", e.what());
      }
      res.set_content(detokenize_body(text), "application/json");
    });
  });
  // The wrong method on a known path.
  auto not_allowed = [](const char* allow) {
    return [allow](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allow);
      send_error(res, {405, req.method + " is not allowed on " + req.path + " (use " + allow + ")",
                       "invalid_request_error", "", "method_not_allowed"});
    };
  };
  for (const char* path : kRoutes) {
    const std::string p = path;
    const bool get = p == "/health" || p == "/metrics" || p.ends_with("models");
    if (get) {
      http.Post(path, not_allowed("GET"));
    } else {
      http.Get(path, not_allowed("POST"));
    }
    http.Put(path, not_allowed(get ? "GET" : "POST"));
    http.Delete(path, not_allowed(get ? "GET" : "POST"));
    http.Patch(path, not_allowed(get ? "GET" : "POST"));
  }

  // Authentication before anything is read of the body.
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || req.path == "/health" || req.path == "/metrics") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string auth = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    const bool ok =
        auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0 &&
        constant_time_equal(std::string_view(auth).substr(kBearer.size()), options.api_key);
    if (ok) return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_header("Connection", "close");  // the body was not read
    send_error(res, {401,
                     auth.empty() ? "missing API key: send the header Authorization: Bearer KEY"
                                  : "incorrect API key",
                     "invalid_request_error", "", "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
  });
  // Bodies for the errors httplib answers itself (404, 413, 400 for malformed HTTP, ...).
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        std::string code;
        switch (res.status) {
          case 404:
            message = "no such endpoint: " + req.method + " " + req.path;
            code = "not_found";
            break;
          case 413:
            message = "the request body is larger than the limit (--max-body)";
            code = "request_too_large";
            break;
          case 414:
            message = "the request URI is too long";
            break;
          default:
            message = "bad request (HTTP status " + std::to_string(res.status) + ")";
        }
        send_error(res, {res.status, message, status_type(res.status), "", code});
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, {500, "internal error: " + what, "server_error", "", ""});
      });
  // Counted before the response is written (post-routing runs for every response, httplib's own
  // errors included), so a client that has its response finds it counted.
  http.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    metrics.count_request(route_label(req.path), res.status);
  });
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  const ServerOptions& o = s.options;
  const int threads =
      o.http_threads > 0 ? o.http_threads : std::max(1, o.max_concurrent) + o.max_queue + 8;
  s.http.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  s.http.set_read_timeout(o.io_timeout_s, 0);
  s.http.set_write_timeout(o.io_timeout_s, 0);
  // Also the wait for a new connection's first request: a silent client leaves after this.
  s.http.set_keep_alive_timeout(std::min(o.keep_alive_s, o.io_timeout_s));
  s.http.set_keep_alive_max_count(1000);
  s.http.set_payload_max_length(o.max_body_bytes);
  s.http.set_tcp_nodelay(true);
  s.setup_routes();
}

Server::~Server() {
  shutdown(0);
}

int Server::start() {
  Impl& s = *impl_;
  const ServerOptions& o = s.options;
  int port = o.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(o.host);
  } else if (!s.http.bind_to_port(o.host, port)) {
    port = -1;
  }
  if (port < 0) {
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (address in use, not local, or not permitted)");
  }
  s.bound_port = port;
  s.listen_fd = find_listening_socket(port);
  if (s.listen_fd < 0) {
    s.http.stop();
    throw std::runtime_error("listening on port " + std::to_string(port) +
                             " but its socket was not found among this process's descriptors");
  }
  // httplib listens with a backlog of 5; a burst of connections beyond it would see SYNs dropped
  // and retried after a second. Listening again on Linux only raises the backlog.
  ::listen(s.listen_fd, SOMAXCONN);
  if (o.send_buffer_bytes > 0) {  // accepted connections inherit it
    setsockopt(s.listen_fd, SOL_SOCKET, SO_SNDBUF, &o.send_buffer_bytes,
               sizeof o.send_buffer_bytes);
  }
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  return port;
}

void Server::set_engine(Engine* engine) {
  impl_->engine.store(engine);
}

void Server::shutdown(double grace_s) {
  Impl& s = *impl_;
  {
    std::unique_lock lock(s.shutdown_mu);
    if (s.shut_down || s.draining.exchange(true)) {
      s.shutdown_cv.wait(lock, [&] { return s.shut_down; });
      return;
    }
  }
  // Stop accepting: shutting the listening socket down makes httplib's accept() fail, after which
  // it closes the socket and waits for its HTTP threads to finish the open connections. (Its
  // stop() would also end running streams at once.)
  if (s.listen_fd >= 0) ::shutdown(s.listen_fd, SHUT_RDWR);
  {
    std::unique_lock lock(s.mu);
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(std::max(0.0, grace_s)));
    s.idle_cv.wait_until(lock, deadline, [&] { return s.in_flight.load() == 0; });
    for (const auto& ex : s.running) {
      ex->cancelled_by_shutdown.store(true);
      ex->cancel.cancel();
    }
    s.idle_cv.wait(lock, [&] { return s.in_flight.load() == 0; });
  }
  if (s.listener.joinable()) s.listener.join();
  {
    std::lock_guard lock(s.shutdown_mu);
    s.shut_down = true;
  }
  s.shutdown_cv.notify_all();
}

void Server::wait() {
  std::unique_lock lock(impl_->shutdown_mu);
  impl_->shutdown_cv.wait(lock, [&] { return impl_->shut_down; });
}

int Server::port() const {
  return impl_->bound_port;
}

const Metrics& Server::metrics() const {
  return impl_->metrics;
}

int64_t Server::in_flight() const {
  return impl_->in_flight.load();
}

}  // namespace bitnet::server
