#include "cli/default-model.h"

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace bitnet::cli {

std::vector<std::string> shipped_model_candidates() {
  namespace fs = std::filesystem;
  const std::string file = std::string(kShippedModelName) + ".gguf";
  std::vector<std::string> out;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(
        (exe.parent_path().parent_path() / "share" / "bitnet-cxx" / "models" / file).string());
  }
  out.push_back((fs::path(BITNET_SOURCE_MODELS_DIR) / file).string());
  return out;
}

std::string default_model() {
  const std::vector<std::string> candidates = shipped_model_candidates();
  for (const std::string& path : candidates) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) continue;
    std::fprintf(
        stderr,
        "model: built-in default %s (a small BitNet b1.58 trained from scratch on the King "
        "James Bible; docs/MODELS.md), %s\n",
        kShippedModelName, path.c_str());
    return path;
  }
  std::string where;
  for (const std::string& c : candidates) where += "\n  " + c;
  throw std::runtime_error("no -m given and the built-in default model " +
                           std::string(kShippedModelName) + ".gguf is in none of:" + where +
                           "\n(give a model with -m, or `bitnet gen-dummy --preset 2b4t -o FILE` "
                           "for the 2B4T-shaped random one)");
}

}  // namespace bitnet::cli
