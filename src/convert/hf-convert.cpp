#include "convert/hf-convert.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <vector>

#include "formats/tensor-codec.h"
#include "model/model-validate.h"
#include "model/prepared-cache.h"

namespace bitnet::model {
namespace {

// Arch llama: Q/K rows go from Hugging Face's rotate-half order to the interleaved pairs of NORM
// rope, per head: new row 2i + j = old row j * d/2 + i (llama.cpp's convert_hf_to_gguf permute).
void permute_for_norm_rope(const ModelConfig& c, const std::string& name, int64_t rows, int64_t k,
                           std::vector<int8_t>& codes) {
  if (c.rope_style != RopeStyle::Norm) return;
  const bool q = name.find(".attn_q.") != std::string::npos;
  const bool kk = name.find(".attn_k.") != std::string::npos;
  if (!q && !kk) return;
  const int64_t heads = q ? c.n_head : c.n_head_kv, d = rows / heads, half = d / 2;
  std::vector<int8_t> out(codes.size());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t dst = h * d + 2 * i + j, src = h * d + j * half + i;
        std::copy(codes.begin() + src * k, codes.begin() + (src + 1) * k, out.begin() + dst * k);
      }
    }
  }
  codes.swap(out);
}

using formats::GgmlType;

constexpr uint32_t id(GgmlType t) {
  return static_cast<uint32_t>(t);
}

void check_shape(const HfTensor& t, uint32_t type) {
  const int64_t ne0 = t.dims[0];
  const int64_t elements = ne0 * t.rows();
  const std::string tn = formats::ggml_type_name(type);
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) {
      throw std::invalid_argument(t.name + ": " + tn + " needs " + what +
                                  " (ne0 = " + std::to_string(ne0) + ", " +
                                  std::to_string(elements) + " elements)");
    }
  };
  if (type == id(GgmlType::TQ2_0) || type == id(GgmlType::TQ1_0) || type == id(GgmlType::Q6_K)) {
    need(ne0 % 256 == 0, "ne0 to be a multiple of 256");
  } else if (type == id(GgmlType::Q8_0)) {
    need(ne0 % 32 == 0, "ne0 to be a multiple of 32");
  } else if (type == id(GgmlType::I2_S)) {
    need(elements % 128 == 0, "the element count to be a multiple of 128");
  }
}

}  // namespace

HfConvertResult add_hf_checkpoint(const HfCheckpoint& ck, const HfConvertOptions& opt,
                                  formats::GgufWriter& w) {
  const uint32_t tt = opt.ternary_type, et = opt.embedding_type;
  if (tt != id(GgmlType::I2_S) && tt != id(GgmlType::TQ2_0) && tt != id(GgmlType::TQ1_0)) {
    throw std::invalid_argument("ternary type " + formats::ggml_type_name(tt) +
                                " is not supported (expected I2_S, TQ2_0 or TQ1_0)");
  }
  if (et != id(GgmlType::F32) && et != id(GgmlType::F16) && et != id(GgmlType::BF16) &&
      et != id(GgmlType::Q8_0) && et != id(GgmlType::Q6_K)) {
    throw std::invalid_argument("embedding type " + formats::ggml_type_name(et) +
                                " is not supported (expected F32, F16, BF16, Q8_0 or Q6_K)");
  }
  for (const HfTensor& t : ck.tensors()) {
    if (t.role == HfTensorRole::Linear) check_shape(t, tt);
    if (t.role == HfTensorRole::Embedding) check_shape(t, et);
  }

  write_model_config(ck.config(), w);
  std::filesystem::path dir = std::filesystem::path(ck.dir()).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "model/" -> "model"
  w.set("general.name", dir.filename().string());
  w.set("general.source.hf_architecture", ck.hf_architecture());
  HfConvertResult result;
  result.tokenizer = add_hf_tokenizer(ck.dir(), ck.config().n_vocab, w);

  const size_t count = ck.tensors().size();
  for (size_t i = 0; i < count; ++i) {
    const HfTensor& t = ck.tensors()[i];
    const auto progress = [cb = opt.progress, &t, i, count] {
      if (cb) cb(i, count, t.name);
    };
    switch (t.role) {
      case HfTensorRole::Linear:
        w.add_tensor(t.name, tt, t.dims, [&ck, &t, tt, progress](std::span<uint8_t> out) {
          progress();
          std::vector<int8_t> codes(static_cast<size_t>(t.dims[0] * t.dims[1]));
          const float scale = ck.read_ternary(t, codes);
          permute_for_norm_rope(ck.config(), t.name, t.dims[1], t.dims[0], codes);
          formats::encode_ternary(tt, codes.data(), t.dims[1], t.dims[0], scale, out.data(),
                                  out.size());
        });
        break;
      case HfTensorRole::Norm:
        w.add_tensor(t.name, id(GgmlType::F32), t.dims,
                     [&ck, &t, progress](std::span<uint8_t> out) {
                       progress();
                       std::vector<float> row(static_cast<size_t>(t.dims[0]));
                       ck.read_row(t, 0, row.data());
                       std::memcpy(out.data(), row.data(), out.size());
                     });
        break;
      case HfTensorRole::Embedding:
        w.add_tensor(t.name, et, t.dims, [&ck, &t, et, progress](std::span<uint8_t> out) {
          progress();
          const int64_t ne0 = t.dims[0];
          const size_t row_bytes = formats::ggml_tensor_bytes(et, &ne0, 1);
          std::vector<float> row(static_cast<size_t>(ne0));
          for (int64_t r = 0; r < t.rows(); ++r) {
            ck.read_row(t, r, row.data());
            formats::quantize_row(et, row.data(), out.data() + static_cast<size_t>(r) * row_bytes,
                                  ne0);
          }
        });
        break;
    }
  }
  return result;
}

