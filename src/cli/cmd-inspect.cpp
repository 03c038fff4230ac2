// bitnet inspect MODEL [--json]: what a GGUF model file holds and whether this build can run it.
// Exit 0 when the file is a valid model, 1 when it parses but fails validation (everything is still
// printed), 2 on usage errors; a file that cannot be read or parsed is an error from main().
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "kernels/ternary-matmul.h"
#include "model/execution-plan.h"
#include "model/model-config.h"
#include "tools/model-info.h"

namespace bitnet::cli {
namespace {

using model::ModelInfo;

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

// The shortest decimal that reads back to v: "500000" and "1e-05", not "5e+05" or "1e-05f" noise.
std::string shortest(float v) {
  char buf[64];
  const float a = v < 0 ? -v : v;
  const bool fixed = a == 0.0f || (a >= 1e-3f && a < 1e9f);
  const auto r = fixed ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                       : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Token text in double quotes, control bytes escaped; UTF-8 passes through.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string dims_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

void print_architecture(const ModelInfo& info) {
  if (!info.arch_name) {
    std::printf("architecture: (none: general.architecture is missing)\n");
    return;
  }
  if (!info.arch_supported) {
    std::printf("architecture: %s (not a BitNet architecture this build runs)\n",
                info.arch_name->c_str());
    return;
  }
  if (!info.config) {
    std::printf("architecture: %s (hyper-parameters unreadable: %s)\n", info.arch_name->c_str(),
                info.config_error.c_str());
    return;
  }
  const model::ModelConfig& c = *info.config;
  std::printf("architecture: %s", info.arch_name->c_str());
  if (c.arch_key != model::arch_name(c.arch))
    std::printf(" (runs as %s)", model::arch_name(c.arch));
  std::printf(
      "\n  n_embd %lld, n_layer %lld, n_head %lld, n_head_kv %lld (head_dim %lld), n_ff %lld, "
      "n_vocab %lld, n_ctx_train %lld\n",
      static_cast<long long>(c.n_embd), static_cast<long long>(c.n_layer),
      static_cast<long long>(c.n_head), static_cast<long long>(c.n_head_kv),
      static_cast<long long>(c.head_dim), static_cast<long long>(c.n_ff),
      static_cast<long long>(c.n_vocab), static_cast<long long>(c.n_ctx_train));
  std::printf("  rope freq_base %s, rope dims %lld, rms_eps %s, FFN %s, output %s\n",
              shortest(c.rope_freq_base).c_str(), static_cast<long long>(c.rope_dim),
              shortest(c.rms_eps).c_str(),
              c.activation == model::FfnActivation::Relu2 ? "relu2(gate) * up" : "silu(gate) * up",
              c.tied_output ? "tied to token_embd" : "output.weight");
}

void print_tokenizer(const ModelInfo& info) {
  const model::TokenizerSummary& t = info.tokenizer;
  if (!t.present()) {
    std::printf("tokenizer:    none\n");
    return;
  }
  std::printf("tokenizer:    %s, pre %s, %lld tokens, %lld merges\n",
              t.model ? t.model->c_str() : "(no tokenizer.ggml.model)",
              t.pre ? t.pre->c_str() : "(none)", static_cast<long long>(t.n_tokens),
              static_cast<long long>(t.n_merges));
  std::string special;
  for (const model::SpecialToken& s : t.special) {
    special += (special.empty() ? "" : ", ") + s.role + " " + std::to_string(s.id) + " " +
               (s.text ? quoted(*s.text) : "(out of range)");
  }
  std::printf("  %s\n", special.empty() ? "no special token ids" : special.c_str());
  auto flag = [](const std::optional<bool>& b) { return b ? (*b ? "true" : "false") : "unset"; };
  std::printf("  add_bos %s, add_eos %s, chat template %s\n", flag(t.add_bos), flag(t.add_eos),
              t.has_chat_template ? "present" : "absent");
}

void print_tensors(const ModelInfo& info) {
  std::printf("tensors:      %zu\n", info.tensors.size());
  if (info.tensors.empty()) return;
  size_t name_w = 4, dims_w = 4;
  for (const auto& t : info.tensors) {
    name_w = std::max(name_w, t.name.size());
    dims_w = std::max(dims_w, dims_text(t.dims).size());
  }
  const int nw = static_cast<int>(name_w), dw = static_cast<int>(dims_w);
  std::printf("  %-*s  %-6s  %-*s  %10s\n", nw, "name", "type", dw, "dims", "bytes");
  for (const auto& t : info.tensors) {
    std::printf("  %-*s  %-6s  %-*s  %10llu%s\n", nw, t.name.c_str(),
                formats::ggml_type_name(t.type).c_str(), dw, dims_text(t.dims).c_str(),
                static_cast<unsigned long long>(t.bytes), t.ternary ? "  ternary" : "");
  }
}

void print_totals(const ModelInfo& info) {
  std::printf("totals:       %llu parameters", static_cast<unsigned long long>(info.n_parameters));
  if (info.n_ternary_parameters) {
    std::printf(" (%llu ternary)", static_cast<unsigned long long>(*info.n_ternary_parameters));
  }
  std::printf(", %llu bytes of tensor data (%s)\n",
              static_cast<unsigned long long>(info.tensor_bytes), mib(info.tensor_bytes).c_str());
  for (const model::TypeTotal& t : info.by_type) {
    std::printf("  %-6s %4lld tensor%s %12llu elements %12llu bytes (%s)\n",
                formats::ggml_type_name(t.type).c_str(), static_cast<long long>(t.n_tensors),
                t.n_tensors == 1 ? " " : "s", static_cast<unsigned long long>(t.n_elements),
                static_cast<unsigned long long>(t.bytes), mib(t.bytes).c_str());
  }
  if (info.bytes_per_token) {
    std::printf("bytes read per generated token: %llu (%s)\n",
                static_cast<unsigned long long>(*info.bytes_per_token),
                mib(*info.bytes_per_token).c_str());
  }
}

void print_text(const ModelInfo& info) {
  std::printf("file:         %s\n", info.path.c_str());
  std::printf(
      "gguf:         version %u, alignment %u, %llu bytes (%s), %s, %lld metadata keys, data at "
      "offset %llu\n",
      info.gguf_version, info.alignment, static_cast<unsigned long long>(info.file_size),
      mib(info.file_size).c_str(), info.mapped ? "memory-mapped" : "read into memory",
      static_cast<long long>(info.n_metadata), static_cast<unsigned long long>(info.data_offset));
  if (info.name) std::printf("name:         %s\n", info.name->c_str());
  if (info.file_type) {
    const auto ft = model::file_type_name(*info.file_type);
    std::printf("file type:    %u%s\n", *info.file_type, ft ? (" (" + *ft + ")").c_str() : "");
  }
  print_architecture(info);
  print_tokenizer(info);
  print_tensors(info);
  print_totals(info);
  if (info.valid()) {
    std::printf("verdict:      valid\n");
  } else {
    std::printf("verdict:      INVALID (%zu problem%s)\n", info.problems.size(),
                info.problems.size() == 1 ? "" : "s");
    for (const std::string& p : info.problems) std::printf("  - %s\n", p.c_str());
  }
}

}  // namespace

int cmd_inspect(int argc, char** argv);

constexpr const char* kUsage =
    "inspect MODEL [--json] | inspect --plan MODEL [-b ROWS] [--no-fuse] [--no-act-quant]";

constexpr const char* kOptions =
    "  --json                the same report as one JSON object\n"
    "  --plan                the execution plan instead of the report\n"
    "  -b, --batch ROWS      rows per step for --plan (default 256)\n"
    "  --no-fuse             --plan with the norm+quantization fusions switched off\n"
    "  --no-act-quant        --plan in the validation mode\n"
    "  (the verdict runs every check the engine makes when it loads the file: structure,\n"
    "  every value, ternary codes, the tokenizer; exit 0 when valid, 3 when not)\n";

BITNET_COMMAND("inspect", kUsage,
               "architecture, hyper-parameters, tokenizer, every tensor, totals, bytes read per\n"
               "generated token and the validation verdict of a GGUF model (exit 3 if invalid).\n"
               "--plan prints the execution plan instead: the fusions applied, the operations of\n"
               "a step with their buffers, and the activation arena laid out by liveness",
               kOptions, cmd_inspect);

int cmd_inspect(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  std::string path;
  bool json = false, plan = false, plan_options = false;
  model::PlanOptions po;
  po.max_rows = 256;
  while (args.more()) {
    const std::string a = args.next();
    if (a == "--json") {
      json = true;
    } else if (a == "--plan") {
      plan = true;
    } else if (a == "--no-fuse") {
      po.fused_norm_quant = false;
    } else if (a == "--no-act-quant") {
      po.quantize_activations = false;
    } else if (a == "-b" || a == "--batch") {
      po.max_rows = args.int_value(a + " (rows per step)", 1, 1 << 20);
      plan_options = true;
    } else if (!a.empty() && a[0] == '-') {
      args.unknown(a);
    } else if (path.empty()) {
      path = a;
    } else {
      args.fail("takes one MODEL, found a second: '" + a + "'");
    }
  }
  if (path.empty()) args.fail("missing MODEL");
  if (!plan && (plan_options || !po.fused_norm_quant || !po.quantize_activations)) {
    args.fail("-b, --no-fuse and --no-act-quant apply to --plan only");
  }
  if (plan && json) args.fail("--plan has no --json form");

  std::optional<formats::GgufFile> opened;
  try {
    opened.emplace(formats::GgufFile::open(path));
  } catch (const std::exception& e) {
    throw InputError(e.what());
  }
  const formats::GgufFile& file = *opened;
  if (plan) {
    // The plan of a file the engine would refuse is no plan: the same verdict as the report's.
    const ModelInfo checked = model::gather_model_info(file);
    if (!checked.valid()) {
      throw InputError(path + ": not a valid model (" + checked.problems.front() +
                       (checked.problems.size() > 1
                            ? "; and " + std::to_string(checked.problems.size() - 1) + " more"
                            : "") +
                       "): `bitnet inspect " + path + "` lists the problems");
    }
    const model::ModelConfig cfg = *checked.config;
    // The layout the loader picks (model-weights.h): the one the active kernels prefer.
    const kernels::TernaryLayout layout = kernels::preferred_layout(kernels::active_kernels());
    std::printf("%s: %s, %lld layers, weights layout %s, kernels %s\n", path.c_str(),
                cfg.arch_key.c_str(), static_cast<long long>(cfg.n_layer),
                kernels::layout_name(layout), kernels::isa_name(kernels::active_kernels().isa));
    std::fputs(model::ExecutionPlan(cfg, layout, po).describe().c_str(), stdout);
    return 0;
  }
  const ModelInfo info = model::gather_model_info(file);
  if (json) {
    // Replace invalid UTF-8 (token text, paths) rather than throw: the report must always print.
    std::puts(model::model_info_json(info)
                  .dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                  .c_str());
  } else {
    print_text(info);
  }
  return info.valid() ? kExitOk : kExitBadInput;
}

}  // namespace bitnet::cli
