// libFuzzer target for the safetensors reader: parses the input in place (no copy, so a sanitizer
// sees any read past its end), then checks the properties the reader promises for a file it
// accepts: tensors sorted by name, sizes = product(shape) * dtype size, views inside the data
// section and pairwise disjoint, values readable for supported dtypes. Any violation traps.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "formats/safetensors.h"

namespace bf = bitnet::formats;

namespace {

volatile float g_sink;  // keeps the element reads from being optimized away

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<bf::SafetensorsFile> parsed;
  try {
    parsed.emplace(bf::SafetensorsFile::from_memory(std::span<const uint8_t>(data, size), "fuzz"));
  } catch (const bf::SafetensorsError&) {
    return 0;
  }
  const bf::SafetensorsFile& f = *parsed;
  check(f.data_offset() >= 8 && f.data_offset() <= size);
  const uint8_t* section = data + f.data_offset();
  std::vector<const bf::SafetensorsTensor*> by_offset;
  float sum = 0.0f;
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const bf::SafetensorsTensor& t = f.tensors()[i];
    check(i == 0 || f.tensors()[i - 1].name < t.name);
    check(f.find(t.name) == &t);
    check(t.begin <= t.end && t.size == t.end - t.begin);
    check(t.data == section + t.begin && t.data + t.size <= data + size);
    if (t.size > 0) by_offset.push_back(&t);
    if (t.dtype == bf::SafetensorsDtype::Unsupported) {
      try {
        bf::require_supported(t);
        check(false);
      } catch (const bf::SafetensorsError&) {
      }
      continue;
    }
    check(static_cast<size_t>(t.n_elements()) * bf::safetensors_dtype_size(t.dtype) == t.size);
    // First and last element (a stray view would fault under ASan).
    const int64_t n = t.n_elements();
    if (n > 0) {
      float v[2];
      bf::safetensors_to_f32(t, 0, 1, v);
      bf::safetensors_to_f32(t, n - 1, 1, v + 1);
      sum += v[0] + v[1];
    }
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) check(by_offset[i - 1]->end <= by_offset[i]->begin);
  g_sink = sum;
  return 0;
}
