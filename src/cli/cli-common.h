// Argument parsing and model options shared by the subcommands that run a model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/bitnet-b158.h"
#include "model/model-weights.h"

namespace bitnet::cli {

// A cursor over argv[1..] with helpers that throw std::invalid_argument naming the flag.
class Args {
 public:
  Args(int argc, char** argv, std::string usage)
      : argc_(argc), argv_(argv), usage_(std::move(usage)) {}
  bool more() const { return i_ < argc_; }
  const char* peek() const { return i_ < argc_ ? argv_[i_] : ""; }
  std::string next() { return argv_[i_++]; }
  std::string value(const std::string& flag);
  int64_t int_value(const std::string& flag, int64_t lo, int64_t hi);
  double float_value(const std::string& flag, double lo, double hi);
  [[noreturn]] void unknown(const std::string& arg) const;

 private:
  int argc_;
  char** argv_;
  int i_ = 1;
  std::string usage_;
};

// -m MODEL, -t THREADS, -c CTX, --kv f16|f32, --layout t1|t2, --no-cache.
struct CommonModelOptions {
  std::string model;
  int threads = 0;  // 0: all cores
  int64_t n_ctx = 0;
  model::KvType kv = model::KvType::F16;
  std::string layout;
  bool no_cache = false;

  CommonModelOptions();
  bool parse(Args& args);  // consumes one option if it is one of the above
  model::SessionOptions session_options() const;
};

// Loads the model, printing what happened (cache hit or rebuild, time) on stderr.
std::unique_ptr<model::ModelWeights> load_model(const CommonModelOptions& o);

// "1,2,3" -> ids; throws std::invalid_argument on anything else.
std::vector<int32_t> parse_token_list(const std::string& s);

}  // namespace bitnet::cli
