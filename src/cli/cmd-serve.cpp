// bitnet serve: the OpenAI-compatible HTTP server (server/server.h) on an Engine, until SIGTERM or
// SIGINT, which drain it and exit 0.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>

#include "bitnet/engine.h"
#include "cli/cli-common.h"
#include "cli/commands.h"
#include "cli/default-model.h"
#include "server/server.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [-t N] [-c CTX] [--parallel N]\n"
    "      [--max-queue N] [--api-key KEY | --api-key-file FILE] [--timeout S] [--grace S]\n"
    "      [--max-body BYTES] [--alias NAME] [--kv f16|f32]";

constexpr const char* kHelp =
    R"(  endpoints (docs/SERVING.md): POST /v1/chat/completions, POST /v1/completions (stream: true
  for Server-Sent Events), GET /v1/models, POST /tokenize, POST /detokenize, GET /health,
  GET /metrics (Prometheus)
  -m MODEL            GGUF file or Hugging Face directory; without it the built-in default model
                      (as bitnet run)
  --host ADDR         address to listen on (default 127.0.0.1: this machine only)
  --port N            port (default 8080; 0: any free port, printed on stderr)
  -t N                compute threads (default: all cores)
  -c CTX              positions per request, prompt plus completion (default: the model's)
  --parallel N        requests decoded together in one batch (default 4)
  --max-queue N       requests waiting beyond those; more get 503 with Retry-After (default 64)
  --api-key KEY       require "Authorization: Bearer KEY" (not on /health and /metrics)
  --api-key-file F    the same, the key read from the file's first line
  --timeout S         seconds one read or write on a connection may wait before the client is
                      dropped (default 30)
  --grace S           on SIGTERM or SIGINT: stop accepting, let running requests finish for S
                      seconds, then cancel them and exit 0 (default 10)
  --max-body BYTES    larger request bodies get 413 (default 1048576)
  --alias NAME        the model id in /v1/models and responses (default: the file name)
  --kv f16|f32        KV cache type (default f16)
  --layout t1|t2      packed weight layout (default: the faster one for this CPU)
  --no-cache          do not use or write the prepared-model cache

  /health answers 503 while the model loads and while shutting down, 200 when ready.
)";

std::string read_key_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw InputError("--api-key-file: cannot read " + path);
  std::string key;
  std::getline(f, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (key.empty()) throw InputError("--api-key-file: " + path + " has an empty first line");
  return key;
}

std::string model_id(const std::string& path) {
  std::filesystem::path p(path);
  if (!p.has_filename()) p = p.parent_path();  // a Hugging Face directory given with a slash
  return p.extension() == ".gguf" ? p.stem().string() : p.filename().string();
}

int cmd_serve(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  server::ServerOptions so;
  int parallel = 4;
  double grace = 10;
  std::string key_file, alias;
  bool have_key = false;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (a == "--host") {
      so.host = args.value(a);
    } else if (a == "--port") {
      so.port = static_cast<int>(args.int_value(a, 0, 65535));
    } else if (a == "--parallel") {
      parallel = static_cast<int>(args.int_value(a, 1, 1024));
    } else if (a == "--max-queue") {
      so.max_queue = static_cast<int>(args.int_value(a, 0, 100000));
    } else if (a == "--api-key") {
      so.api_key = args.value(a);
      have_key = true;
      if (so.api_key.empty()) throw UsageError("--api-key: the key is empty");
    } else if (a == "--api-key-file") {
      key_file = args.path_value(a);
    } else if (a == "--timeout") {
      so.io_timeout_s = static_cast<int>(args.int_value(a, 1, 86400));
    } else if (a == "--grace") {
      grace = args.float_value(a, 0, 86400);
    } else if (a == "--max-body") {
      so.max_body_bytes = static_cast<size_t>(args.int_value(a, 1024, int64_t{1} << 34));
    } else if (a == "--alias") {
      alias = args.value(a);
    } else {
      args.unknown(a);
    }
  }
  if (have_key && !key_file.empty()) {
    args.fail("give --api-key or --api-key-file, not both");
  }
  if (!key_file.empty()) so.api_key = read_key_file(key_file);
  so.max_concurrent = parallel;

  // SIGTERM and SIGINT are taken by a thread of their own (sigwait); blocked here, before any
  // thread starts, so that every thread inherits the mask and none is interrupted.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string model_path = mo.model.empty() ? default_model() : mo.model;
  so.model_id = alias.empty() ? model_id(model_path) : alias;
  server::Server server(so);
  const int port = server.start();
  std::fprintf(stderr, "bitnet serve: listening on http://%s:%d (loading %s)\n", so.host.c_str(),
               port, model_path.c_str());
  std::fflush(stderr);

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr,
                 "bitnet serve: %s: not accepting connections; running requests have %g s\n",
                 strsignal(sig), grace);
    server.shutdown(grace);
  });
  auto stop_signal_thread = [&] {
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
  };

  EngineConfig config = mo.engine_config();  // -t, -c, --kv, --layout, --no-cache, --int8-head
  config.max_concurrent_requests = parallel;
  config.max_batch_tokens = std::max<int64_t>(config.max_batch_tokens, parallel);
  std::unique_ptr<Engine> engine;
  try {
    engine = std::make_unique<Engine>(model_path, config);
  } catch (const Error& e) {  // the model (or the configuration from the options) is at fault
    server.shutdown(0);
    stop_signal_thread();
    const std::string msg = e.what();
    if (msg.find("cannot allocate") != std::string::npos) throw std::runtime_error(msg);
    if (msg.rfind("EngineConfig", 0) == 0) throw UsageError(msg);
    throw InputError(msg);
  } catch (...) {
    server.shutdown(0);
    stop_signal_thread();
    throw;
  }
  const EngineInfo& info = engine->info();
  try {
    check_trained_context(mo.n_ctx, info);
  } catch (...) {
    server.shutdown(0);
    stop_signal_thread();
    throw;
  }
  server.set_engine(engine.get());
  std::fprintf(stderr,
               "bitnet serve: ready: model %s (%s), context %lld, %d parallel, %d queued, %d "
               "threads, kernels %s, layout %s, chat template %s%s\n",
               so.model_id.c_str(), info.architecture.c_str(),
               static_cast<long long>(info.context_size), info.max_concurrent_requests,
               so.max_queue, info.threads, info.kernels.c_str(), info.layout.c_str(),
               info.chat_template.c_str(), so.api_key.empty() ? "" : ", API key required");
  std::fflush(stderr);
  server.wait();
  signal_thread.join();
  std::fprintf(stderr, "bitnet serve: stopped\n");
  return 0;
}

}  // namespace

BITNET_COMMAND("serve", kUsage,
               "OpenAI-compatible HTTP server (chat and text completions, streamed or not;\n"
               "models, tokenize, detokenize, health, Prometheus metrics) on continuous\n"
               "batching; SIGTERM/SIGINT drain it and exit 0. Listens on 127.0.0.1 unless\n"
               "--host says otherwise. See docs/SERVING.md",
               kHelp, cmd_serve);

}  // namespace bitnet::cli
