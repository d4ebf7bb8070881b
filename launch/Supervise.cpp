#include "launch/Supervise.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/base/System.h"

namespace gentrain {
namespace {

std::atomic<pid_t> child{0};

void forward(int signal) {
  const pid_t pid = child.load();
  if (pid <= 0) return;
  // A Ctrl-C at the terminal reaches mpirun too (one process group): passing it on would be a
  // second one, which Open MPI takes as "terminate forcibly".
  if (signal == SIGINT && ::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp()) {
    return;
  }
  ::kill(pid, signal);
}

void writeAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void say(const std::string& line) {
  const std::string text = "gentrain launch: " + line + "\n";
  writeAll(STDERR_FILENO, text.data(), text.size());
}

}  // namespace

bool saysJobIsEnding(const std::string& line) {
  for (const char* marker :
       {"MPI_ABORT was invoked", "ORTE has lost communication", "] error: stall: "}) {
    if (line.find(marker) != std::string::npos) return true;
  }
  return false;
}

int superviseMpirun(const std::vector<std::string>& command, double abortGraceSeconds) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    throw UsageError(std::string("launch: cannot make a pipe: ") + std::strerror(errno));
  }
  const pid_t pid = ::fork();
  if (pid < 0) throw UsageError(std::string("launch: cannot fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(pipeFds[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (const std::string& word : command) argv.push_back(const_cast<char*>(word.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    const std::string error = "gentrain launch: cannot run " + command[0] + ": " +
                              std::strerror(errno) +
                              " (install Open MPI: apt-get install openmpi-bin)\n";
    writeAll(STDERR_FILENO, error.data(), error.size());
    ::_exit(127);
  }
  ::close(pipeFds[1]);
  child.store(pid);
  struct sigaction action {};
  action.sa_handler = forward;
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) ::sigaction(s, &action, nullptr);

  const int in = pipeFds[0];
  ::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) | O_NONBLOCK);
  std::string line;
  double endingSince = -1;  // when the job was seen ending abnormally
  int nudges = 0;
  bool open = true;
  int status = 0;
  for (;;) {
    if (open) {
      pollfd p{in, POLLIN, 0};
      ::poll(&p, 1, 200);
      char chunk[4096];
      ssize_t n;
      while ((n = ::read(in, chunk, sizeof(chunk))) > 0) {
        writeAll(STDERR_FILENO, chunk, static_cast<std::size_t>(n));
        line.append(chunk, static_cast<std::size_t>(n));
        for (std::size_t eol; (eol = line.find('\n')) != std::string::npos;
             line.erase(0, eol + 1)) {
          if (endingSince < 0 && saysJobIsEnding(line.substr(0, eol)))
            endingSince = monotonicSeconds();
        }
        if (line.size() > 65536) line.clear();
      }
      if (n == 0) open = false;  // every writer is gone
    } else {
      ::usleep(200 * 1000);
    }
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (endingSince < 0) continue;
    const double late = monotonicSeconds() - endingSince - abortGraceSeconds;
    if (late > 0 && nudges == 0) {
      say(log::cat("mpirun has not ended ", abortGraceSeconds,
                   " s after the job began to abort (a host it cannot reach?): ending it"));
      ::kill(pid, SIGTERM);
      nudges = 1;
    } else if (late > std::min(2.0, abortGraceSeconds) && nudges == 1) {
      ::kill(pid, SIGTERM);  // Open MPI: a second one forces it
      nudges = 2;
    } else if (late > std::min(5.0, 2 * abortGraceSeconds) && nudges == 2) {
      ::kill(pid, SIGKILL);
      nudges = 3;
    }
  }
  child.store(0);
  // What mpirun wrote last; its remote daemons may hold the pipe open after it is gone.
  char chunk[4096];
  ssize_t n;
  while (open && (n = ::read(in, chunk, sizeof(chunk))) > 0) {
    writeAll(STDERR_FILENO, chunk, static_cast<std::size_t>(n));
  }
  ::close(in);
  // Forced to end, mpirun may even crash on the way out: the job was aborted, say so plainly.
  if (nudges > 0) return 3;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace gentrain
