#include "bench-models.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <system_error>

#include "formats/gguf.h"
#include "tools/dummy-model.h"

namespace bitnet::bench {
namespace fs = std::filesystem;

namespace {

// True when `file` is the dummy of `preset` with these options (size and metadata agree).
bool is_current(const fs::path& file, const model::DummyPreset& preset,
                const model::DummyOptions& options) {
  std::error_code ec;
  if (fs::file_size(file, ec) != model::dummy_file_bytes(preset, options) || ec) return false;
  try {
    const formats::GgufFile f = formats::GgufFile::open(file.string());
    return f.find_string("bitnet-cxx.dummy.preset") == preset.name &&
           f.has("bitnet-cxx.dummy.seed") && f.get_u64("bitnet-cxx.dummy.seed") == options.seed;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

BenchModels::BenchModels() {
  if (const char* env = std::getenv("BITNET_BENCH_MODEL_DIR"); env && *env) {
    dir_ = env;
    fs::create_directories(dir_);
    return;
  }
  std::string tmpl = (fs::temp_directory_path() / "bitnet-bench-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) {
    throw std::runtime_error("cannot create a temporary directory from " + tmpl);
  }
  dir_ = tmpl;
  temporary_ = true;
}

BenchModels::~BenchModels() {
  loaded_.clear();  // unmap before removing the files
  if (temporary_) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string BenchModels::path(const std::string& preset_name) {
  const model::DummyPreset& preset = model::find_dummy_preset(preset_name);
  const model::DummyOptions options;  // seed 0, I2_S, F16 embedding
  const fs::path file = dir_ / (preset.name + ".gguf");
  if (!is_current(file, preset, options)) {
    std::fprintf(stderr, "bench: writing dummy model %s to %s\n", preset.name.c_str(),
                 file.c_str());
    const fs::path part = file.string() + ".part";
    model::write_dummy_model(preset, options, part.string());
    fs::rename(part, file);
  }
  return file.string();
}

const model::ModelWeights& BenchModels::weights(const std::string& preset, bool int8_head) {
  const std::string key = preset + (int8_head ? " int8 head" : "");
  auto it = loaded_.find(key);
  if (it != loaded_.end()) return *it->second;
  model::LoadOptions lo;
  lo.cache = model::CacheMode::Off;
  lo.int8_head = int8_head;
  auto w = model::ModelWeights::load(path(preset), lo);
  return *loaded_.emplace(key, std::move(w)).first->second;
}

}  // namespace bitnet::bench