namespace {

// Bump when the conversion's output changes, so that cached conversions are redone.
constexpr const char* kConverterVersion = "hf-convert 1";

uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (const char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

std::string hex16(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// The files whose content the conversion reads.
bool is_source_file(const std::string& name) {
  return name == "config.json" || name == "tokenizer.json" || name == "tokenizer_config.json" ||
         name == "chat_template.jinja" || name.ends_with(".safetensors") ||
         name.ends_with(".safetensors.index.json");
}

std::string source_stamp(const std::filesystem::path& abs_dir) {
  std::vector<std::string> lines;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(abs_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!is_source_file(name) || !e.is_regular_file()) continue;
    const auto mtime = std::filesystem::last_write_time(e.path()).time_since_epoch();
    lines.push_back(
        name + " " + std::to_string(e.file_size()) + " " +
        std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(mtime).count()));
  }
  if (ec) throw std::runtime_error(abs_dir.string() + ": cannot list: " + ec.message());
  std::sort(lines.begin(), lines.end());
  std::string text = std::string(kConverterVersion) + "\n" + abs_dir.string() + "\n";
  for (const std::string& l : lines) text += l + "\n";
  return hex16(fnv1a(text));
}

bool is_current(const std::string& gguf, const std::string& stamp) {
  if (!std::filesystem::exists(gguf)) return false;
  try {
    const formats::GgufFile f = formats::GgufFile::open(gguf);
    const formats::GgufValue* v = f.find(kHfSourceStampKey);
    return v && v->is<std::string>() && v->as<std::string>() == stamp;
  } catch (const std::exception&) {
    return false;  // unreadable: converted again
  }
}

}  // namespace

HfCachedGguf hf_dir_to_cached_gguf(const std::string& dir, const std::string& cache_dir) {
  namespace fs = std::filesystem;
  fs::path abs = fs::absolute(fs::path(dir)).lexically_normal();
  if (abs.filename().empty()) abs = abs.parent_path();  // "model/" -> "model"
  HfCachedGguf out;
  out.path =
      (fs::path(cache_dir) / (abs.filename().string() + "." + hex16(fnv1a(abs.string())) + ".gguf"))
          .string();
  const std::string stamp = source_stamp(abs);
  if (is_current(out.path, stamp)) return out;

  const HfCheckpoint ck = HfCheckpoint::open(abs.string());
  formats::GgufWriter w;
  add_hf_checkpoint(ck, HfConvertOptions{}, w);
  w.set(kHfSourceStampKey, stamp);
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec)
    throw std::runtime_error(cache_dir + ": cannot create the cache directory: " + ec.message());
  // A name of this process's own, renamed over the final one: concurrent loads never see a
  // partial file, and one that has the old file mapped keeps reading the old one.
  const std::string tmp = out.path + "." + std::to_string(::getpid()) + ".partial";
  w.write(tmp);
  try {
    check_converted_model(tmp, abs.string());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  fs::rename(tmp, out.path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw std::runtime_error(out.path +
                             ": cannot rename the converted file into place: " + ec.message());
  }
  out.converted = true;
  return out;
}

std::unique_ptr<ModelWeights> load_weights(const std::string& path, const LoadOptions& options) {
  if (!std::filesystem::is_directory(path)) return ModelWeights::load(path, options);
  const HfCachedGguf hf = hf_dir_to_cached_gguf(
      path, options.cache_dir.empty() ? default_cache_dir() : options.cache_dir);
  auto w = ModelWeights::load(hf.path, options);
  w->note_conversion(hf.path, hf.converted);
  return w;
}

}  // namespace bitnet::model
