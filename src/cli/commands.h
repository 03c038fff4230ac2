// Subcommands of the bitnet program. Each cmd-*.cpp registers itself with BITNET_COMMAND; main()
// dispatches by name and lists the registered commands in `bitnet help`, so the help text is
// always exactly what this build contains. A command returns its exit code and throws for
// failures: UsageError (exit 2), InputError (exit 3), any other exception (exit 1); see
// cli-common.h for the codes. `bitnet CMD --help` and `bitnet help CMD` print usage, summary and
// options.
#pragma once

#include <vector>

namespace bitnet::cli {

struct Command {
  const char* name;
  const char* usage;    // e.g. "inspect MODEL [--json]" (may span lines)
  const char* summary;  // what it does, may span lines ("\n" + indentation added by help)
  // Every option with its meaning and default, as printed by --help; "{threads}" is replaced by
  // this machine's hardware thread count.
  const char* options;
  int (*run)(int argc, char** argv);  // argv[0] is the command name
};

bool register_command(const Command& command);
const std::vector<Command>& commands();  // sorted by name

}  // namespace bitnet::cli

#define BITNET_CONCAT_INNER(a, b) a##b
#define BITNET_CONCAT(a, b) BITNET_CONCAT_INNER(a, b)
#define BITNET_COMMAND(...)                                                                \
  static const bool BITNET_CONCAT(bitnet_command_registered_, __LINE__) [[maybe_unused]] = \
      ::bitnet::cli::register_command(::bitnet::cli::Command{__VA_ARGS__})
