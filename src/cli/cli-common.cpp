#include "cli/cli-common.h"

#include <cstdio>
#include <stdexcept>
#include <thread>

namespace bitnet::cli {

std::string Args::value(const std::string& flag) {
  if (i_ >= argc_)
    throw std::invalid_argument(flag + " needs a value (usage: bitnet " + usage_ + ")");
  return argv_[i_++];
}

int64_t Args::int_value(const std::string& flag, int64_t lo, int64_t hi) {
  const std::string v = value(flag);
  size_t used = 0;
  int64_t x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || x < lo || x > hi) {
    throw std::invalid_argument(flag + ": expected an integer in " + std::to_string(lo) + ".." +
                                std::to_string(hi) + ", found '" + v + "'");
  }
  return x;
}

double Args::float_value(const std::string& flag, double lo, double hi) {
  const std::string v = value(flag);
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || !(x >= lo && x <= hi)) {
    throw std::invalid_argument(flag + ": expected a number in [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "], found '" + v + "'");
  }
  return x;
}

void Args::unknown(const std::string& arg) const {
  throw std::invalid_argument("unknown option '" + arg + "' (usage: bitnet " + usage_ + ")");
}

CommonModelOptions::CommonModelOptions()
    : threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {}

bool CommonModelOptions::parse(Args& args) {
  const std::string a = args.peek();
  if (a == "-m" || a == "--model") {
    args.next();
    model = args.value(a);
  } else if (a == "-t" || a == "--threads") {
    args.next();
    threads = static_cast<int>(args.int_value(a, 1, 1024));
  } else if (a == "-c" || a == "--ctx-size") {
    args.next();
    n_ctx = args.int_value(a, 1, int64_t{1} << 24);
  } else if (a == "--kv") {
    args.next();
    const std::string v = args.value(a);
    if (v != "f16" && v != "f32")
      throw std::invalid_argument("--kv: expected f16 or f32, found '" + v + "'");
    kv = v == "f16" ? model::KvType::F16 : model::KvType::F32;
  } else if (a == "--layout") {
    args.next();
    layout = args.value(a);
    if (layout != "t1" && layout != "t2") {
      throw std::invalid_argument("--layout: expected t1 or t2, found '" + layout + "'");
    }
  } else if (a == "--no-cache") {
    args.next();
    no_cache = true;
  } else {
    return false;
  }
  return true;
}

model::SessionOptions CommonModelOptions::session_options() const {
  model::SessionOptions so;
  so.n_ctx = n_ctx;
  so.kv = kv;
  return so;
}

std::unique_ptr<model::ModelWeights> load_model(const CommonModelOptions& o) {
  model::LoadOptions lo;
  if (o.layout == "t1") lo.layout = kernels::TernaryLayout::T1;
  if (o.layout == "t2") lo.layout = kernels::TernaryLayout::T2;
  if (o.no_cache) lo.cache = model::CacheMode::Off;
  auto w = model::ModelWeights::load(o.model, lo);
  const auto& r = w->report();
  const char* how = r.source == model::LoadReport::Source::CacheHit       ? "prepared cache"
                    : r.source == model::LoadReport::Source::CacheRebuilt ? "packed, cache written"
                                                                          : "packed";
  std::fprintf(stderr, "loaded %s in %.2f s (%s, layout %s, kernels %s)%s%s\n", o.model.c_str(),
               r.seconds, how, kernels::layout_name(w->layout()),
               kernels::isa_name(kernels::active_kernels().isa),
               r.cache_reason.empty() ? "" : "; cache: ", r.cache_reason.c_str());
  if (!r.hf_gguf.empty()) {
    std::fprintf(stderr, "%s Hugging Face directory %s as %s\n",
                 r.hf_converted ? "converted" : "using the conversion of", o.model.c_str(),
                 r.hf_gguf.c_str());
  }
  return w;
}

std::vector<int32_t> parse_token_list(const std::string& s) {
  std::vector<int32_t> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const std::string part =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || v < 0 || v > INT32_MAX) {
      throw std::invalid_argument("--tokens: '" + part +
                                  "' is not a token id (expected e.g. 1,2,3)");
    }
    out.push_back(static_cast<int32_t>(v));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace bitnet::cli
