// The bitnet program's conventions, as a llama.cpp user expects them: --help on every command,
// `bitnet help CMD`, --version, documented exit codes, perplexity computed as llama-perplexity
// does (checked against logits by hand), chat keeping the conversation well-formed in the KV
// cache, and valid UTF-8 output.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli-runner.h"
#include "cli/cli-common.h"
#include "formats/gguf.h"

namespace {

namespace fs = std::filesystem;
using bitnet::test::read_all;
using bitnet::test::Result;
using bitnet::test::run_bitnet;
using bitnet::test::TempDir;

fs::path reference_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  return env && *env ? env : BITNET_REFERENCE_DIR_DEFAULT;
}

#define REQUIRE_FIXTURE(path)                                                                 \
  do {                                                                                        \
    if (!fs::exists(path))                                                                    \
      GTEST_SKIP() << path << " not found; set BITNET_REFERENCE_DIR to the shared reference " \
                   << "directory";                                                            \
  } while (0)

const std::vector<std::string> kCommands = {"bench",      "chat",    "convert",  "cpu",
                                            "gen-dummy",  "inspect", "kl",       "logits",
                                            "perplexity", "run",     "selftest", "tokenize"};

TEST(Help, EveryCommandAnswersHelpAndExits0) {
  for (const std::string& c : kCommands) {
    for (const char* flag : {"--help", "-h"}) {
      SCOPED_TRACE(c + " " + flag);
      const Result r = run_bitnet({c, flag});
      ASSERT_TRUE(r.exited);
      EXPECT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(r.out.rfind("usage: bitnet " + c, 0), 0u) << r.out;
      EXPECT_NE(r.out.find("exit codes:"), std::string::npos) << r.out;
      EXPECT_EQ(r.err, "");
    }
    // After other options too (for the commands that take -m), and `bitnet help CMD` prints
    // the same.
    if (c != "convert" && c != "cpu" && c != "gen-dummy" && c != "inspect" && c != "selftest") {
      const Result after = run_bitnet({c, "-m", "x.gguf", "--help"});
      EXPECT_EQ(after.code, 0) << c << ": " << after.err;
    }
    const Result help = run_bitnet({"help", c});
    EXPECT_EQ(help.code, 0);
    EXPECT_EQ(help.out, run_bitnet({c, "--help"}).out) << c;
  }
}

TEST(Help, ValueThatLooksLikeHelpIsAValue) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const Result r = run_bitnet({"tokenize", "-m", fixture.string(), "-p", "-h"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("usage:"), std::string::npos) << r.out;
}

TEST(Help, TopLevelHelpListsCommandsAndExitCodes) {
  const Result r = run_bitnet({"help"});
  ASSERT_EQ(r.code, 0);
  for (const std::string& c : kCommands) EXPECT_NE(r.out.find("  " + c), std::string::npos) << c;
  EXPECT_NE(r.out.find("3  the model or an input file"), std::string::npos) << r.out;
  const Result unknown = run_bitnet({"help", "nope"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("unknown command 'nope'"), std::string::npos);
}

TEST(Version, PrintsBuildAndCpu) {
  const Result r = run_bitnet({"--version"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("bitnet ", 0), 0u);
  for (const char* field : {"commit:", "build:", "cpu:", "kernels:"}) {
    EXPECT_NE(r.out.find(field), std::string::npos) << r.out;
  }
}

TEST(ExitCodes, UsageIs2BadInputIs3) {
  const TempDir tmp;
  // Usage: an unknown option, a malformed value, a missing required option.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"run", "--bogus"},
           {"run", "-p", "x", "-n", "many"},
           {"perplexity", "-m", "x.gguf"},
           {"bench"},
           {"logits", "-m", "x.gguf", "--tokens", "1,a", "-o", "p"},
           {"cpu", "extra"}}) {
    const Result r = run_bitnet(args);
    EXPECT_EQ(r.code, 2) << args[0] << " " << args[1] << ": " << r.err;
  }
  // Bad input: a missing model, a directory given as a text file.
  const std::string absent = (tmp.path() / "absent.gguf").string();
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"run", "-m", absent, "-p", "x"},
                                             {"inspect", absent},
                                             {"tokenize", "-m", absent, "-p", "x"},
                                             {"run", "-m", absent, "-f", tmp.path().string()}}) {
    const Result r = run_bitnet(args);
    EXPECT_EQ(r.code, 3) << args[0] << ": " << r.err;
  }
  const Result dir = run_bitnet({"run", "-m", absent, "-f", tmp.path().string()});
  EXPECT_NE(dir.err.find("is a directory"), std::string::npos) << dir.err;
  EXPECT_NE(dir.err.find(tmp.path().string()), std::string::npos) << dir.err;
}

