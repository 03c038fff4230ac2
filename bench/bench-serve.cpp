// Serving figures: C concurrent clients, each sending R streamed completions one after another
// (greedy, max_tokens N, distinct prompts), through `bitnet serve`'s HTTP server on loopback
// (server/server.h, in this process, cpp-httplib clients parsing the SSE events) and through the
// Engine called directly at the same concurrency (C threads calling Engine::submit with a piece
// callback and waiting for the future). For each mode:
//
//   tokens/s   aggregate generated tokens / wall time from the first request to the last result
//   TTFT       request sent (or submit() called) to its first token's text received
//   ITL        between consecutive tokens' text received; tokens delivered together (one SSE event
//              or one callback carrying several) count the gap once, then 0
//
// Token arrival is exact: the tokens' byte offsets in the text come from a first direct run (the
// texts of both modes must equal it, else the program fails), and each delivery releases the
// tokens its bytes complete. The server's overhead is the median over repetitions of the paired
// ratio direct tokens/s / server tokens/s - 1 (modes alternate within each repetition); the CPU
// overhead is the same for the process's CPU time (getrusage), which depends less on what else
// runs on the machine. The clients run in this process, so their HTTP and JSON work is in both.
//
//   bench-serve [--model tiny-1m|2b4t|FILE] [--clients 1,4,16,64] [--requests R] [--max-tokens N]
//               [-t THREADS] [--reps N] [--json] [--only direct|server|setup]
//
// --only runs one mode once (no reference run, no text check) and prints its wall and CPU time:
// one process per mode, for instruction counts (valgrind --tool=callgrind bench-serve --clients
// 64 --only server, and direct, setup: the overhead is (server - setup) / (direct - setup) - 1)
// or CPU-time comparisons without the other mode's threads in the process.
#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "bench-models.h"
#include "bitnet/engine.h"
#include "server/server.h"
#include "tools/bench-stats.h"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Options {
  std::string model = "tiny-1m";
  std::vector<int> clients = {1, 4, 16, 64};
  int requests = 2;
  int max_tokens = 64;
  int threads = 2;
  int reps = 3;
  bool json_out = false;
  // For instruction counts (valgrind --tool=callgrind, one process per mode): run the setup and
  // the reference requests, then once only this mode ("direct", "server") or nothing ("setup").
  std::string only;
};

// What one request delivered: (time, bytes of text so far) per delivery.
struct Trace {
  Clock::time_point sent;
  std::vector<std::pair<Clock::time_point, size_t>> deliveries;
  std::string text;
};

struct ModeResult {
  double tokens_per_second = 0;
  std::vector<double> ttft_ms, itl_ms;
  double tokens_per_step = 0;    // the Engine's batching: tokens evaluated per forward step
  double cpu_s = 0, wall_s = 0;  // process CPU time and wall time of the run
  uint64_t steps = 0;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::string prompt_of(int client, int request) {
  return "Client " + std::to_string(client) + ", request " + std::to_string(request) +
         ": tell me a story about the number " + std::to_string(client * 31 + request) + ".";
}

// Turns deliveries into token arrival times (ends: each token's end offset in the text).
void add_timings(const Trace& t, const std::vector<size_t>& ends, ModeResult& out) {
  size_t next = 0;
  Clock::time_point prev{};
  for (const auto& [when, bytes] : t.deliveries) {
    bool first_in_delivery = true;
    while (next < ends.size() && ends[next] <= bytes) {
      if (next == 0) {
        out.ttft_ms.push_back(std::chrono::duration<double, std::milli>(when - t.sent).count());
      } else {
        out.itl_ms.push_back(first_in_delivery
                                 ? std::chrono::duration<double, std::milli>(when - prev).count()
                                 : 0.0);
      }
      first_in_delivery = false;
      prev = when;
      ++next;
    }
  }
}

// The text as it arrives through JSON: invalid UTF-8 replaced by U+FFFD.
std::string as_json_text(const std::string& raw) {
  const std::string dumped = json(raw).dump(-1, ' ', false, json::error_handler_t::replace);
  return json::parse(dumped).get<std::string>();
}

bitnet::GenerateOptions greedy(int max_tokens) {
  bitnet::GenerateOptions o;
  o.temperature = 0;
  o.max_tokens = max_tokens;
  return o;
}

// Runs C clients x R requests in one mode; returns every trace, [client * R + request].
template <class OneRequest>
std::vector<Trace> run_clients(int clients, int requests, double& wall_s, OneRequest&& one) {
  std::vector<Trace> traces(static_cast<size_t>(clients * requests));
  std::vector<std::thread> threads;
  const Clock::time_point t0 = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int r = 0; r < requests; ++r) one(c, r, traces[static_cast<size_t>(c * requests + r)]);
    });
  }
  for (std::thread& t : threads) t.join();
  wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return traces;
}

