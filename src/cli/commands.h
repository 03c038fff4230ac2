// Subcommands of the bitnet program. Each returns the process exit code and throws on bad usage
// (std::invalid_argument) or failure (std::exception); main() turns those into messages.
#pragma once

namespace bitnet::cli {

int cmd_selftest(int argc, char** argv);
int cmd_cpu(int argc, char** argv);

}  // namespace bitnet::cli
