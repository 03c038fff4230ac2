#include "model/hf-convert.h"

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "formats/tensor-codec.h"

namespace bitnet::model {
namespace {

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

void add_hf_checkpoint(const HfCheckpoint& ck, const HfConvertOptions& opt,
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
}

}  // namespace bitnet::model