std::vector<Trace> run_direct(bitnet::Engine& engine, const Options& o, int clients,
                              double& wall_s) {
  return run_clients(clients, o.requests, wall_s, [&](int c, int r, Trace& t) {
    t.deliveries.reserve(static_cast<size_t>(o.max_tokens) + 4);
    t.sent = Clock::now();
    // submit(), the path the server takes (a blocking generate() from many threads would hand
    // the batch from one calling thread to the next).
    const bitnet::GenerateResult res =
        engine
            .submit(bitnet::TokenPrompt{engine.tokenize(prompt_of(c, r))}, greedy(o.max_tokens),
                    [&](std::string_view piece) {
                      t.text.append(piece);
                      t.deliveries.emplace_back(Clock::now(), t.text.size());
                      return true;
                    })
            .get();
    if (res.text != t.text) throw std::runtime_error("direct: pieces differ from the text");
  });
}

std::vector<Trace> run_server(int port, const Options& o, int clients, double& wall_s) {
  return run_clients(clients, o.requests, wall_s, [&](int c, int r, Trace& t) {
    thread_local std::unique_ptr<httplib::Client> client;
    if (!client) {
      client = std::make_unique<httplib::Client>("127.0.0.1", port);
      client->set_keep_alive(true);
      client->set_tcp_nodelay(true);  // as curl and Node do; else Nagle holds the body 40 ms
      client->set_read_timeout(600, 0);
    }
    t.deliveries.reserve(static_cast<size_t>(o.max_tokens) + 4);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.set_header("Content-Type", "application/json");
    req.body = json({{"prompt", prompt_of(c, r)},
                     {"max_tokens", o.max_tokens},
                     {"temperature", 0},
                     {"stream", true}})
                   .dump();
    std::string buffer;
    bool done = false;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      const Clock::time_point now = Clock::now();
      buffer.append(data, n);
      size_t end;
      bool grew = false;
      while ((end = buffer.find("\n\n")) != std::string::npos) {
        const std::string event = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        if (event.rfind("data: ", 0) != 0) continue;
        if (event == "data: [DONE]") {
          done = true;
          continue;
        }
        const json j = json::parse(event.substr(6));
        if (j.contains("error")) throw std::runtime_error("server: " + j.dump());
        const std::string piece = j["choices"][0]["text"];
        if (!piece.empty()) {
          t.text += piece;
          grew = true;
        }
      }
      if (grew) t.deliveries.emplace_back(now, t.text.size());
      return true;
    };
    t.sent = Clock::now();
    const httplib::Result res = client->send(req);
    if (!res || res->status != 200 || !done) {
      throw std::runtime_error(
          "server: request failed (" +
          (res ? std::to_string(res->status) : httplib::to_string(res.error())) + ")");
    }
  });
}

