#include "cninet/cni/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "cninet/base/fd.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/conf.h"
#include "cninet/cni/error.h"

namespace cninet::cni {
namespace {

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

}  // namespace

absl::StatusOr<std::string> FindInPath(std::string_view name,
                                       const std::vector<std::string>& paths) {
  CNINET_RETURN_IF_ERROR(ValidatePluginType(name));
  if (paths.empty()) {
    return CniError(
        ErrorCode::kInvalidConfig,
        cninet::StrCat("cannot find plugin \"", name, "\": no paths given (CNI_PATH is empty)"));
  }
  for (const std::string& dir : paths) {
    std::string candidate = cninet::StrCat(dir, "/", name);
    if (IsExecutableFile(candidate)) return candidate;
  }
  return absl::NotFoundError(cninet::StrCat("failed to find plugin \"", name, "\" in path [",
                                            cninet::StrJoin(paths, " "), "]"));
}

namespace {

// The child's stdin, stdout and stderr; the parent's ends are in_w, out_r and err_r.
struct Pipes {
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
};

absl::StatusOr<Pipes> MakePipes() {
  Pipes p;
  UniqueFd* ends[3][2] = {{&p.in_r, &p.in_w}, {&p.out_r, &p.out_w}, {&p.err_r, &p.err_w}};
  for (auto& pair : ends) {
    int fds[2] = {-1, -1};
    if (pipe2(fds, O_CLOEXEC) != 0) return CniError(ErrorCode::kIoFailure, "pipe failed");
    *pair[0] = UniqueFd(fds[0]);
    *pair[1] = UniqueFd(fds[1]);
  }
  return p;
}

// Forks and execs `binary` with the pipes as stdio, in its own process group (so a timeout
// kills its children too). Closes the child's ends in the parent.
absl::StatusOr<pid_t> Spawn(const std::string& binary, const std::vector<std::string>& env,
                            Pipes& p) {
  // Everything the child needs is prepared before fork (no allocation after it).
  std::vector<char*> argv = {const_cast<char*>(binary.c_str()), nullptr};
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return CniError(ErrorCode::kIoFailure, cninet::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    dup2(p.in_r.get(), STDIN_FILENO);
    dup2(p.out_w.get(), STDOUT_FILENO);
    dup2(p.err_w.get(), STDERR_FILENO);
    setpgid(0, 0);
    execve(binary.c_str(), argv.data(), envp.data());
    static const char kMsg[] = "exec failed\n";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    _exit(127);
  }
  p.in_r.Reset();
  p.out_w.Reset();
  p.err_w.Reset();
  fcntl(p.in_w.get(), F_SETFL, O_NONBLOCK);
  return pid;
}

// What the child wrote, and whether the deadline passed first.
struct Output {
  std::string out, err;
  bool timed_out = false;
};

// One stream read until EOF: its fd, where its bytes go, and its slot in this poll round.
struct Reader {
  const UniqueFd& fd;
  std::string& into;
  bool open = true;
  int slot = -1;

