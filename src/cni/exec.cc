#include "cninet/cni/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

absl::StatusOr<std::string> ExecPlugin(const std::string& binary, std::string_view stdin_data,
                                       const ExecOptions& options) {
  int in[2], out[2], err[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) != 0) return CniError(ErrorCode::kIoFailure, "pipe failed");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) != 0) return CniError(ErrorCode::kIoFailure, "pipe failed");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) != 0) return CniError(ErrorCode::kIoFailure, "pipe failed");
  UniqueFd err_r(err[0]), err_w(err[1]);

  // Everything the child needs is prepared before fork (no allocation after it).
  std::vector<char*> argv = {const_cast<char*>(binary.c_str()), nullptr};
  std::vector<char*> envp;
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) return CniError(ErrorCode::kIoFailure, cninet::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    dup2(in_r.get(), STDIN_FILENO);
    dup2(out_w.get(), STDOUT_FILENO);
    dup2(err_w.get(), STDERR_FILENO);
    setpgid(0, 0);
    execve(binary.c_str(), argv.data(), envp.data());
    static const char kMsg[] = "exec failed\n";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    _exit(127);
  }
  in_r.Reset();
  out_w.Reset();
  err_w.Reset();
  fcntl(in_w.get(), F_SETFL, O_NONBLOCK);

  std::string stdout_text, stderr_text;
  size_t written = 0;
  if (stdin_data.empty()) in_w.Reset();
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool out_open = true, err_open = true, timed_out = false;
  char buf[16384];
  while (out_open || err_open) {
    pollfd fds[3];
    nfds_t n = 0;
    int oi = -1, ei = -1, ii = -1;
    if (out_open) {
      fds[n] = {out_r.get(), POLLIN, 0};
      oi = static_cast<int>(n++);
    }
    if (err_open) {
      fds[n] = {err_r.get(), POLLIN, 0};
      ei = static_cast<int>(n++);
    }
    if (in_w.get() >= 0) {
      fds[n] = {in_w.get(), POLLOUT, 0};
      ii = static_cast<int>(n++);
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int r = poll(fds, n, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (ii >= 0 && (fds[ii].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t w = write(in_w.get(), stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written >= stdin_data.size())
        in_w.Reset();
    }
    auto drain = [&](int idx, const UniqueFd& fd, std::string& into, bool& open_flag) {
      if (idx < 0 || (fds[idx].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
      ssize_t got = read(fd.get(), buf, sizeof(buf));
      if (got > 0) {
        into.append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        open_flag = false;
      }
    };
    drain(oi, out_r, stdout_text, out_open);
    drain(ei, err_r, stderr_text, err_open);
  }
  if (timed_out) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (options.forward_stderr && !stderr_text.empty()) {
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, stderr_text.data(), stderr_text.size());
  }
  if (timed_out) {
    return absl::DeadlineExceededError(
        cninet::StrCat("plugin ", binary, " timed out after ", options.timeout.count(), " ms"));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return stdout_text;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && stdout_text.empty() &&
      stderr_text == "exec failed\n") {
    return CniError(ErrorCode::kIoFailure, cninet::StrCat("cannot execute plugin ", binary));
  }
  // The plugin's error object is on stdout; fall back to stderr text (as libcni does).
  std::string_view text = stdout_text;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.empty()) {
    std::string msg =
        stderr_text.empty()
            ? cninet::StrCat("plugin ", binary, " failed (",
                             WIFSIGNALED(status) ? "killed by signal " : "exit code ",
                             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), ")")
            : cninet::StrCat("netplugin failed: \"", stderr_text, "\"");
    return CniError(ErrorCode::kInternal, msg);
  }
  return ErrorFromJson(text);
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

}  // namespace cninet::cni