ModeResult summarize(const std::vector<Trace>& traces, double wall_s,
                     const std::map<std::string, std::vector<size_t>>& ends, const Options& o) {
  ModeResult m;
  size_t tokens = 0;
  for (size_t i = 0; i < traces.size(); ++i) {
    const int c = static_cast<int>(i) / o.requests, r = static_cast<int>(i) % o.requests;
    const std::string p = prompt_of(c, r);
    const auto& e = ends.at(p);
    add_timings(traces[i], e, m);
    tokens += e.size();
  }
  m.tokens_per_second = static_cast<double>(tokens) / wall_s;
  return m;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  size_t start = 0;
  while (start < s.size()) {
    const size_t comma = s.find(',', start);
    out.push_back(std::stoi(s.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") {
      o.model = value();
    } else if (a == "--clients") {
      o.clients = parse_list(value());
    } else if (a == "--requests") {
      o.requests = std::stoi(value());
    } else if (a == "--max-tokens") {
      o.max_tokens = std::stoi(value());
    } else if (a == "-t") {
      o.threads = std::stoi(value());
    } else if (a == "--reps") {
      o.reps = std::stoi(value());
    } else if (a == "--json") {
      o.json_out = true;
    } else if (a == "--only") {
      o.only = value();
      if (o.only != "direct" && o.only != "server" && o.only != "setup") {
        throw std::invalid_argument("--only: expected direct, server or setup");
      }
    } else {
      throw std::invalid_argument("unknown option " + a +
                                  " (usage: bench-serve [--model tiny-1m|2b4t|FILE] [--clients "
                                  "1,4,16,64] [--requests R] [--max-tokens N] [-t THREADS] "
                                  "[--reps N] [--json] [--only direct|server|setup])");
    }
  }
  if (o.requests < 1 || o.max_tokens < 1 || o.reps < 1 || o.threads < 1 || o.clients.empty()) {
    throw std::invalid_argument("--requests, --max-tokens, --reps, -t must be >= 1");
  }
  return o;
}

double pct(std::vector<double> v, double p) {
  return v.empty() ? 0.0 : bitnet::model::percentile(v, p / 100);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    bitnet::bench::BenchModels models;
    const std::string path =
        o.model == "tiny-1m" || o.model == "2b4t" ? models.path(o.model) : o.model;
    json report = json::array();
    if (!o.json_out) {
      std::printf("bench-serve: %s, %d threads, %d requests per client, %d tokens each\n",
                  o.model.c_str(), o.threads, o.requests, o.max_tokens);
      std::printf("%7s %6s %10s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n", "clients", "mode", "tok/s",
                  "ttft p50", "ttft p95", "ttft p99", "itl p50", "itl p95", "itl p99", "cpu us/t",
                  "overhead", "cpu ovh");
    }
    for (const int clients : o.clients) {
      bitnet::EngineConfig ec;
      ec.threads = o.threads;
      ec.max_concurrent_requests = clients;
      ec.max_batch_tokens = std::max(256, clients);
      ec.context_size = 128 + o.max_tokens;
      bitnet::ModelCache cache;
      ec.model_cache = &cache;
      bitnet::Engine engine(path, ec);
      bitnet::server::ServerOptions so;
      so.port = 0;
      so.max_concurrent = clients;
      so.max_queue = clients * o.requests;
      bitnet::server::Server server(so);
      const int port = server.start();
      server.set_engine(&engine);

      // Reference run: each prompt's text and its tokens' end offsets, raw (what the Engine's
      // callback gets) and as JSON carries it (invalid UTF-8 replaced, which random weights
      // produce).
      using Ends = std::map<std::string, std::vector<size_t>>;
      Ends ends, json_ends;
      std::map<std::string, std::string> texts, json_texts;
      for (int c = 0; c < clients && o.only != "direct" && o.only != "server"; ++c) {
        for (int r = 0; r < o.requests; ++r) {
          const std::string p = prompt_of(c, r);
          const bitnet::GenerateResult res = engine.generate(p, greedy(o.max_tokens));
          std::vector<size_t> e;
          size_t at = 0;
          for (const int32_t t : res.tokens) {
            at += engine.detokenize(std::span<const int32_t>(&t, 1)).size();
            e.push_back(at);
          }
          if (at != res.text.size()) throw std::runtime_error("token pieces differ from the text");
          std::vector<size_t> je;
          for (const size_t end : e) je.push_back(as_json_text(res.text.substr(0, end)).size());
          ends[p] = std::move(e);
          json_ends[p] = std::move(je);
          texts[p] = res.text;
          json_texts[p] = as_json_text(res.text);
        }
      }
      auto check = [&](const std::vector<Trace>& traces, const char* mode,
                       std::map<std::string, std::string>& want) {
        for (size_t i = 0; i < traces.size(); ++i) {
          const std::string p =
              prompt_of(static_cast<int>(i) / o.requests, static_cast<int>(i) % o.requests);
          if (traces[i].text != want[p]) {
            throw std::runtime_error(std::string(mode) + ": the text of '" + p + "' is '" +
                                     traces[i].text + "', not the reference's '" + want[p] + "'");
          }
        }
      };
      if (!o.only.empty()) {
        // One mode, no reference run (the full benchmark checks the texts): its wall and CPU
        // time, and the bytes of text it received (equal in both modes but for the U+FFFD
        // replacements of invalid UTF-8).
        double wall = 0;
        size_t bytes = 0;
        const double cpu0 = cpu_seconds();
        std::vector<Trace> traces;
        if (o.only == "direct") traces = run_direct(engine, o, clients, wall);
        if (o.only == "server") traces = run_server(port, o, clients, wall);
        const double cpu = cpu_seconds() - cpu0;
        for (const Trace& t : traces) bytes += t.text.size();
        std::printf(
            "%d clients, --only %s: %zu requests, %zu bytes of text, wall %.3f s, cpu %.3f s\n",
            clients, o.only.c_str(), traces.size(), bytes, wall, cpu);
        server.shutdown(0);
        continue;
      }
      std::vector<double> direct_tps, server_tps, overhead, direct_cpu, server_cpu, cpu_ratio;
      ModeResult direct_all, server_all;
      for (int rep = 0; rep < o.reps; ++rep) {
        ModeResult d, s;
        for (int k = 0; k < 2; ++k) {
          const bool direct_now = (rep + k) % 2 == 0;  // alternate which mode goes first
          double wall = 0;
          const bitnet::EngineStats before = engine.stats();
          const double cpu0 = cpu_seconds();
          ModeResult& m = direct_now ? d : s;
          if (direct_now) {
            const auto traces = run_direct(engine, o, clients, wall);
            check(traces, "direct", texts);
            d = summarize(traces, wall, ends, o);
          } else {
            const auto traces = run_server(port, o, clients, wall);
            check(traces, "server", json_texts);
            s = summarize(traces, wall, json_ends, o);
          }
          const bitnet::EngineStats after = engine.stats();
          m.cpu_s = cpu_seconds() - cpu0;
          m.wall_s = wall;
          m.tokens_per_step =
              static_cast<double>(after.step_tokens - before.step_tokens) /
              static_cast<double>(std::max<uint64_t>(1, after.steps - before.steps));
        }
        if (std::getenv("BENCH_SERVE_VERBOSE")) {
          std::fprintf(stderr,
                       "rep %d: direct %.0f tok/s (%.1f tokens/step, %llu steps, cpu %.2f s of "
                       "%.2f s), server %.0f (%.1f, %llu, cpu %.2f of %.2f)\n",
                       rep, d.tokens_per_second, d.tokens_per_step,
                       static_cast<unsigned long long>(d.steps), d.cpu_s, d.wall_s,
                       s.tokens_per_second, s.tokens_per_step,
                       static_cast<unsigned long long>(s.steps), s.cpu_s, s.wall_s);
        }
        direct_tps.push_back(d.tokens_per_second);
        server_tps.push_back(s.tokens_per_second);
        overhead.push_back(d.tokens_per_second / s.tokens_per_second - 1.0);
        // Process CPU time per generated token (microseconds): the same tokens in both modes.
        const double tokens = d.tokens_per_second * d.wall_s;
        direct_cpu.push_back(1e6 * d.cpu_s / tokens);
        server_cpu.push_back(1e6 * s.cpu_s / tokens);
        cpu_ratio.push_back(s.cpu_s / d.cpu_s - 1.0);
        for (auto [from, to] : {std::pair{&d, &direct_all}, std::pair{&s, &server_all}}) {
          to->ttft_ms.insert(to->ttft_ms.end(), from->ttft_ms.begin(), from->ttft_ms.end());
          to->itl_ms.insert(to->itl_ms.end(), from->itl_ms.begin(), from->itl_ms.end());
        }
      }
      server.shutdown(0);
      const double ovh = bitnet::model::median(overhead);
      const double cpu_ovh = bitnet::model::median(cpu_ratio);
      for (const auto& [mode, all, tps, cpu] :
           {std::tuple{"direct", &direct_all, &direct_tps, &direct_cpu},
            std::tuple{"server", &server_all, &server_tps, &server_cpu}}) {
        const double t = bitnet::model::median(*tps);
        const double cpu_us = bitnet::model::median(*cpu);
        const bool is_server = std::string(mode) == "server";
        if (o.json_out) {
          report.push_back({{"model", o.model},
                            {"clients", clients},
                            {"mode", mode},
                            {"tokens_per_second", t},
                            {"ttft_ms",
                             {{"p50", pct(all->ttft_ms, 50)},
                              {"p95", pct(all->ttft_ms, 95)},
                              {"p99", pct(all->ttft_ms, 99)}}},
                            {"itl_ms",
                             {{"p50", pct(all->itl_ms, 50)},
                              {"p95", pct(all->itl_ms, 95)},
                              {"p99", pct(all->itl_ms, 99)}}},
                            {"cpu_us_per_token", cpu_us},
                            {"overhead", is_server ? json(ovh) : json(nullptr)},
                            {"overhead_per_rep", is_server ? json(overhead) : json(nullptr)},
                            {"cpu_overhead", is_server ? json(cpu_ovh) : json(nullptr)}});
        } else {
          char ov[32] = "", co[32] = "";
          if (is_server) std::snprintf(ov, sizeof ov, "%+.1f%%", 100 * ovh);
          if (is_server) std::snprintf(co, sizeof co, "%+.1f%%", 100 * cpu_ovh);
          std::printf("%7d %6s %10.1f %9.2f %9.2f %9.2f %9.3f %9.3f %9.3f %9.1f %9s %9s\n", clients,
                      mode, t, pct(all->ttft_ms, 50), pct(all->ttft_ms, 95), pct(all->ttft_ms, 99),
                      pct(all->itl_ms, 50), pct(all->itl_ms, 95), pct(all->itl_ms, 99), cpu_us, ov,
                      co);
          std::fflush(stdout);
        }
      }
    }
    if (o.json_out) std::printf("%s\n", report.dump(1).c_str());
    return 0;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "bench-serve: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-serve: error: %s\n", e.what());
    return 1;
  }
}
