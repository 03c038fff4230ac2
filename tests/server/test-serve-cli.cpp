// `bitnet serve` as a process: --help lists what the command accepts and every documented option
// takes effect, bad options exit 2 (a bad model 3, an address 1) with the reason, and SIGTERM
// or SIGINT during a load stop accepting, let running streams finish within the grace period (or
// cancel them after it), and exit 0.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "../cli-runner.h"
#include "serve-process.h"
#include "server-test-util.h"

namespace bitnet::test {
namespace {

const std::string kBitnet = BITNET_CLI_PATH;

std::string stream_body(int max_tokens) {
  return json({{"prompt", "Hi"}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", true}})
      .dump();
}

TEST(ServeCli, HelpListsEveryOption) {
  const Result r = run_bitnet({"serve", "--help"});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 0);
  for (const char* flag :
       {"-m MODEL",        "--host",      "--port",        "-t N",           "-c CTX",
        "--parallel",      "--max-queue", "--api-key KEY", "--api-key-file", "--timeout",
        "--grace",         "--max-body",  "--alias",       "--kv",           "/v1/chat/completions",
        "/v1/completions", "/v1/models",  "/tokenize",     "/detokenize",    "/health",
        "/metrics",        "127.0.0.1",   "SIGTERM",       "--layout",       "--no-cache"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << " missing from:\n" << r.out;
  }
  const Result help = run_bitnet({"help"});
  EXPECT_NE(help.out.find("serve [-m MODEL]"), std::string::npos);
  EXPECT_EQ(help.out.find("OpenAI-compatible server and"), std::string::npos);  // "not built"
}

// Exit codes as every command's (cli-common.h): 2 usage, 3 a bad model or key file, 1 a failure
// to listen.
TEST(ServeCli, BadOptionsExit2BadModelsExit3AndBadAddressesExit1) {
  const std::string model = tiny_model();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"-m", model, "--port", "70000"}, 2, "--port"},
      {{"-m", model, "--parallel", "0"}, 2, "--parallel"},
      {{"-m", model, "--timeout", "x"}, 2, "--timeout"},
      {{"-m", model, "--api-key", "a", "--api-key-file", "/etc/hostname"}, 2, "not both"},
      {{"-m", model, "--api-key-file", "/nonexistent/key"}, 3, "/nonexistent/key"},
      {{"-m", model, "--frobnicate"}, 2, "--frobnicate"},
      {{"-m", "/nonexistent/model.gguf", "--port", "0"}, 3, "/nonexistent/model.gguf"},
      {{"-m", model, "--host", "256.1.1.1", "--port", "0"}, 1, "cannot listen on 256.1.1.1"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"serve"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Result r = run_bitnet(args);
    ASSERT_TRUE(r.exited) << c.message;
    EXPECT_EQ(r.code, c.code) << c.message << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
}

// Every option of --help, given at once, does what the help says.
TEST(ServeCli, EveryDocumentedOptionTakesEffect) {
  const TempDir dir("bitnet-serve-cli");
  const std::string key_file = (dir.path() / "key").string();
  { std::ofstream(key_file) << "file-key\n"; }
  ServeProcess p(kBitnet, {"-m",         tiny_model(), "--host",      "127.0.0.1", "--port",
                           "0",          "-t",         "1",           "-c",        "256",
                           "--parallel", "3",          "--max-queue", "5",         "--api-key-file",
                           key_file,     "--timeout",  "1",           "--grace",   "1",
                           "--max-body", "2048",       "--alias",     "my-model",  "--kv",
                           "f32",        "--layout",   "t2",          "--no-cache"},
                 dir.path());
  const int port = p.wait_ready();
  ASSERT_GT(port, 0) << p.err();
  const httplib::Headers auth = {{"Authorization", "Bearer file-key"}};
  EXPECT_EQ(get(port, "/v1/models").status, 401);
  const Reply models = get(port, "/v1/models", auth);
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.j()["data"][0]["id"], "my-model");
  const Reply big = post(port, "/v1/completions", std::string(3000, ' '), auth);
  EXPECT_EQ(big.status, 413);
  const Reply ctx = post(port, "/v1/completions", R"({"prompt": "Hi", "max_tokens": 300})", auth);
  EXPECT_EQ(ctx.status, 400);
  EXPECT_NE(ctx.body.find("256"), std::string::npos) << ctx.body;
  const std::string metrics = get(port, "/metrics").body;
  EXPECT_NE(metrics.find("bitnet_max_concurrent_requests 3"), std::string::npos) << metrics;
  EXPECT_NE(p.err().find("3 parallel, 5 queued, 1 threads"), std::string::npos) << p.err();
  EXPECT_NE(p.err().find("layout t2"), std::string::npos) << p.err();
  {  // --timeout 1: a silent connection is dropped after a second.
    RawConnection silent(port);
    silent.read(4000);
    EXPECT_TRUE(silent.peer_closed());
  }
  p.signal(SIGTERM);
  ASSERT_TRUE(p.exited(10000));
  EXPECT_EQ(p.exit_code(), 0);
}

// SIGTERM during a load: the listening socket closes at once, the running streams complete with
// [DONE] within the grace period, the process exits 0.
TEST(ServeCli, SigtermDuringLoadDrainsAndExitsZero) {
  const TempDir dir("bitnet-serve-cli");
  ServeProcess p(kBitnet,
                 {"-m", tiny_model(), "--port", "0", "-t", "2", "--parallel", "4", "--grace", "30"},
                 dir.path());
  const int port = p.wait_ready();
  ASSERT_GT(port, 0) << p.err();
  std::vector<std::future<Reply>> streams;
  for (int i = 0; i < 6; ++i) {
    streams.push_back(std::async(std::launch::async, [&] {
      return post_stream(port, "/v1/completions", stream_body(600));
    }));
  }
  ASSERT_TRUE(eventually([&] {
    return get(port, "/metrics").body.find("bitnet_requests_in_flight 6") != std::string::npos;
  }));
  p.signal(SIGTERM);
  ASSERT_TRUE(p.wait_for("not accepting connections"));
  EXPECT_TRUE(eventually([&] { return !RawConnection(port).connected(); }, 2000))
      << "still accepting after SIGTERM";
  for (auto& f : streams) {
    const Reply r = f.get();
    EXPECT_EQ(r.status, 200);
    const auto events = sse_data(r.body);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back(), "[DONE]");
  }
  ASSERT_TRUE(p.exited(20000)) << p.err();
  EXPECT_EQ(p.exit_code(), 0) << p.err();
  EXPECT_NE(p.err().find("bitnet serve: stopped"), std::string::npos);
}

// SIGINT with a short grace period: streams still running after it are cancelled (an error event,
// no [DONE]) and the process exits 0.
TEST(ServeCli, SigintCancelsWhatOutlivesTheGracePeriod) {
  const TempDir dir("bitnet-serve-cli");
  ServeProcess p(kBitnet, {"-m", tiny_model(), "--port", "0", "-t", "2", "--grace", "0.2"},
                 dir.path());
  const int port = p.wait_ready();
  ASSERT_GT(port, 0) << p.err();
  auto s = std::async(std::launch::async,
                      [&] { return post_stream(port, "/v1/completions", stream_body(2000)); });
  ASSERT_TRUE(eventually([&] {
    return get(port, "/metrics").body.find("bitnet_requests_in_flight 1") != std::string::npos;
  }));
  p.signal(SIGINT);
  const Reply r = s.get();
  const auto events = sse_data(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back(), "[DONE]");
  EXPECT_NE(events.back().find("shutting_down"), std::string::npos) << events.back();
  ASSERT_TRUE(p.exited(10000)) << p.err();
  EXPECT_EQ(p.exit_code(), 0) << p.err();
}

}  // namespace
}  // namespace bitnet::test
