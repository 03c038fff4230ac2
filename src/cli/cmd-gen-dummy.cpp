// bitnet gen-dummy: writes a random-weight GGUF model with the exact shapes of a real one
// (model/dummy-model.h), or lists the presets.
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "core/timer.h"
#include "formats/ggml-types.h"
#include "tools/dummy-model.h"

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
  Args args(argc, argv, kUsage);
  std::string preset_name, out_path;
  model::DummyOptions options;
  bool list = false;
  while (args.more()) {
    const std::string a = args.next();
    try {
      if (a == "--preset") {
        preset_name = args.value(a);
      } else if (a == "--type") {
        options.linear_type = model::parse_dummy_linear_type(args.value(a));
      } else if (a == "--embd-type") {
        options.embd_type = model::parse_dummy_embd_type(args.value(a));
      } else if (a == "--seed") {
        options.seed = args.u64_value(a);
      } else if (a == "-o" || a == "--output") {
        out_path = args.path_value(a);
      } else if (a == "--list") {
        list = true;
      } else {
        args.unknown(a);
      }
    } catch (const UsageError&) {
      throw;
    } catch (const std::invalid_argument& e) {  // the parsers' "unknown type" messages
      throw UsageError(a + ": " + e.what());
    }
  }
  if (list) {
    list_presets();
    return 0;
  }
  std::string known;
  for (const auto& p : model::dummy_presets()) known += (known.empty() ? "" : ", ") + p.name;
  if (preset_name.empty()) args.fail("--preset is required (one of: " + known + ")");
  if (out_path.empty()) args.fail("-o FILE is required");
  const model::DummyPreset* found = nullptr;
  try {
    found = &model::find_dummy_preset(preset_name);
    model::check_dummy_options(*found, options);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  const model::DummyPreset& preset = *found;
  check_writable("-o", out_path);

  const uint64_t total = model::dummy_tensor_bytes(preset, options);
  Progress bar("writing " + out_path + ":", total);
  model::DummyProgress progress;
  if (total >= kProgressBytes) {
    progress = [&bar](size_t, size_t, uint64_t bytes) { bar.update(bytes); };
  }
  const auto t0 = std::chrono::steady_clock::now();
  {
    const RemoveOnInterrupt cleanup({out_path + ".tmp"});
    model::write_dummy_model(preset, options, out_path, progress);
  }
  if (total >= kProgressBytes) bar.done();
  std::printf("wrote %s: preset %s, linears %s, embedding %s, seed %llu, %s in %.1f s\n",
              out_path.c_str(), preset.name.c_str(),
              formats::ggml_type_name(options.linear_type).c_str(),
              formats::ggml_type_name(options.embd_type).c_str(),
              static_cast<unsigned long long>(options.seed),
              size_text(model::dummy_file_bytes(preset, options)).c_str(), seconds_since(t0));
  return kExitOk;
}

}  // namespace

BITNET_COMMAND("gen-dummy", kUsage,
               "write a random-weight model with the exact shapes of a real one (2b4t,\n"
               "bitnet-large, bitnet-3b, llama3-8b-1.58, falcon3-10b-1.58) or a small one for\n"
               "tests and benchmarks (tiny-1m, medium-100m), with a synthetic byte-level\n"
               "tokenizer; --list shows presets, parameters and sizes",
               "  --preset NAME         the shapes (--list shows them all)\n"
               "  --type T              linears as i2_s (default), tq2_0, tq1_0 or f16\n"
               "  --embd-type T         embedding (and output) as f16 (default), q8_0 or q6_k\n"
               "  --seed S              weights seed (default 0)\n"
               "  -o, --output FILE     the GGUF file to write\n"
               "  --list                the presets, their parameters and file sizes\n",
               cmd_gen_dummy);

}  // namespace bitnet::cli
