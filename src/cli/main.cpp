// bitnet: command-line entry point. Errors surface here as one clear line and the exit code of
// their kind (cli-common.h): usage 2, bad model or input file 3, any other failure 1.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "bitnet/error.h"
#include "cli/cli-common.h"
#include "cli/commands.h"
#include "core/cpu-features.h"
#include "core/thread-pool.h"
#include "kernels/ternary-matmul.h"

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

using bitnet::cli::Command;

constexpr const char* kExitCodes =
    "exit codes:\n"
    "  0  success\n"
    "  1  the work failed (an error while running or writing the output)\n"
    "  2  bad usage (unknown option, missing or malformed value)\n"
    "  3  the model or an input file cannot be read or is not valid\n"
    "  4  bench --targets: a target was missed;  5  bench --compare: a regression\n";

void print_indented(const std::string& text, const char* indent) {
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::printf("%s%s\n", indent, text.substr(start, nl - start).c_str());
  }
  if (start < text.size()) std::printf("%s%s\n", indent, text.substr(start).c_str());
}

std::string with_threads(std::string text) {
  const std::string n = std::to_string(bitnet::hardware_threads()) + " here";
  for (size_t p; (p = text.find("{threads}")) != std::string::npos;) text.replace(p, 9, n);
  return text;
}

void print_command_help(const Command& c) {
  std::printf("usage: bitnet %s\n\n", c.usage);
  print_indented(c.summary, "");
  if (c.options && *c.options) {
    std::printf("\noptions:\n");
    std::fputs(with_threads(c.options).c_str(), stdout);
  }
  std::printf("  -h, --help            this help\n\n%s", kExitCodes);
}

void print_usage() {
  std::printf("bitnet " BITNET_VERSION
              " - BitNet b1.58 inference engine (ternary weights, int8 activations)\n\n"
              "usage: bitnet <command> [options]     bitnet <command> --help: its options\n\n"
              "commands:\n");
  for (const auto& c : bitnet::cli::commands()) {
    print_indented(c.usage, "  ");
    print_indented(c.summary, "      ");
  }
  std::printf(
      "  help [COMMAND]\n      this text, or a command's usage and options\n"
      "  --version\n      version, build and CPU information\n\n"
      "Not part of this build yet: the GPU backend; the commands above are all that exist.\n\n"
      "environment:\n"
      "  BITNET_FORCE_ISA=scalar|avx2|avxvnni|avx512|amx|neon|neondot\n"
      "      use that kernel variant (fails if the CPU or this build lacks it)\n"
      "  BITNET_CACHE_DIR\n"
      "      prepared weights, converted checkpoints and the default model (default:\n"
      "      $XDG_CACHE_HOME/bitnet-cxx, else ~/.cache/bitnet-cxx)\n\n%s",
      kExitCodes);
}

void print_version() {
  std::printf("bitnet " BITNET_VERSION "\n");
  std::printf("commit:    %s\n", BITNET_GIT_COMMIT);
  std::printf("build:     %s, %s %s\n", BITNET_BUILD_TYPE, BITNET_COMPILER, __VERSION__);
  std::string built;
  for (bitnet::kernels::Isa isa : bitnet::kernels::available_isas()) {
    built += (built.empty() ? "" : ", ") + std::string(bitnet::kernels::isa_name(isa));
  }
  const auto& cpu = bitnet::cpu_features();
  std::printf("cpu:       %s (%s)\n", cpu.model_name.empty() ? "unknown" : cpu.model_name.c_str(),
              cpu.describe().c_str());
  std::printf("kernels:   %s usable here; %s chosen\n", built.c_str(),
              bitnet::kernels::isa_name(bitnet::kernels::active_kernels().isa));
}

// Errors are printed as one line: a message that spans lines (a list of problems) is joined,
// control characters from a file (a CR in a token string) are escaped, bytes that are not UTF-8
// become U+FFFD, and a message quoting a huge input is cut.
std::string one_line(const char* what) {
  constexpr size_t kMaxBytes = 1500;
  std::string s;
  const std::string in = what;
  for (size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c == '\n') {
      while (i + 1 < in.size() && in[i + 1] == ' ') ++i;
      if (i + 1 < in.size()) s += "; ";
    } else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02X", c);
      s += esc;
    } else {
      s += static_cast<char>(c);
    }
  }
  s = bitnet::cli::sanitize_utf8(s);
  if (s.size() > kMaxBytes) {
    size_t cut = kMaxBytes;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    s = s.substr(0, cut) + "... (cut)";
  }
  return s;
}

const Command* find_command(const std::string& name) {
  for (const auto& c : bitnet::cli::commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace bitnet::cli;
  if (argc < 2) {
    print_usage();
    return kExitOk;
  }
  const std::string cmd = argv[1];
  const Command* command = nullptr;
  try {
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      const std::string topic = argc > 2 ? argv[2] : "";
      if (argc > 3) {
        std::fprintf(stderr, "bitnet help: takes one COMMAND, found '%s' after '%s'\n", argv[3],
                     argv[2]);
        return kExitUsage;
      }
      if (!topic.empty() && topic != "help" && topic != "--help" && topic != "-h") {
        const Command* c = find_command(argv[2]);
        if (!c) {
          std::fprintf(stderr, "bitnet help: unknown command '%s' (see 'bitnet help')\n", argv[2]);
          return kExitUsage;
        }
        print_command_help(*c);
      } else {
        print_usage();
      }
      return kExitOk;
    }
    if (cmd == "--version" || cmd == "version") {
      if (argc > 2) {
        std::fprintf(stderr, "bitnet %s: takes no arguments, found '%s'\n", cmd.c_str(), argv[2]);
        return kExitUsage;
      }
      print_version();
      return kExitOk;
    }
    // A bad BITNET_FORCE_ISA is the user's setting, not the model's fault: said first, exit 2.
    try {
      (void)bitnet::kernels::active_kernels();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bitnet: BITNET_FORCE_ISA: %s\n", one_line(e.what()).c_str());
      return kExitUsage;
    }
    command = find_command(cmd);
    if (!command) {
      std::fprintf(stderr, "bitnet: unknown command '%s' (see 'bitnet help')\n", cmd.c_str());
      return kExitUsage;
    }
    const int rc = command->run(argc - 1, argv + 1);
    // Output that could not be written (a full disk, a closed pipe) is a failure, not success.
    errno = 0;
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
      std::fprintf(stderr, "bitnet %s: error: writing the output failed%s%s\n", cmd.c_str(),
                   errno ? ": " : "", errno ? std::strerror(errno) : "");
      return kExitFailure;
    }
    return rc;
  } catch (const HelpRequested&) {
    if (command) print_command_help(*command);
    return kExitOk;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "bitnet %s: %s\n", cmd.c_str(), one_line(e.what()).c_str());
    return kExitUsage;
  } catch (const InputError& e) {
    std::fprintf(stderr, "bitnet %s: %s\n", cmd.c_str(), one_line(e.what()).c_str());
    return kExitBadInput;
  } catch (const std::bad_alloc& e) {
    std::fprintf(stderr, "bitnet %s: out of memory: %s\n", cmd.c_str(), one_line(e.what()).c_str());
    return kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitnet %s: error: %s\n", cmd.c_str(), one_line(e.what()).c_str());
    return kExitFailure;
  }
}