TEST(Context, AboveTheTrainedContextIsRefusedByEveryCommand) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const TempDir tmp;
  const fs::path text = tmp.path() / "t.txt";
  std::ofstream(text) << "hello world";
  const std::string m = fixture.string();
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"run", "-m", m, "-p", "hi", "-c", "1024"},
           {"perplexity", "-m", m, "-f", text.string(), "-c", "1024"},
           {"logits", "-m", m, "-p", "hi", "-c", "1024", "-o", (tmp.path() / "l").string()},
           {"kl", "-m", m, "-p", "hello world", "-c", "1024"},
           {"chat", "-m", m, "-c", "1024"}}) {
    SCOPED_TRACE(args[0]);
    const Result r = run_bitnet(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("above the"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("512"), std::string::npos) << r.err;
  }
}

// The llama-perplexity definition computed by hand from `bitnet logits` of each chunk.
double perplexity_by_hand(const std::string& model, const std::vector<int32_t>& ids, int64_t n_ctx,
                          int32_t bos, const fs::path& dir) {
  const auto n_chunk = static_cast<int64_t>(ids.size()) / n_ctx;
  double nll = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < n_chunk; ++c) {
    std::vector<int32_t> chunk(ids.begin() + c * n_ctx, ids.begin() + (c + 1) * n_ctx);
    if (bos >= 0) chunk[0] = bos;
    std::string list;
    for (const int32_t t : chunk) {
      if (!list.empty()) list += ',';
      list += std::to_string(t);
    }
    const std::string prefix = (dir / ("chunk" + std::to_string(c))).string();
    const Result r = run_bitnet({"logits", "-m", model, "--tokens", list, "-o", prefix});
    EXPECT_EQ(r.code, 0) << r.err;
    const std::string raw = read_all(prefix + ".f32");
    const auto V = static_cast<int64_t>(raw.size() / 4 / static_cast<size_t>(n_ctx));
    std::vector<float> logits(raw.size() / 4);
    std::memcpy(logits.data(), raw.data(), raw.size());
    for (int64_t j = n_ctx / 2; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + j * V;
      double mx = -INFINITY, sum = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      nll -= static_cast<double>(row[ids[static_cast<size_t>(c * n_ctx + j + 1)]]) - mx -
             std::log(sum);
      ++count;
    }
  }
  return std::exp(nll / static_cast<double>(count));
}

double printed_perplexity(const std::string& out) {
  const size_t at = out.find("perplexity: ");
  EXPECT_NE(at, std::string::npos) << out;
  return at == std::string::npos ? 0 : std::stod(out.substr(at + 12));
}

std::vector<int32_t> tokenize(const std::string& model, const fs::path& text) {
  const Result r =
      run_bitnet({"tokenize", "-m", model, "-f", text.string(), "--json", "--no-parse-special"});
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out)["ids"].get<std::vector<int32_t>>();
}

