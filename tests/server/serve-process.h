// A `bitnet serve` process for tests: started with its stderr in a file, its port read from the
// "listening on" line, stopped by a signal; every wait is bounded and the process is killed on
// destruction if it is still running.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../cli-runner.h"

namespace bitnet::test {

class ServeProcess {
 public:
  // Starts `program serve args...`; stderr goes to a file in dir.
  ServeProcess(const std::string& program, const std::vector<std::string>& args,
               const std::filesystem::path& dir)
      : err_path_((dir / ("serve-" + std::to_string(counter()++) + ".err")).string()) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    std::vector<std::string> storage = {program, "serve"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exit_code_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::string err() const { return read_all(err_path_); }

  // Waits for `text` on stderr (or the process to exit); true when it appeared.
  bool wait_for(const std::string& text, int timeout_ms = 20000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (err().find(text) != std::string::npos) return true;
      if (exited(0)) return err().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // The port of "listening on http://HOST:PORT", after waiting for "ready"; 0 on failure.
  int wait_ready(int timeout_ms = 20000) {
    if (!wait_for("bitnet serve: ready", timeout_ms)) return 0;
    const std::string e = err();
    const size_t at = e.find("listening on http://");
    if (at == std::string::npos) return 0;
    const size_t colon = e.find(':', at + 20);
    return std::atoi(e.c_str() + colon + 1);
  }
  void signal(int sig) { kill(pid_, sig); }
  // Whether the process has exited within timeout_ms; its exit code is then exit_code().
  bool exited(int timeout_ms) {
    if (exit_code_) return true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  int exit_code() const { return exit_code_.value_or(-1); }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string err_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace bitnet::test
