#include "cli/default-model.h"

#include <cstdio>
#include <filesystem>

#include "model/prepared-cache.h"
#include "tools/dummy-model.h"

namespace bitnet::cli {

// A 2B4T-shaped model with random weights in the cache directory, made on first use.
std::string default_model() {
  const std::string path = model::default_cache_dir() + "/default-2b4t-random.gguf";
  if (!std::filesystem::exists(path)) {
    std::fprintf(stderr,
                 "no -m given: generating the built-in default model, BitNet 2B4T shapes with "
                 "RANDOM weights (about 1.2 GB, once), at %s\n",
                 path.c_str());
    std::filesystem::create_directories(model::default_cache_dir());
    model::write_dummy_model(model::find_dummy_preset("2b4t"), model::DummyOptions{}, path);
  }
  std::fprintf(stderr,
               "model: built-in default (2B4T shapes, random weights: the text is meaningless; the "
               "speed is real)\n");
  return path;
}

}  // namespace bitnet::cli