TEST(Perplexity, ComputedAsLlamaPerplexityDoes) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const TempDir tmp;
  const fs::path text = tmp.path() / "text.txt";
  {
    std::ofstream out(text);
    for (int i = 0; i < 6; ++i) out << "The quick brown fox jumps over the lazy dog. ";
  }
  const std::string m = fixture.string();
  // With BOS: the vocabulary adds it, so the stream starts with it and every chunk's first token
  // is replaced by it.
  const std::vector<int32_t> ids = tokenize(m, text);
  ASSERT_EQ(ids.front(), 4096);
  const int64_t n_ctx = 16;
  ASSERT_GE(ids.size(), 2u * n_ctx);
  const double want = perplexity_by_hand(m, ids, n_ctx, 4096, tmp.path());
  const Result r = run_bitnet({"perplexity", "-m", m, "-f", text.string(), "-c", "16"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(printed_perplexity(r.out) / want, 1.0, 1e-4) << r.out << " want " << want;
  const int64_t scored = static_cast<int64_t>(ids.size()) / n_ctx * (n_ctx - 1 - n_ctx / 2);
  EXPECT_NE(r.out.find("over " + std::to_string(scored) + " tokens"), std::string::npos) << r.out;

  // Too little text for two chunks, and chunks too short to score anything: clear errors.
  const Result short_text = run_bitnet({"perplexity", "-m", m, "-f", text.string(), "-c", "128"});
  EXPECT_EQ(short_text.code, 3);
  EXPECT_NE(short_text.err.find("needs at least 2 x 128"), std::string::npos) << short_text.err;
  for (const char* c : {"1", "2"}) {
    const Result tiny = run_bitnet({"perplexity", "-m", m, "-f", text.string(), "-c", c});
    EXPECT_EQ(tiny.code, 2) << tiny.err;
    EXPECT_EQ(tiny.out.find("nan"), std::string::npos);
  }
}

TEST(Perplexity, WithoutBosWhenTheModelAddsNone) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const TempDir tmp;
  // The fixture with add_bos_token false.
  const auto src = bitnet::formats::GgufFile::open(fixture.string());
  bitnet::formats::GgufWriter w;
  for (const auto& kv : src.kvs()) w.set(kv.key, kv.value);
  w.set("tokenizer.ggml.add_bos_token", false);
  for (const auto& t : src.tensors()) {
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.dims.begin(), t.dims.begin() + t.n_dims),
                 t.bytes());
  }
  const std::string m = (tmp.path() / "nobos.gguf").string();
  w.write(m);
  const fs::path text = tmp.path() / "text.txt";
  {
    std::ofstream out(text);
    for (int i = 0; i < 6; ++i) out << "The quick brown fox jumps over the lazy dog. ";
  }
  const std::vector<int32_t> ids = tokenize(m, text);
  ASSERT_NE(ids.front(), 4096);
  const double want = perplexity_by_hand(m, ids, 16, -1, tmp.path());
  const Result r = run_bitnet({"perplexity", "-m", m, "-f", text.string(), "-c", "16"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(printed_perplexity(r.out) / want, 1.0, 1e-4) << r.out << " want " << want;
}

// Runs `bitnet chat` with these lines on stdin.
Result chat(const std::vector<std::string>& args, const std::string& input, const fs::path& dir) {
  const fs::path in = dir / "stdin.txt";
  std::ofstream(in) << input;
  std::vector<std::string> a = {"chat"};
  a.insert(a.end(), args.begin(), args.end());
  return run_bitnet(a, 120, in.string());
}

TEST(Chat, CutOffReplyGetsItsEndOfTurnBeforeTheNextTurn) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const TempDir tmp;
  // -n 3 cuts every reply off; an empty line is ignored, not the end of the chat.
  const Result r = chat({"-m", fixture.string(), "-n", "3", "--temp", "0", "--verbose"},
                        "Hello there\n\nAnd again\n", tmp.path());
  ASSERT_EQ(r.code, 0) << r.err;
  // Two turns: the second reuses the first turn from the cache and evaluates the end of the
  // cut-off reply, its <|eot_id|> (4105), then the next user turn ("User", 1502).
  const size_t first = r.err.find("[turn: 0 tokens reused");
  ASSERT_NE(first, std::string::npos) << r.err;
  const size_t second = r.err.find("[turn: ", first + 1);
  ASSERT_NE(second, std::string::npos) << r.err;
  const std::string turn2 = r.err.substr(second, r.err.find('\n', second) - second);
  EXPECT_NE(turn2.find(",4105,1502,"), std::string::npos) << turn2;
  EXPECT_EQ(turn2.find("[turn: 0 tokens reused"), std::string::npos) << turn2;
  EXPECT_EQ(r.err.find("[turn: ", second + 1), std::string::npos) << "three turns: " << r.err;
}

