// What the subcommands share: argument parsing, exit codes, the model options, reading input
// files, and progress lines on stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/engine.h"
#include "model/kv-cache.h"
#include "model/model-weights.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::cli {

// Exit codes of every subcommand (`bitnet help` lists them):
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // the work failed (an error while running, writing output)
inline constexpr int kExitUsage = 2;     // bad usage: unknown option, missing or malformed value
inline constexpr int kExitBadInput = 3;  // the model or an input file cannot be read or is invalid
// bench only: 4 a --targets target was missed, 5 --compare found a regression.

// Bad usage (exit 2). Thrown by Args and by the commands' own checks of their options.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The model or an input file cannot be read or is not valid (exit 3).
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// --help or -h among a command's options: main() prints the command's help and exits 0.
struct HelpRequested {};

// A cursor over argv[1..] with helpers that throw UsageError naming the flag. next() throws
// HelpRequested for --help / -h (a value taken by value() is never one: `-p -h` is a prompt).
class Args {
 public:
  Args(int argc, char** argv, std::string usage)
      : argc_(argc), argv_(argv), usage_(std::move(usage)) {}
  bool more() const { return i_ < argc_; }
  const char* peek() const { return i_ < argc_ ? argv_[i_] : ""; }
  std::string next();
  std::string value(const std::string& flag);
  std::string path_value(const std::string& flag);  // value(), refusing an empty one
  int64_t int_value(const std::string& flag, int64_t lo, int64_t hi);
  uint64_t u64_value(const std::string& flag);  // 0..2^64-1, decimal or 0x hex
  double float_value(const std::string& flag, double lo, double hi);
  // "1,2,3" with each entry in [lo, hi].
  std::vector<int64_t> int_list(const std::string& flag, int64_t lo, int64_t hi);
  [[noreturn]] void unknown(const std::string& arg) const;
  // UsageError "<what> (usage: bitnet <usage>)".
  [[noreturn]] void fail(const std::string& what) const;
  const std::string& usage() const { return usage_; }

 private:
  int argc_;
  char** argv_;
  int i_ = 1;
  std::string usage_;
};

// -m/--model, -t/--threads, -c/--ctx-size, --kv f16|f32, --layout t1|t2, --no-cache, --int8-head.
struct CommonModelOptions {
  std::string model;
  int threads = 0;    // 0: all cores
  int64_t n_ctx = 0;  // 0: the command's default (the model's context length for most)
  model::KvType kv = model::KvType::F16;
  std::string layout;
  bool no_cache = false;
  bool int8_head = false;

  bool parse(Args& args);        // consumes one option if it is one of the above
  int resolved_threads() const;  // threads, 0 resolved to the hardware threads
  // n_ctx checked against the model's trained context (UsageError above it), 0 -> fallback.
  int64_t context(const model::ModelConfig& config, int64_t fallback) const;
  EngineConfig engine_config() const;  // one request at a time; context_size as given
};

// The help lines of CommonModelOptions but -c (whose default differs by command), for the
// commands' options text.
#define BITNET_MODEL_OPTIONS_HELP                                                               \
  "  -m, --model FILE      GGUF model file, or a Hugging Face checkpoint directory\n"           \
  "  -t, --threads N       compute threads, also for loading (default: all cores, {threads})\n" \
  "  --kv f16|f32          KV cache element type (default f16; f32 keeps keys and values\n"     \
  "                        exact)\n"                                                            \
  "  --layout t1|t2        packed ternary layout (default: the kernels' choice: t1 with\n"      \
  "                        AVX-512 VNNI, else t2; results are identical)\n"                     \
  "  --no-cache            neither read nor write the prepared-weights cache\n"                 \
  "  --int8-head           the LM head quantized to int8 at load, one scale per row (lossy:\n"  \
  "                        faster where the head is a large part of a step; off by default)\n"

// Loads the model, printing what happened (cache hit or rebuild, time) on stderr, with a progress
// line while weights are packed. Every failure to read or validate the model is an InputError.
std::unique_ptr<model::ModelWeights> load_model(const CommonModelOptions& o);
// The model's tokenizer (load_model_tokenizer); an InputError when it is not valid.
model::Tokenizer load_tokenizer(const model::ModelWeights& weights);

// An Engine on the model with these options (one request at a time); prints how the weights were
// loaded. Every failure to read or validate the model is an InputError.
std::unique_ptr<Engine> open_engine(const CommonModelOptions& o, EngineConfig config);

// UsageError when -c (n_ctx > 0) is above the loaded model's trained context.
void check_trained_context(int64_t n_ctx, const EngineInfo& info);

// UsageError when a non-empty --chat-template NAME is not one this build knows.
void check_chat_template_name(const std::string& name);

// The whole file, or an InputError naming the flag and the file ("-f notes/: is a directory").
std::string read_input_file(const std::string& flag, const std::string& path);
// Checks that `path` can be created or overwritten (before long work whose result it receives):
// an InputError naming the flag otherwise. Leaves no file behind that was not there.
void check_writable(const std::string& flag, const std::string& path);

// While one lives, SIGINT and SIGTERM remove these files (temporaries being written) before the
// process ends as the signal would end it: an interrupted conversion leaves no partial file.
class RemoveOnInterrupt {
 public:
  explicit RemoveOnInterrupt(std::vector<std::string> paths);
  ~RemoveOnInterrupt();
  RemoveOnInterrupt(const RemoveOnInterrupt&) = delete;
  RemoveOnInterrupt& operator=(const RemoveOnInterrupt&) = delete;
};

// Progress of long work on stderr, shown once the work has taken half a second (quick work prints
// nothing). On a terminal one line is rewritten in place; otherwise (a log file, a pipe) a new
// line at most every 10%, so logs stay readable.
class Progress {
 public:
  Progress(std::string label, uint64_t total, std::string unit = "MB", double unit_scale = 1e6);
  void update(uint64_t done);
  void done();  // the last update (when anything was shown) and the end of the line

 private:
  std::string label_, unit_;
  uint64_t total_;
  double scale_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  int shown_ = -1;  // percent last shown
  bool finished_ = false;
};

// "1,2,3" -> ids; throws UsageError on anything else.
std::vector<int32_t> parse_token_list(const std::string& flag, const std::string& s);

// The text with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD,
// so what a command prints is always valid UTF-8 (a model can emit byte tokens that form no
// character).
std::string sanitize_utf8(std::string_view s);

// llama.cpp's -e: \n \t \r \\ \' \" \a \b \f \v \0 and \xHH in a prompt become those bytes.
std::string process_escapes(const std::string& s);

}  // namespace bitnet::cli
