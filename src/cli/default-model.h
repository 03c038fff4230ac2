// The model a command runs when no -m is given (bitnet run, chat, serve).
#pragma once

#include <string>

namespace bitnet::cli {

// The built-in default model's path, made on first use. Prints on stderr which model it is.
std::string default_model();

}  // namespace bitnet::cli
