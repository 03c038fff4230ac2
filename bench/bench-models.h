// Dummy models for the benchmarks (random ternary weights, model/dummy-model.h: seed 0, I2_S
// linears, F16 embedding), written on first use so that a benchmark needs no files.
//
// Directory: $BITNET_BENCH_MODEL_DIR when set; files there are kept and reused by later runs when
// their size and their preset and seed metadata match (worth it for 2b4t: 1.18 GB written in
// about 8 s). Otherwise a fresh temporary directory, removed with the BenchModels object.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "model/model-weights.h"

namespace bitnet::bench {

class BenchModels {
 public:
  BenchModels();
  ~BenchModels();
  BenchModels(const BenchModels&) = delete;
  BenchModels& operator=(const BenchModels&) = delete;

  // The GGUF file of dummy preset `preset`, written now if absent or stale. Throws
  // std::invalid_argument for an unknown preset, std::runtime_error when it cannot be written.
  std::string path(const std::string& preset);
  // Its weights, loaded once and kept (loader's layout choice; prepared cache off, so nothing is
  // written to the user's cache directory); int8_head: LoadOptions::int8_head (kept apart).
  const model::ModelWeights& weights(const std::string& preset, bool int8_head = false);
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  bool temporary_ = false;
  std::map<std::string, std::unique_ptr<model::ModelWeights>> loaded_;
};

}  // namespace bitnet::bench