TEST(Bench, CompareRefusesADifferentSetupAndBadPathsFailFirst) {
  const TempDir tmp;
  const std::string m = (tmp.path() / "tiny.gguf").string();
  ASSERT_EQ(run_bitnet({"gen-dummy", "--preset", "tiny-1m", "-o", m}).code, 0);
  const std::vector<std::string> quick = {"bench", "-m", m,   "-p", "8", "-n",
                                          "4",     "-t", "1", "-r", "2", "--no-limits"};
  Result base = run_bitnet([&] {
    auto a = quick;
    a.push_back("--json");
    return a;
  }());
  ASSERT_EQ(base.code, 0) << base.err;
  const fs::path baseline = tmp.path() / "base.json";
  std::ofstream(baseline) << base.out;
  auto with = [&](std::vector<std::string> extra) {
    auto a = quick;
    a.insert(a.end(), extra.begin(), extra.end());
    return run_bitnet(a);
  };
  const Result other_kv = with({"--kv", "f32", "--compare", baseline.string()});
  EXPECT_EQ(other_kv.code, 2) << other_kv.err;
  EXPECT_NE(other_kv.err.find("KV type: f32 now, f16 in the baseline"), std::string::npos)
      << other_kv.err;
  const Result anyway = with({"--kv", "f32", "--compare", baseline.string(), "--compare-anyway"});
  EXPECT_NE(anyway.code, 2) << anyway.err;
  EXPECT_NE(anyway.out.find("WARNING: --compare-anyway"), std::string::npos) << anyway.out;
  // A plot that cannot be written fails before the measurements, not after them.
  const Result plot = with({"--plot", (tmp.path() / "no" / "such" / "x.svg").string()});
  EXPECT_EQ(plot.code, 3) << plot.err;
  EXPECT_EQ(plot.err.find("bench: pp"), std::string::npos) << "measured first: " << plot.err;
  // convert -o DIR is refused before any conversion starts.
  const Result convert = run_bitnet({"convert", tmp.path().string(), "-o", tmp.path().string()});
  EXPECT_EQ(convert.code, 3) << convert.err;
  EXPECT_NE(convert.err.find("is a directory"), std::string::npos) << convert.err;
}

TEST(Outputs, NeverReplaceWhatIsNotARegularFile) {
  const TempDir tmp;
  // A FIFO is refused at once (opening it to check would block until a reader came).
  const fs::path fifo = tmp.path() / "fifo.gguf";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const Result r = run_bitnet({"gen-dummy", "--preset", "tiny-1m", "-o", fifo.string()}, 30);
  ASSERT_TRUE(r.exited) << "hung on a FIFO";
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_fifo(fifo));
  // A symbolic link is written through: the link stays, its target is the model.
  const fs::path target = tmp.path() / "target.gguf", link = tmp.path() / "link.gguf";
  std::ofstream(target) << "old";
  fs::create_symlink(target, link);
  ASSERT_EQ(run_bitnet({"gen-dummy", "--preset", "tiny-1m", "-o", link.string()}).code, 0);
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_GT(fs::file_size(target), 1000u);
  // Empty paths are refused, not taken as "absent" (-m '' would load the default model).
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"run", "-m", "", "-p", "x"},
           {"gen-dummy", "--preset", "tiny-1m", "-o", ""},
           {"run", "-m", target.string(), "-p", "x", "--profile", ""}}) {
    const Result e = run_bitnet(args);
    EXPECT_EQ(e.code, 2) << e.err;
    EXPECT_NE(e.err.find("the path is empty"), std::string::npos) << e.err;
  }
}

TEST(Outputs, AFullDiskIsAFailure) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const Result r =
      run_bitnet({"tokenize", "-m", fixture.string(), "-p", "hello"}, 60, "/dev/null", "/dev/full");
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("writing the output failed"), std::string::npos) << r.err;
}

TEST(Run, ChatTemplateOptionIsUsed) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  auto prompt_tokens = [&](const std::string& tmpl) {
    const Result r =
        run_bitnet({"run", "-m", fixture.string(), "-p", "hi", "-n", "1", "--chat-template", tmpl});
    EXPECT_EQ(r.code, 0) << r.err;
    const size_t at = r.err.find("prompt: ");
    return at == std::string::npos ? -1 : std::stoi(r.err.substr(at + 8));
  };
  const int plain = prompt_tokens("plain"), llama3 = prompt_tokens("llama3");
  EXPECT_GT(plain, 0);
  EXPECT_NE(plain, llama3);  // "User: hi\nAssistant:" vs the header tokens of Llama 3
  const Result bad =
      run_bitnet({"run", "-m", fixture.string(), "-p", "hi", "--chat-template", "jinja"});
  EXPECT_EQ(bad.code, 2) << bad.err;
}

TEST(Inspect, PlanRefusesInvalidFilesAndPlanOptionsNeedPlan) {
  const fs::path vocab = reference_dir() / "tokenizer" / "llama3-bpe-4112.gguf";
  REQUIRE_FIXTURE(vocab);
  const Result plan = run_bitnet({"inspect", "--plan", vocab.string()});
  EXPECT_EQ(plan.code, 3) << plan.out;
  EXPECT_EQ(plan.out, "");
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"inspect", vocab.string(), "-b", "4"},
                                             {"inspect", vocab.string(), "--no-fuse"},
                                             {"inspect", "--plan", "--json", vocab.string()}}) {
    EXPECT_EQ(run_bitnet(args).code, 2) << args[2];
  }
}

