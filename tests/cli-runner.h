// Running the built bitnet program from a test: a self-removing temp directory, and run_bitnet()
// with stdout and stderr captured (needs BITNET_CLI_PATH, set by tests/CMakeLists.txt for the
// tests that run the program). Shared by test-cli and test-kl.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace bitnet::test {

// A directory of its own under the system temp dir, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "bitnet-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

#ifdef BITNET_CLI_PATH

struct Result {
  bool exited = false;  // false: killed by a signal (a crash) or by the timeout
  bool timed_out = false;
  int code = -1;
  std::string out, err;
};

// Runs the bitnet binary with these arguments, stdout and stderr captured through files. A run
// longer than timeout_s seconds is killed (exited false, timed_out true): a hang fails the test
// instead of stalling it.
// stdin_path: a file for standard input (default: /dev/null, so nothing waits for a terminal).
// stdout_path: where standard output goes (default: a temporary file read back into out).
inline Result run_bitnet(const std::vector<std::string>& args, double timeout_s = 300,
                         const std::string& stdin_path = "/dev/null",
                         const std::string& stdout_path = "") {
  const TempDir dir("bitnet-run");
  const std::string out_path = stdout_path.empty() ? (dir.path() / "stdout").string() : stdout_path;
  const std::string err_path = (dir.path() / "stderr").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(),
                                   stdout_path.empty() ? O_WRONLY | O_CREAT | O_TRUNC : O_WRONLY,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  std::vector<std::string> storage = {BITNET_CLI_PATH};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, BITNET_CLI_PATH, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error(std::string("cannot start ") + BITNET_CLI_PATH);
  int status = 0;
  Result r;
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) throw std::runtime_error("waitpid failed");
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      r.timed_out = true;
      break;
    }
    usleep(2000);
  }
  r.exited = !r.timed_out && WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  if (stdout_path.empty()) r.out = read_all(out_path);
  r.err = read_all(err_path);
  return r;
}

#endif  // BITNET_CLI_PATH

}  // namespace bitnet::test
