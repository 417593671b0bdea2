// Helpers for tests that run a real server next to the test: a child process
// that is stopped (SIGTERM, then SIGKILL) when the helper goes away, and free
// loopback ports.
#ifndef DISTCACHE_TESTS_SUPPORT_PROCESSES_HPP
#define DISTCACHE_TESTS_SUPPORT_PROCESSES_HPP

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;  // NOLINT: POSIX

namespace distcache::test {

/// The full path of `program` on PATH (and in /usr/sbin, /sbin, where
/// Debian puts dnsmasq); empty when not found.
inline std::string find_program(const std::string& program) {
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find(':', start), path.size());
    const std::string candidate = path.substr(start, end - start) + "/" + program;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

/// Starts `argv` with stdout and stderr to `output_file` (truncated, or
/// appended to with `append`); the child's pid, or -1.
inline pid_t spawn_program(const std::vector<std::string>& argv, const std::string& output_file,
                           bool append) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(),
                                   O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

/// A child process; the destructor stops it (SIGTERM, then SIGKILL after 5 s)
/// and reaps it.
class child_process {
 public:
  child_process() = default;
  child_process(const std::vector<std::string>& argv, const std::string& output_file)
      : pid_(spawn_program(argv, output_file, false)) {
    if (pid_ < 0) throw std::runtime_error("cannot start " + argv[0]);
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  child_process(child_process&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
  child_process& operator=(child_process&& o) noexcept {
    if (this != &o) {
      stop();
      pid_ = std::exchange(o.pid_, -1);
    }
    return *this;
  }
  ~child_process() { stop(); }

  /// True while the process runs.
  [[nodiscard]] bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  /// Stops the process and waits for it (bounded: SIGKILL after 5 s).
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::yield();
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

/// Runs `argv` to its end (output to `output_file`) and returns its exit
/// status (-1 when it did not exit normally).
inline int run_to_completion(const std::vector<std::string>& argv, const std::string& output_file) {
  const pid_t pid = spawn_program(argv, output_file, true);
  if (pid < 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

/// A port on 127.0.0.1 that is free for both UDP and TCP right now.
inline std::uint16_t free_loopback_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(udp, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(udp);
      continue;
    }
    const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool ok = ::bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(tcp);
    ::close(udp);
    if (ok) return ntohs(a.sin_port);
  }
  throw std::runtime_error("no free loopback port");
}

/// A TCP port on 127.0.0.1 held for a server the test starts later, when
/// the port must be known first (written into DNS records, say). A socket
/// bound to it with SO_REUSEADDR, never listening, keeps the kernel from
/// giving the port to anyone else meanwhile (another bind to port 0, or the
/// source port of a connection), where free_loopback_port() only says it was
/// free a moment ago. distcache's server also sets SO_REUSEADDR, so it can
/// bind and listen on the port while the reservation is held.
class reserved_port {
 public:
  reserved_port() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      if (fd_ >= 0) ::close(fd_);
      throw std::runtime_error("cannot reserve a loopback port");
    }
    port_ = ntohs(a.sin_port);
  }
  reserved_port(const reserved_port&) = delete;
  reserved_port& operator=(const reserved_port&) = delete;
  ~reserved_port() { ::close(fd_); }
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

/// A file the test writes and the destructor removes.
class temp_file {
 public:
  explicit temp_file(const std::string& content) {
    char name[] = "/tmp/distcache-test-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::fchmod(fd, 0644);  // dnsmasq may read it as another user
    ::close(fd);
    path_ = name;
    std::ofstream(path_) << content;
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() { ::unlink(path_.c_str()); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace distcache::test

#endif  // DISTCACHE_TESTS_SUPPORT_PROCESSES_HPP
