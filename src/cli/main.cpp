// bitnet: command-line entry point. Errors surface here as one clear line and a non-zero exit.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "cli/commands.h"

namespace bitnet::cli {

namespace {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace

bool register_command(const Command& command) {
  auto& r = registry();
  r.push_back(command);
  std::sort(r.begin(), r.end(),
            [](const Command& a, const Command& b) { return std::strcmp(a.name, b.name) < 0; });
  return true;
}

const std::vector<Command>& commands() {
  return registry();
}

}  // namespace bitnet::cli

namespace {

void print_usage() {
  std::printf("bitnet " BITNET_VERSION
              " - BitNet b1.58 inference engine (ternary weights, int8 activations)\n\n"
              "usage: bitnet <command> [options]\n\ncommands:\n");
  for (const auto& c : bitnet::cli::commands()) {
    std::printf("  %s\n", c.usage);
    std::string summary = c.summary;
    size_t start = 0;
    for (size_t nl; (nl = summary.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::printf("      %s\n", summary.substr(start, nl - start).c_str());
    }
    std::printf("      %s\n", summary.substr(start).c_str());
  }
  std::printf(
      "  help, --help, -h\n      this text\n  --version\n      version\n\n"
      "Not part of this build yet: the GPU backend; the commands above are all that exist.\n\n"
      "environment:\n"
      "  BITNET_FORCE_ISA=scalar|avx2|avx512|neon|neondot\n"
      "      use that kernel variant (fails if the CPU or this build lacks it)\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage();
    return 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      print_usage();
      return 0;
    }
    if (cmd == "--version") {
      std::puts("bitnet " BITNET_VERSION);
      return 0;
    }
    for (const auto& c : bitnet::cli::commands()) {
      if (cmd == c.name) return c.run(argc - 1, argv + 1);
    }
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