TEST(ExitCodes, EnvironmentAndExtraArguments) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  // A bad BITNET_FORCE_ISA is the setting's fault (2), named as such, not the model's.
  setenv("BITNET_FORCE_ISA", "bogus", 1);
  const Result isa = run_bitnet({"run", "-m", fixture.string(), "-p", "hi", "-n", "1"});
  unsetenv("BITNET_FORCE_ISA");
  EXPECT_EQ(isa.code, 2) << isa.err;
  EXPECT_NE(isa.err.find("BITNET_FORCE_ISA"), std::string::npos) << isa.err;
  EXPECT_EQ(run_bitnet({"--version", "extra"}).code, 2);
  EXPECT_EQ(run_bitnet({"help", "help"}).code, 0);
  const Result usage = run_bitnet({"run", "--bogus"});
  EXPECT_EQ(usage.err.find("; "), std::string::npos) << "usage joined badly: " << usage.err;
  const TempDir tmp;
  EXPECT_EQ(
      run_bitnet({"logits", "-m", fixture.string(), "-p", "hi", "-o", tmp.path().string() + "/"})
          .code,
      2);
}

TEST(Chat, ContextFullKeepsTheChatGoing) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const TempDir tmp;
  std::string input;
  for (int i = 0; i < 700; ++i) input += "word ";
  input += "\nhi\n";
  const Result r =
      chat({"-m", fixture.string(), "-n", "2", "--temp", "0", "--verbose"}, input, tmp.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("it was not sent"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("raise -c"), std::string::npos) << "-c is already the model's: " << r.err;
  EXPECT_NE(r.err.find("[turn: "), std::string::npos) << "the next message was not answered";
}

// Ctrl-C at the prompt does not end the chat; a second one in a row does.
TEST(Chat, CtrlCAtThePromptAsksBeforeQuitting) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(BITNET_CLI_PATH, BITNET_CLI_PATH, "chat", "-m", fixture.c_str(), "-n", "2", "--temp", "0",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string seen;
  size_t from = 0;  // searches start after the previous match
  auto read_until = [&](const std::string& what, double seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      const size_t at = seen.find(what, from);
      if (at != std::string::npos) {
        from = at + what.size();
        return true;
      }
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) {
        return false;
      }
      pollfd p{master, POLLIN, 0};
      if (poll(&p, 1, 100) > 0) {
        char buf[4096];
        const ssize_t n = read(master, buf, sizeof buf);
        if (n <= 0) return false;
        seen.append(buf, static_cast<size_t>(n));
      }
    }
  };
  auto send = [&](const std::string& s) {
    ASSERT_EQ(write(master, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  };
  ASSERT_TRUE(read_until("\n> ", 60)) << seen;
  send("hello\n");
  ASSERT_TRUE(read_until("hello", 60)) << seen;  // echoed: the line reached the program
  ASSERT_TRUE(read_until("\n> ", 60)) << seen;   // the reply, then the next prompt
  usleep(200000);                                // the program is now reading the line
  send("\x03");                                  // Ctrl-C at the prompt
  EXPECT_TRUE(read_until("Ctrl-C again", 20)) << seen;
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0) << "the chat ended on one Ctrl-C: " << seen;
  send("/exit\n");
  for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; ++i) usleep(50000);
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ADD_FAILURE() << "the chat did not end on /exit: " << seen;
  }
  close(master);
}

TEST(Utf8, InvalidBytesBecomeReplacementCharacters) {
  using bitnet::cli::sanitize_utf8;
  EXPECT_EQ(sanitize_utf8("plain"), "plain");
  EXPECT_EQ(sanitize_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(sanitize_utf8("a\xC3"), "a\xEF\xBF\xBD");                                // truncated
  EXPECT_EQ(sanitize_utf8("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // never valid
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(sanitize_utf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Utf8, RunPrintsValidUtf8FromARandomModel) {
  const TempDir tmp;
  const std::string m = (tmp.path() / "tiny.gguf").string();
  ASSERT_EQ(run_bitnet({"gen-dummy", "--preset", "tiny-1m", "-o", m}).code, 0);
  // Random weights over a byte-level vocabulary emit many byte tokens: split and broken
  // characters are certain in 300 tokens.
  const Result r = run_bitnet({"run", "-m", m, "-p", "x", "-n", "300", "--temp", "1.5", "-s", "3",
                               "--ignore-eos", "--top-k", "0", "--top-p", "1", "--min-p", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(bitnet::cli::sanitize_utf8(r.out), r.out);
}

}  // namespace
