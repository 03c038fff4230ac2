// bitnet convert: a Hugging Face BitNet checkpoint directory to a GGUF file, streamed tensor by
// tensor (model/hf-convert.h), with a progress line on stderr.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "convert/hf-checkpoint.h"
#include "convert/hf-convert.h"
#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/model-validate.h"

namespace bitnet::cli {
namespace {

using formats::GgmlType;

constexpr const char* kUsage =
    "convert HF_DIR -o OUT.gguf [--type i2_s|tq2_0|tq1_0] [--embd-type f16|q8_0|q6_k|f32]";

constexpr const char* kOptions =
    "  -o, --output FILE     the GGUF file to write (checked before converting)\n"
    "  --type T              ternary linears as i2_s (default; bitnet.cpp's), tq2_0 or tq1_0\n"
    "                        (llama.cpp's)\n"
    "  --embd-type T         token embedding (and output) as f16 (default), q8_0, q6_k or f32\n";

uint32_t parse_type(const std::string& flag, const std::string& v,
                    std::initializer_list<std::pair<const char*, GgmlType>> choices) {
  std::string names;
  for (const auto& [name, type] : choices) {
    if (v == name) return static_cast<uint32_t>(type);
    if (!names.empty()) names += '|';
    names += name;
  }
  throw UsageError(flag + ": expected " + names + ", found '" + v + "'");
}

void convert(const std::string& in_dir, const std::string& out_path, model::HfConvertOptions opt);

int cmd_convert(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  std::string in_dir, out_path;
  model::HfConvertOptions opt;
  while (args.more()) {
    const std::string a = args.next();
    if (a == "-o" || a == "--output") {
      out_path = args.path_value(a);
    } else if (a == "--type") {
      opt.ternary_type = parse_type(
          a, args.value(a),
          {{"i2_s", GgmlType::I2_S}, {"tq2_0", GgmlType::TQ2_0}, {"tq1_0", GgmlType::TQ1_0}});
    } else if (a == "--embd-type") {
      opt.embedding_type = parse_type(a, args.value(a),
                                      {{"f16", GgmlType::F16},
                                       {"q8_0", GgmlType::Q8_0},
                                       {"q6_k", GgmlType::Q6_K},
                                       {"f32", GgmlType::F32}});
    } else if (!a.empty() && a[0] != '-' && in_dir.empty()) {
      in_dir = a;
    } else {
      args.unknown(a);
    }
  }
  if (in_dir.empty() || out_path.empty()) args.fail("HF_DIR and -o OUT.gguf are required");
  check_writable("-o", out_path);  // before the conversion, not after it

  // A checkpoint that cannot be read or converted is bad input (exit 3); failing to write the
  // output is a failure (exit 1).
  try {
    convert(in_dir, out_path, opt);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  } catch (const formats::SafetensorsError& e) {
    throw InputError(e.what());
  } catch (const formats::GgufError& e) {
    throw InputError(e.what());
  }
  return kExitOk;
}

void convert(const std::string& in_dir, const std::string& out_path, model::HfConvertOptions opt) {
  const model::HfCheckpoint ck = model::HfCheckpoint::open(in_dir);
  const model::ModelConfig& c = ck.config();
  std::fprintf(stderr,
               "convert: %s (%s -> arch %s): %lld layers, n_embd %lld, n_ff %lld, vocab %lld, "
               "%s output; linears %s, embeddings %s\n",
               in_dir.c_str(), ck.hf_architecture().c_str(), model::arch_name(c.arch),
               static_cast<long long>(c.n_layer), static_cast<long long>(c.n_embd),
               static_cast<long long>(c.n_ff), static_cast<long long>(c.n_vocab),
               c.tied_output ? "tied" : "separate",
               formats::ggml_type_name(opt.ternary_type).c_str(),
               formats::ggml_type_name(opt.embedding_type).c_str());
  std::unique_ptr<Progress> progress;
  opt.progress = [&progress](size_t i, size_t n, const std::string&) {
    if (!progress) progress = std::make_unique<Progress>("convert: tensor", n, "");
    progress->update(i + 1);
    if (i + 1 == n) progress->done();
  };
  formats::GgufWriter writer;
  const model::HfConvertResult result = model::add_hf_checkpoint(ck, opt, writer);
  // Written beside the target and checked as the loader checks a model before it replaces the
  // target: a checkpoint with NaN or infinite values fails here, naming them.
  const std::string tmp = out_path + ".checking";
  const RemoveOnInterrupt cleanup({tmp, tmp + ".tmp"});
  writer.write(tmp);
  try {
    model::check_converted_model(tmp, in_dir);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw std::runtime_error(out_path + ": cannot move the converted file into place: " + why);
  }
  std::fprintf(stderr, "convert: wrote %s (%zu tensors)\n", out_path.c_str(), ck.tensors().size());
  if (const auto& t = result.tokenizer) {
    std::fprintf(stderr, "convert: tokenizer: %s%s%s, %zu tokens (%zu padding), %zu merges\n",
                 t->model.c_str(), t->pre.empty() ? "" : ", pre ", t->pre.c_str(), t->n_tokens,
                 t->n_padding, t->n_merges);
  } else {
    std::fprintf(stderr,
                 "convert: note: %s has no tokenizer.json; the GGUF has no tokenizer.ggml.* keys\n",
                 in_dir.c_str());
  }
}

}  // namespace

BITNET_COMMAND("convert", kUsage,
               "convert a Hugging Face BitNet checkpoint (BitNetForCausalLM, BitnetForCausalLM,\n"
               "LlamaForCausalLM with a bitnet quantization_config) to GGUF, tensor by tensor,\n"
               "with the tokenizer from tokenizer.json (byte-level BPE or SentencePiece-style);\n"
               "packed uint8 weights are unpacked, bf16/f16/f32 master weights ternarised with\n"
               "absmean",
               kOptions, cmd_convert);

}  // namespace bitnet::cli
