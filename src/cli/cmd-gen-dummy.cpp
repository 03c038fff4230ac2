// bitnet gen-dummy: writes a random-weight GGUF model with the exact shapes of a real one
// (model/dummy-model.h), or lists the presets.
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "cli/commands.h"
#include "core/timer.h"
#include "formats/ggml-types.h"
#include "model/dummy-model.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "gen-dummy --preset NAME [--type i2_s|tq2_0|tq1_0|f16] [--embd-type f16|q8_0|q6_k] "
    "[--seed S] -o FILE | --list";

// Files above this size get a progress line on stderr.
constexpr uint64_t kProgressBytes = uint64_t{64} << 20;

std::string size_text(uint64_t bytes) {
  char buf[32];
  if (bytes >= (uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(bytes) / 1e9);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  }
  return buf;
}

// Size of the preset with f16 embeddings and this linear type, or "-" when it cannot be stored so.
std::string size_cell(const model::DummyPreset& p, const char* linear) {
  model::DummyOptions o;
  o.linear_type = model::parse_dummy_linear_type(linear);
  try {
    return size_text(model::dummy_file_bytes(p, o));
  } catch (const std::invalid_argument&) {
    return "-";
  }
}

void list_presets() {
  std::printf("%-17s %-13s %7s %7s %10s %10s %10s %10s  %s\n", "preset", "arch", "ternary", "total",
              "i2_s", "tq2_0", "tq1_0", "f16", "mirrors");
  for (const model::DummyPreset& p : model::dummy_presets()) {
    const auto& c = p.config;
    std::printf("%-17s %-13s %6.3gB %6.3gB %10s %10s %10s %10s  %s\n", p.name.c_str(),
                model::arch_name(c.arch),
                static_cast<double>(model::ternary_parameter_count(c)) / 1e9,
                static_cast<double>(model::total_parameter_count(c)) / 1e9,
                size_cell(p, "i2_s").c_str(), size_cell(p, "tq2_0").c_str(),
                size_cell(p, "tq1_0").c_str(), size_cell(p, "f16").c_str(), p.summary.c_str());
  }
  std::printf(
      "\nsizes: estimated file bytes with --embd-type f16 (q8_0 / q6_k shrink the embedding to\n"
      "53%% / 41%%); '-' = the shapes do not fit that type's blocks. Parameters: ternary = the\n"
      "seven linear kinds, total adds embeddings and norms.\n");
}

int cmd_gen_dummy(int argc, char** argv) {
  std::string preset_name, out_path;
  model::DummyOptions options;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        throw std::invalid_argument(a + " needs a value (usage: bitnet " + kUsage + ")");
      return argv[++i];
    };
    if (a == "--preset") {
      preset_name = value();
    } else if (a == "--type") {
      options.linear_type = model::parse_dummy_linear_type(value());
    } else if (a == "--embd-type") {
      options.embd_type = model::parse_dummy_embd_type(value());
    } else if (a == "--seed") {
      const std::string v = value();
      size_t used = 0;
      unsigned long long seed = 0;
      try {
        seed = std::stoull(v, &used, 0);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != v.size() || v.empty() || v[0] == '-') {
        throw std::invalid_argument("--seed '" + v + "' is not a non-negative integer");
      }
      options.seed = seed;
    } else if (a == "-o" || a == "--output") {
      out_path = value();
    } else if (a == "--list") {
      list = true;
    } else {
      throw std::invalid_argument("unknown option '" + a + "' (usage: bitnet " + kUsage + ")");
    }
  }
  if (list) {
    list_presets();
    return 0;
  }
  if (preset_name.empty()) {
    std::string known;
    for (const auto& p : model::dummy_presets()) known += (known.empty() ? "" : ", ") + p.name;
    throw std::invalid_argument("--preset is required (one of: " + known + ")");
  }
  const model::DummyPreset& preset = model::find_dummy_preset(preset_name);
  if (out_path.empty()) throw std::invalid_argument("-o FILE is required");
  model::check_dummy_options(preset, options);

  const uint64_t total = model::dummy_tensor_bytes(preset, options);
  const bool show = total >= kProgressBytes;
  model::DummyProgress progress;
  if (show) {
    // One update per percent, not per tensor: a 2B4T file has 332 tensors.
    progress = [total, shown = -1](size_t done, size_t n, uint64_t bytes) mutable {
      const int percent = static_cast<int>(100 * bytes / total);
      if (percent == shown && done != n) return;
      shown = percent;
      std::fprintf(stderr, "\rtensor %zu/%zu, %.0f / %.0f MB", done, n,
                   static_cast<double>(bytes) / 1e6, static_cast<double>(total) / 1e6);
      std::fflush(stderr);
    };
  }
  const auto t0 = std::chrono::steady_clock::now();
  model::write_dummy_model(preset, options, out_path, progress);
  if (show) std::fprintf(stderr, "\n");
  std::printf("wrote %s: preset %s, linears %s, embedding %s, seed %llu, %s in %.1f s\n",
              out_path.c_str(), preset.name.c_str(),
              formats::ggml_type_name(options.linear_type).c_str(),
              formats::ggml_type_name(options.embd_type).c_str(),
              static_cast<unsigned long long>(options.seed),
              size_text(model::dummy_file_bytes(preset, options)).c_str(), seconds_since(t0));
  return 0;
}

}  // namespace

BITNET_COMMAND("gen-dummy", kUsage,
               "write a random-weight model with the exact shapes of a real one (2b4t,\n"
               "bitnet-large, bitnet-3b, llama3-8b-1.58, falcon3-10b-1.58) or a small one for\n"
               "tests and benchmarks (tiny-1m, medium-100m), with a synthetic byte-level\n"
               "tokenizer; --list shows presets, parameters and sizes",
               cmd_gen_dummy);

}  // namespace bitnet::cli
