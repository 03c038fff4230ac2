// bitnet: command-line entry point. Errors surface here as one clear line and a non-zero exit.
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "cli/commands.h"

namespace {

constexpr const char* kUsage =
    "bitnet " BITNET_VERSION
    " - BitNet b1.58 inference engine (ternary weights, int8 activations)\n"
    "\n"
    "usage: bitnet <command> [options]\n"
    "\n"
    "commands:\n"
    "  selftest [-t N] [--quick]  check every kernel variant this CPU runs against the scalar\n"
    "                             reference (bit-exact), then print a short speed summary against\n"
    "                             this machine's measured read bandwidth and int8 peak\n"
    "  cpu                        CPU features and the kernel variant in use\n"
    "  help, --help, -h           this text\n"
    "  --version                  version\n"
    "\n"
    "Model loading, text generation and the server are not part of this build yet: only the\n"
    "kernel layer is. The commands above are all that exist.\n"
    "\n"
    "environment:\n"
    "  BITNET_FORCE_ISA=scalar|avx2|avx512|neon|neondot\n"
    "                             use that kernel variant (fails if the CPU or build lacks it)\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (cmd == "--version") {
      std::puts("bitnet " BITNET_VERSION);
      return 0;
    }
    if (cmd == "selftest") return bitnet::cli::cmd_selftest(argc - 1, argv + 1);
    if (cmd == "cpu") return bitnet::cli::cmd_cpu(argc - 1, argv + 1);
    std::fprintf(stderr, "bitnet: unknown command '%s' (see 'bitnet help')\n", cmd.c_str());
    return 2;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "bitnet %s: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitnet %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
