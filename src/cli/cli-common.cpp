#include "cli/cli-common.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "convert/hf-convert.h"
#include "kernels/ternary-matmul.h"
#include "model/model-validate.h"
#include "tokenizer/chat-template.h"

namespace bitnet::cli {

std::string Args::next() {
  std::string a = argv_[i_++];
  if (a == "--help" || a == "-h") throw HelpRequested{};
  return a;
}

std::string Args::value(const std::string& flag) {
  if (i_ >= argc_) fail(flag + " needs a value");
  return argv_[i_++];
}

std::string Args::path_value(const std::string& flag) {
  std::string v = value(flag);
  if (v.empty()) throw UsageError(flag + ": the path is empty");
  return v;
}

void Args::fail(const std::string& what) const {
  // The usage on one line: its continuation lines joined with a space.
  std::string usage;
  for (size_t i = 0; i < usage_.size(); ++i) {
    if (usage_[i] != '\n') {
      usage += usage_[i];
      continue;
    }
    while (i + 1 < usage_.size() && usage_[i + 1] == ' ') ++i;
    usage += ' ';
  }
  throw UsageError(what + " (usage: bitnet " + usage + ")");
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
  if (v.empty() || used != v.size() || x < lo || x > hi) {
    throw UsageError(flag + ": expected an integer in " + std::to_string(lo) + ".." +
                     std::to_string(hi) + ", found '" + v + "'");
  }
  return x;
}

uint64_t Args::u64_value(const std::string& flag) {
  const std::string v = value(flag);
  size_t used = 0;
  unsigned long long x = 0;
  try {
    x = std::stoull(v, &used, 0);
  } catch (const std::exception&) {
    used = 0;
  }
  if (v.empty() || used != v.size() || v[0] == '-') {
    throw UsageError(flag + ": expected a non-negative integer, found '" + v + "'");
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
  if (v.empty() || used != v.size() || !(x >= lo && x <= hi)) {
    char range[64];
    std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
    throw UsageError(flag + ": expected a number in " + range + ", found '" + v + "'");
  }
  return x;
}

std::vector<int64_t> Args::int_list(const std::string& flag, int64_t lo, int64_t hi) {
  const std::string v = value(flag);
  std::vector<int64_t> out;
  size_t start = 0;
  while (true) {
    const size_t comma = v.find(',', start);
    const std::string part = v.substr(start, comma == std::string::npos ? comma : comma - start);
    size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || x < lo || x > hi) {
      throw UsageError(flag + ": expected integers in " + std::to_string(lo) + ".." +
                       std::to_string(hi) + " separated by commas, found '" + v + "'");
    }
    out.push_back(x);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void Args::unknown(const std::string& arg) const {
  fail("unknown option '" + arg + "'");
}

bool CommonModelOptions::parse(Args& args) {
  const std::string a = args.peek();
  if (a == "-m" || a == "--model") {
    args.next();
    model = args.path_value(a);
  } else if (a == "-t" || a == "--threads") {
    args.next();
    threads = static_cast<int>(args.int_value(a, 1, 1024));
  } else if (a == "-c" || a == "--ctx-size") {
    args.next();
    n_ctx = args.int_value(a, 1, model::kMaxContextLength);
  } else if (a == "--kv") {
    args.next();
    const std::string v = args.value(a);
    if (v != "f16" && v != "f32") throw UsageError("--kv: expected f16 or f32, found '" + v + "'");
    kv = v == "f16" ? model::KvType::F16 : model::KvType::F32;
  } else if (a == "--layout") {
    args.next();
    layout = args.value(a);
    if (layout != "t1" && layout != "t2") {
      throw UsageError("--layout: expected t1 or t2, found '" + layout + "'");
    }
  } else if (a == "--no-cache") {
    args.next();
    no_cache = true;
  } else if (a == "--int8-head") {
    args.next();
    int8_head = true;
  } else {
    return false;
  }
  return true;
}

int CommonModelOptions::resolved_threads() const {
  return resolve_threads(threads);
}

int64_t CommonModelOptions::context(const model::ModelConfig& config, int64_t fallback) const {
  if (n_ctx > config.n_ctx_train) {
    throw UsageError("-c " + std::to_string(n_ctx) + " is above the model's trained context of " +
                     std::to_string(config.n_ctx_train) + " tokens (" + model +
                     "); positions past it were never trained");
  }
  return n_ctx > 0 ? n_ctx : std::min(fallback, config.n_ctx_train);
}

EngineConfig CommonModelOptions::engine_config() const {
  EngineConfig c;
  c.threads = threads;
  c.kv_type = kv == model::KvType::F32 ? KvCacheType::F32 : KvCacheType::F16;
  c.context_size = n_ctx;
  if (layout == "t1") c.layout = WeightLayout::T1;
  if (layout == "t2") c.layout = WeightLayout::T2;
  if (no_cache) c.prepared_cache = PreparedCache::Off;
  c.int8_lm_head = int8_head;
  c.max_concurrent_requests = 1;
  return c;
}

namespace {

model::LoadOptions load_options(const CommonModelOptions& o) {
  model::LoadOptions lo;
  if (o.layout == "t1") lo.layout = kernels::TernaryLayout::T1;
  if (o.layout == "t2") lo.layout = kernels::TernaryLayout::T2;
  if (o.no_cache) lo.cache = model::CacheMode::Off;
  lo.int8_head = o.int8_head;
  lo.threads = o.threads;
  return lo;
}

void print_load_report(const std::string& path, const model::ModelWeights& w) {
  const model::LoadReport& r = w.report();
  const char* how = r.source == model::LoadReport::Source::CacheHit       ? "prepared cache"
                    : r.source == model::LoadReport::Source::CacheRebuilt ? "packed, cache written"
                                                                          : "packed";
  std::fprintf(stderr, "loaded %s in %.2f s (%s, layout %s, kernels %s, lm head %s)%s%s\n",
               path.c_str(), r.seconds, how, kernels::layout_name(w.layout()),
               kernels::isa_name(kernels::active_kernels().isa), model::lm_head_name(w).c_str(),
               r.cache_reason.empty() ? "" : "; cache: ", r.cache_reason.c_str());
  if (!r.hf_gguf.empty()) {
    std::fprintf(stderr, "%s Hugging Face directory %s as %s\n",
                 r.hf_converted ? "converted" : "using the conversion of", path.c_str(),
                 r.hf_gguf.c_str());
  }
}

}  // namespace

std::unique_ptr<model::ModelWeights> load_model(const CommonModelOptions& o) {
  model::LoadOptions lo = load_options(o);
  std::unique_ptr<Progress> progress;
  lo.on_pack_progress = [&](int64_t done, int64_t total) {
    if (!progress)
      progress = std::make_unique<Progress>("packing ternary weights, layer", total, "");
    progress->update(static_cast<uint64_t>(done));
    if (done == total) progress->done();
  };
  std::unique_ptr<model::ModelWeights> w;
  try {
    w = model::load_weights(o.model, lo);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(e.what());
  }
  print_load_report(o.model, *w);
  return w;
}

model::Tokenizer load_tokenizer(const model::ModelWeights& weights) {
  try {
    return model::load_model_tokenizer(weights.file(), weights.config());
  } catch (const std::exception& e) {
    throw InputError(e.what());
  }
}

std::unique_ptr<Engine> open_engine(const CommonModelOptions& o, EngineConfig config) {
  std::unique_ptr<Progress> progress;
  config.on_pack_progress = [&](int64_t done, int64_t total) {
    if (!progress)
      progress = std::make_unique<Progress>("packing ternary weights, layer", total, "");
    progress->update(static_cast<uint64_t>(done));
    if (done == total) progress->done();
  };
  std::unique_ptr<Engine> engine;
  try {
    engine = std::make_unique<Engine>(o.model, config);
  } catch (const Error& e) {
    // The Engine names what failed: the model (its file, a tensor, the tokenizer) or the
    // configuration this command built from its options.
    const std::string msg = e.what();
    if (msg.rfind("EngineConfig", 0) == 0) throw UsageError(msg);
    throw InputError(msg);
  }
  const EngineInfo& info = engine->info();
  std::fprintf(stderr, "loaded %s in %.2f s (%s, layout %s, kernels %s, lm head %s, %d threads)\n",
               o.model.c_str(), info.load_seconds, info.weights_source.c_str(), info.layout.c_str(),
               info.kernels.c_str(), info.lm_head.c_str(), info.threads);
  return engine;
}

void check_trained_context(int64_t n_ctx, const EngineInfo& info) {
  if (n_ctx > info.trained_context) {
    throw UsageError("-c " + std::to_string(n_ctx) + " is above the model's trained context of " +
                     std::to_string(info.trained_context) + " tokens");
  }
}

void check_chat_template_name(const std::string& name) {
  if (!name.empty() && !model::chat_template_from_name(name)) {
    throw UsageError("--chat-template: unknown '" + name +
                     "' (known: " + model::kChatTemplateNames + ")");
  }
}

std::string read_input_file(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw InputError(flag + " " + path + ": is a directory, expected a text file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(flag + " " + path + ": cannot open (" + std::strerror(errno) + ")");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw InputError(flag + " " + path + ": read failed");
  return text;
}

void check_writable(const std::string& flag, const std::string& path) {
  // Checked by stat, never by opening: opening a FIFO for writing blocks until a reader comes.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      throw InputError(flag + " " + path + ": is a directory, expected a file name");
    }
    if (!S_ISREG(st.st_mode)) {
      throw InputError(flag + " " + path + ": exists and is not a regular file");
    }
    if (::access(path.c_str(), W_OK) != 0) {
      throw InputError(flag + " " + path + ": cannot be written (" + std::strerror(errno) + ")");
    }
    return;
  }
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  if (!std::filesystem::is_directory(parent, ec)) {
    throw InputError(flag + " " + path + ": the directory " + parent.string() + " does not exist");
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    throw InputError(flag + " " + path + ": cannot create it in " + parent.string() + " (" +
                     std::strerror(errno) + ")");
  }
}

namespace {

// Paths for the signal handler, copied into fixed storage (a handler may not allocate).
constexpr size_t kMaxCleanupPaths = 4;
char g_cleanup[kMaxCleanupPaths][4096];
volatile std::sig_atomic_t g_cleanup_count = 0;
struct sigaction g_old_int {
}, g_old_term{};

void remove_and_reraise(int sig) {
  for (int i = 0; i < g_cleanup_count; ++i) ::unlink(g_cleanup[i]);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

RemoveOnInterrupt::RemoveOnInterrupt(std::vector<std::string> paths) {
  int n = 0;
  for (const std::string& p : paths) {
    if (n == static_cast<int>(kMaxCleanupPaths) || p.size() >= sizeof g_cleanup[0]) break;
    std::memcpy(g_cleanup[n], p.c_str(), p.size() + 1);
    ++n;
  }
  g_cleanup_count = n;
  struct sigaction sa {};
  sa.sa_handler = remove_and_reraise;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

RemoveOnInterrupt::~RemoveOnInterrupt() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
  g_cleanup_count = 0;
}

Progress::Progress(std::string label, uint64_t total, std::string unit, double unit_scale)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      scale_(unit_scale),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

void Progress::update(uint64_t done) {
  if (finished_ || total_ == 0) return;
  if (shown_ < 0 && std::chrono::steady_clock::now() - start_ < std::chrono::milliseconds(500)) {
    return;
  }
  const int percent = static_cast<int>(100 * std::min(done, total_) / total_);
  if (percent == shown_) return;
  // A terminal gets every percent; a log only every 10%.
  const int step = tty_ ? 1 : 10;
  if (percent / step == shown_ / step && done != total_) return;
  shown_ = percent;
  if (unit_.empty()) {
    std::fprintf(stderr, "%s%s %llu/%llu (%d%%)%s", tty_ ? "\r" : "", label_.c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_),
                 percent, tty_ ? "" : "\n");
  } else {
    std::fprintf(stderr, "%s%s %.0f / %.0f %s (%d%%)%s", tty_ ? "\r" : "", label_.c_str(),
                 static_cast<double>(done) / scale_, static_cast<double>(total_) / scale_,
                 unit_.c_str(), percent, tty_ ? "" : "\n");
  }
  std::fflush(stderr);
}

void Progress::done() {
  if (finished_) return;
  if (shown_ >= 0) {
    update(total_);
    if (tty_) std::fputc('\n', stderr);
  }
  finished_ = true;
}

std::vector<int32_t> parse_token_list(const std::string& flag, const std::string& s) {
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
      throw UsageError(flag + ": '" + part + "' is not a token id (expected e.g. 1,2,3)");
    }
    out.push_back(static_cast<int32_t>(v));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    // Length and the range of the second byte (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

std::string process_escapes(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    switch (c) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      case '0':
        out += '\0';
        break;
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'x': {
        auto hex = [](char h) -> int {
          if (h >= '0' && h <= '9') return h - '0';
          if (h >= 'a' && h <= 'f') return h - 'a' + 10;
          if (h >= 'A' && h <= 'F') return h - 'A' + 10;
          return -1;
        };
        if (i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
          out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
          i += 2;
        } else {
          out += "\\x";
        }
        break;
      }
      default:  // unknown escapes stay as written, as llama.cpp leaves them
        out += '\\';
        out += c;
    }
  }
  return out;
}

}  // namespace bitnet::cli