  void Drain(const pollfd* fds) {
    if (slot < 0 || (fds[slot].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
    char buf[16384];
    ssize_t got = read(fd.get(), buf, sizeof(buf));
    if (got > 0) {
      into.append(buf, static_cast<size_t>(got));
    } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
      open = false;
    }
  }
};

// Writes stdin_data and reads stdout/stderr concurrently (no pipe can fill up and block the
// child) until both close or the deadline passes.
Output Communicate(Pipes& p, std::string_view stdin_data,
                   std::chrono::steady_clock::time_point deadline) {
  Output o;
  Reader readers[2] = {{p.out_r, o.out}, {p.err_r, o.err}};
  size_t written = 0;
  if (stdin_data.empty()) p.in_w.Reset();
  while (readers[0].open || readers[1].open) {
    pollfd fds[3];
    nfds_t n = 0;
    for (Reader& r : readers) {
      r.slot = r.open ? static_cast<int>(n) : -1;
      if (r.open) fds[n++] = {r.fd.get(), POLLIN, 0};
    }
    int in_slot = p.in_w.get() >= 0 ? static_cast<int>(n) : -1;
    if (in_slot >= 0) fds[n++] = {p.in_w.get(), POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      o.timed_out = true;
      break;
    }
    int r = poll(fds, n, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (in_slot >= 0 && (fds[in_slot].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t w = write(p.in_w.get(), stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written >= stdin_data.size()) {
        p.in_w.Reset();
      }
    }
    for (Reader& reader : readers) reader.Drain(fds);
  }
  return o;
}

// Kills the child's process group after a timeout, then waits for it; returns the wait status.
int Reap(pid_t pid, bool timed_out) {
  if (timed_out) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// The result of a finished plugin: stdout on success, else its error object from stdout, or
// (as libcni does) the stderr text or exit status when stdout is empty.
absl::StatusOr<std::string> Interpret(const std::string& binary, int status, const Output& o,
                                      const ExecOptions& options) {
  if (o.timed_out) {
    return absl::DeadlineExceededError(
        cninet::StrCat("plugin ", binary, " timed out after ", options.timeout.count(), " ms"));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return o.out;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && o.out.empty() &&
      o.err == "exec failed\n") {
    return CniError(ErrorCode::kIoFailure, cninet::StrCat("cannot execute plugin ", binary));
  }
  std::string_view text = o.out;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  if (!text.empty()) return ErrorFromJson(text);
  std::string msg =
      o.err.empty()
          ? cninet::StrCat("plugin ", binary, " failed (",
                           WIFSIGNALED(status) ? "killed by signal " : "exit code ",
                           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), ")")
          : cninet::StrCat("netplugin failed: \"", o.err, "\"");
  return CniError(ErrorCode::kInternal, msg);
}

}  // namespace

absl::StatusOr<std::string> ExecPlugin(const std::string& binary, std::string_view stdin_data,
                                       const ExecOptions& options) {
  CNINET_ASSIGN_OR_RETURN(Pipes pipes, MakePipes());
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  CNINET_ASSIGN_OR_RETURN(pid_t pid, Spawn(binary, options.env, pipes));
  Output output = Communicate(pipes, stdin_data, deadline);
  int status = Reap(pid, output.timed_out);
  if (options.forward_stderr && !output.err.empty()) {
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, output.err.data(), output.err.size());
  }
  return Interpret(binary, status, output, options);
}

namespace {

absl::StatusOr<std::string> Delegate(std::string_view type, std::string_view conf_bytes,
                                     const CmdArgs& args, Command command) {
  CNINET_ASSIGN_OR_RETURN(std::string binary, FindInPath(type, args.path));
  ExecOptions opts;
  opts.env = args.DelegateEnv(command);
  return ExecPlugin(binary, conf_bytes, opts);
}

}  // namespace

absl::StatusOr<Result> DelegateAdd(std::string_view type, std::string_view conf_bytes,
                                   const CmdArgs& args) {
  absl::StatusOr<std::string> out = Delegate(type, conf_bytes, args, Command::kAdd);
  if (!out.ok()) {
    // Spec section 4: a failed delegated ADD is followed by DEL before returning failure.
    absl::StatusOr<std::string> del = Delegate(type, conf_bytes, args, Command::kDel);
    if (!del.ok())
      CNINET_LOG(kWarning, "cleanup DEL of delegate ", type, " failed: ", del.status().message());
    return out.status();
  }
  absl::StatusOr<Result> result = Result::Parse(*out);
  if (!result.ok())
    return Annotate(result.status(), cninet::StrCat("delegate ", type, " returned"));
  return result;
}

absl::Status DelegateCheck(std::string_view type, std::string_view conf_bytes,
                           const CmdArgs& args) {
  return Delegate(type, conf_bytes, args, Command::kCheck).status();
}

absl::Status DelegateDel(std::string_view type, std::string_view conf_bytes, const CmdArgs& args) {
  return Delegate(type, conf_bytes, args, Command::kDel).status();
}

absl::Status DelegateGc(std::string_view type, std::string_view conf_bytes, const CmdArgs& args) {
  return Delegate(type, conf_bytes, args, Command::kGc).status();
}

absl::Status DelegateStatus(std::string_view type, std::string_view conf_bytes,
                            const CmdArgs& args) {
  return Delegate(type, conf_bytes, args, Command::kStatus).status();
}

absl::StatusOr<Result> DelegateAdd(std::string_view type, const CmdArgs& args) {
  return DelegateAdd(type, args.stdin_data, args);
}

absl::Status DelegateCheck(std::string_view type, const CmdArgs& args) {
  return DelegateCheck(type, args.stdin_data, args);
}

absl::Status DelegateDel(std::string_view type, const CmdArgs& args) {
  return DelegateDel(type, args.stdin_data, args);
}

absl::Status DelegateGc(std::string_view type, const CmdArgs& args) {
  return DelegateGc(type, args.stdin_data, args);
}

absl::Status DelegateStatus(std::string_view type, const CmdArgs& args) {
  return DelegateStatus(type, args.stdin_data, args);
}

}  // namespace cninet::cni
