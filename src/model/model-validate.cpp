#include "model/model-validate.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>

#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"

namespace bitnet::model {
namespace {

using formats::GgmlType;
using formats::GgufTensorInfo;

constexpr uint32_t id(GgmlType t) {
  return static_cast<uint32_t>(t);
}

// How one tensor type stores values that can be non-finite: a field of `bits` at the start of
// every `stride`-byte unit (the element itself for float types, the fp16 scale d of a block).
struct FloatFields {
  size_t stride = 0;       // bytes per unit
  size_t offset = 0;       // of the field inside the unit
  uint32_t exp_mask = 0;   // exponent bits: all set means inf or NaN
  size_t field_bytes = 0;  // 2 or 4
  int64_t elems_per_unit = 1;
};

std::optional<FloatFields> float_fields(uint32_t type) {
  if (type == id(GgmlType::F32)) return FloatFields{4, 0, 0x7f800000u, 4, 1};
  if (type == id(GgmlType::F16)) return FloatFields{2, 0, 0x7c00u, 2, 1};
  if (type == id(GgmlType::BF16)) return FloatFields{2, 0, 0x7f80u, 2, 1};
  if (type == id(GgmlType::Q8_0)) return FloatFields{34, 0, 0x7c00u, 2, 32};
  if (type == id(GgmlType::Q6_K)) return FloatFields{210, 208, 0x7c00u, 2, 256};
  return std::nullopt;
}

// The first unit in [begin, end) whose field is inf or NaN, or -1. Branch-free over the range
// (the common case: nothing found), then located.
int64_t first_non_finite(const uint8_t* data, const FloatFields& f, int64_t begin, int64_t end) {
  auto field = [&](int64_t u) {
    const uint8_t* p = data + static_cast<size_t>(u) * f.stride + f.offset;
    if (f.field_bytes == 4) {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    uint16_t v;
    std::memcpy(&v, p, 2);
    return static_cast<uint32_t>(v);
  };
  uint32_t any = 0;
  if (f.stride == 2 && f.offset == 0) {  // the bulk of a model: F16 embeddings (vectorizes)
    const auto* h = reinterpret_cast<const uint8_t*>(data);
    for (int64_t u = begin; u < end; ++u) {
      uint16_t v;
      std::memcpy(&v, h + 2 * u, 2);
      any |= static_cast<uint32_t>((v & f.exp_mask) == f.exp_mask);
    }
  } else {
    for (int64_t u = begin; u < end; ++u)
      any |= static_cast<uint32_t>((field(u) & f.exp_mask) == f.exp_mask);
  }
  if (!any) return -1;
  for (int64_t u = begin; u < end; ++u) {
    if ((field(u) & f.exp_mask) == f.exp_mask) return u;
  }
  return -1;
}

std::string describe_value(const uint8_t* data, const FloatFields& f, int64_t unit) {
  const uint8_t* p = data + static_cast<size_t>(unit) * f.stride + f.offset;
  const uint32_t mant_mask =
      f.field_bytes == 4 ? 0x007fffffu : (f.exp_mask == 0x7c00u ? 0x03ffu : 0x007fu);
  uint32_t v = 0;
  std::memcpy(&v, p, f.field_bytes);
  return (v & mant_mask) ? "NaN" : "infinite";
}

struct Job {
  const GgufTensorInfo* tensor;
  bool ternary;
  int64_t begin = 0, end = 0;  // units (float scan) of this piece
};

}  // namespace

std::vector<std::string> validate_tensor_values(const ModelConfig& config,
                                                const formats::GgufFile& file, ValueCheck which,
                                                ThreadPool* pool) {
  // Work items: float tensors cut into pieces of about 4 MiB, ternary tensors whole.
  constexpr int64_t kPieceBytes = int64_t{4} << 20;
  std::vector<Job> jobs;
  for (const TensorSpec& s : expected_tensors(config)) {
    const GgufTensorInfo* t = file.find_tensor(s.name);
    if (!t) continue;
    if (s.ternary) {  // NonTernary: the loader's decode_ternary checks them while packing
      if (which == ValueCheck::All) jobs.push_back({t, true});
      continue;
    }
    const auto f = float_fields(t->type);
    if (!f) continue;  // a type validate_tensors refuses
    const int64_t units = t->n_elements() / f->elems_per_unit;
    const int64_t per_piece = std::max<int64_t>(1, kPieceBytes / static_cast<int64_t>(f->stride));
    for (int64_t b = 0; b < units; b += per_piece) {
      jobs.push_back({t, false, b, std::min(units, b + per_piece)});
    }
  }
  std::vector<std::string> found(jobs.size());
  auto run = [&](int64_t j0, int64_t j1, int) {
    for (int64_t j = j0; j < j1; ++j) {
      const Job& job = jobs[static_cast<size_t>(j)];
      const GgufTensorInfo& t = *job.tensor;
      if (job.ternary) {
        // The loader's own decoder, so the verdict is the loader's.
        try {
          const int64_t k = t.dims[0], n = t.n_dims > 1 ? t.dims[1] : 1;
          std::vector<int8_t> w(static_cast<size_t>(n * k));
          std::vector<float> scale(static_cast<size_t>(n));
          formats::decode_ternary(t.type, t.data, t.size, n, k, t.name, w.data(), scale.data());
        } catch (const std::exception& e) {
          found[static_cast<size_t>(j)] = e.what();
        } catch (...) {
          found[static_cast<size_t>(j)] = "tensor '" + t.name + "': cannot be decoded";
        }
        continue;
      }
      const FloatFields f = *float_fields(t.type);
      const int64_t u = first_non_finite(t.data, f, job.begin, job.end);
      if (u < 0) continue;
      const std::string value = describe_value(t.data, f, u);
      found[static_cast<size_t>(j)] =
          "tensor '" + t.name + "': " +
          (f.elems_per_unit == 1 ? "element " + std::to_string(u) + " is " + value
                                 : "the scale of block " + std::to_string(u) + " (elements " +
                                       std::to_string(u * f.elems_per_unit) + "..) is " + value);
    }
  };
  const auto n_jobs = static_cast<int64_t>(jobs.size());
  if (pool && pool->size() > 1) {
    pool->parallel_for(n_jobs, run);
  } else {
    run(0, n_jobs, 0);
  }
  // One problem per tensor (its first bad piece), in file order.
  std::vector<std::string> problems;
  const GgufTensorInfo* last = nullptr;
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (found[j].empty() || jobs[j].tensor == last) continue;
    last = jobs[j].tensor;
    problems.push_back(std::move(found[j]));
  }
  return problems;
}

Tokenizer load_model_tokenizer(const formats::GgufFile& file, const ModelConfig& config) {
  Tokenizer tok = Tokenizer::from_gguf(file);
  if (tok.n_vocab() != config.n_vocab) {
    throw std::invalid_argument(
        file.path() + ": the tokenizer has " + std::to_string(tok.n_vocab()) +
        " tokens but the model's vocabulary is " + std::to_string(config.n_vocab));
  }
  return tok;
}

void check_converted_model(const std::string& gguf_path, const std::string& source) {
  const formats::GgufFile f = formats::GgufFile::open(gguf_path);
  const ModelConfig config = read_model_config(f);
  std::vector<std::string> problems = validate_tensors(config, f);
  if (problems.empty()) {
    ThreadPool pool(resolve_threads(0));
    problems = validate_tensor_values(config, f, ValueCheck::All, &pool);
  }
  if (!problems.empty()) {
    throw std::invalid_argument(problems_message(
        source, "the converted model would not load (" + gguf_path + ")", problems));
  }
}

std::string problems_message(const std::string& path, const std::string& what,
                             const std::vector<std::string>& problems, size_t shown) {
  std::string msg = path + ": " + what;
  for (size_t i = 0; i < problems.size() && i < shown; ++i) msg += (i ? "; " : ": ") + problems[i];
  if (problems.size() > shown) {
    msg += " (and " + std::to_string(problems.size() - shown) + " more: `bitnet inspect " + path +
           "` lists them all)";
  }
  return msg;
}

}  // namespace bitnet::model
