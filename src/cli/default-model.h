// The model a command runs when no -m is given (bitnet run, chat, serve): the small BitNet b1.58
// model trained by tools/train on the King James Bible and shipped in models/ (docs/MODELS.md).
#pragma once

#include <string>
#include <vector>

namespace bitnet::cli {

// File name (without .gguf) of the shipped model in models/ and, once installed, in
// <prefix>/share/bitnet-cxx/models/. Its agreement files are models/<name>/.
inline constexpr const char* kShippedModelName = "kjv-b158-4m";

// Where the shipped model is looked for, in order: beside an installed executable
// (<exe dir>/../share/bitnet-cxx/models/), then the source tree it was built from (known at build
// time, so a fresh clone's build/bin/bitnet finds it).
std::vector<std::string> shipped_model_candidates();

// The shipped model's path; prints on stderr which model it is. Throws std::runtime_error listing
// the places searched when none has it.
std::string default_model();

}  // namespace bitnet::cli
