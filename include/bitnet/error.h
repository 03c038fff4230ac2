// The one exception type thrown across the public API (include/bitnet/). Internal layers throw
// standard exceptions; the engine turns each into a bitnet::Error whose message names the model
// file, option or request at fault and what was expected versus found.
#pragma once

#include <stdexcept>
#include <string>

namespace bitnet {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace bitnet
