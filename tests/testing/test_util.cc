#include "testing/test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cninet/base/strings.h"

extern char** environ;

namespace cninet::testing {
namespace {

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

CommandResult Run(const std::vector<std::string>& argv, std::string_view stdin_data,
                  const std::vector<std::string>& env, std::chrono::milliseconds timeout) {
  CommandResult result;
  if (argv.empty()) return result;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    result.err = "pipe failed";
    return result;
  }
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    setpgid(0, 0);
    if (!env.empty()) {
      // Keep PATH so helper commands resolve when a test replaces the environment.
      bool has_path = false;
      for (const auto& e : env) has_path |= e.rfind("PATH=", 0) == 0;
      if (!has_path) {
        static std::string path =
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        cenv.insert(cenv.end() - 1, path.data());
      }
      execvpe(cargv[0], cargv.data(), cenv.data());
    } else {
      execvp(cargv[0], cargv.data());
    }
    dprintf(2, "exec %s: %s\n", cargv[0], strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (pid < 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    result.err = "fork failed";
    return result;
  }
  SetNonBlocking(in[1]);
  SetNonBlocking(out[0]);
  SetNonBlocking(err[0]);
  size_t written = 0;
  if (stdin_data.empty()) {
    close(in[1]);
    in[1] = -1;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_open) {
      fds[n] = {out[0], POLLIN, 0};
      out_i = n++;
    }
    if (err_open) {
      fds[n] = {err[0], POLLIN, 0};
      err_i = n++;
    }
    if (in[1] >= 0) {
      fds[n] = {in[1], POLLOUT, 0};
      in_i = n++;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      result.err += "\n[test_util] command timed out\n";
      break;
    }
    int r = poll(fds, n, static_cast<int>(std::min<long>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) break;
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in[1], stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN) written = stdin_data.size();
      if (written >= stdin_data.size()) {
        close(in[1]);
        in[1] = -1;
      }
    }
    auto drain = [&](int idx, int fd, std::string& into, bool& open_flag) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t got = read(fd, buf, sizeof(buf));
      if (got > 0)
        into.append(buf, static_cast<size_t>(got));
      else if (got == 0 || (errno != EAGAIN && errno != EINTR))
        open_flag = false;
    };
    drain(out_i, out[0], result.out, out_open);
    drain(err_i, err[0], result.err, err_open);
  }
  if (in[1] >= 0) close(in[1]);
  close(out[0]);
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

CommandResult Sh(const std::string& script, std::chrono::milliseconds timeout) {
  return Run({"/bin/sh", "-c", script}, {}, {}, timeout);
}

CommandResult WireDualStackPod(ScopedNetns& node, ScopedNetns& pod, const std::string& host_if,
                               const std::string& ip4, const std::string& ip6,
                               const std::string& gw4, const std::string& gw6) {
  CommandResult r = node.Exec(
      StrCat("ip link add ", host_if, " type veth peer name eth0 netns ", pod.name(),
             " && ip addr add ", gw4, "/32 dev ", host_if, " && ip -6 addr add ", gw6, "/128 dev ",
             host_if, " nodad && ip link set ", host_if, " up && ip route add ", ip4, "/32 dev ",
             host_if, " && ip -6 route add ", ip6, "/128 dev ", host_if));
  if (!r.ok()) return r;
  return pod.Exec(StrCat("ip addr add ", ip4, "/32 dev eth0 && ip -6 addr add ", ip6,
                         "/128 dev eth0 nodad && ip link set eth0 up && ip route add ", gw4,
                         " dev eth0 && ip route add default via ", gw4,
                         " dev eth0 && ip -6 route add ", gw6,
                         " dev eth0 && ip -6 route add default via ", gw6, " dev eth0"));
}

absl::StatusOr<int> FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(StrCat("socket: ", strerror(errno)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int e = errno;
    close(fd);
    return absl::InternalError(StrCat("bind 127.0.0.1:0: ", strerror(e)));
  }
  close(fd);
  return ntohs(a.sin_port);
}

absl::StatusOr<HttpResponse> HttpGet(int port, const std::string& path,
                                     std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left_ms = [&] {
    auto d = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(d.count(), 0));
  };
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(StrCat("socket: ", strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string where = StrCat("http://127.0.0.1:", port, path);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS)
    return absl::UnavailableError(StrCat(where, ": ", strerror(errno)));
  pollfd out{fd, POLLOUT, 0};
  int err = 0;
  socklen_t elen = sizeof(err);
  if (poll(&out, 1, left_ms()) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 ||
      err != 0) {
    return absl::UnavailableError(StrCat(where, ": ", err ? strerror(err) : "no connection"));
  }
  const std::string req = StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    return absl::UnavailableError(StrCat(where, ": send failed"));
  std::string resp;
  while (true) {
    pollfd in{fd, POLLIN, 0};
    int r = poll(&in, 1, left_ms());
    if (r <= 0) return absl::UnavailableError(StrCat(where, ": no complete answer in time"));
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      resp.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    break;  // closed: HTTP/1.0 ends the body with the connection
  }
  HttpResponse out_resp;
  if (resp.rfind("HTTP/", 0) != 0 || resp.size() < 12)
    return absl::UnavailableError(StrCat(where, ": not an HTTP answer"));
  out_resp.code = std::atoi(resp.c_str() + resp.find(' ') + 1);
  size_t body = resp.find("\r\n\r\n");
  out_resp.body = body == std::string::npos ? std::string() : resp.substr(body + 4);
  return out_resp;
}

std::string UniqueName(std::string_view prefix) {
  static std::atomic<unsigned> counter{0};
  char buf[32];
  std::string p(prefix.substr(0, 6));
  snprintf(buf, sizeof(buf), "%s%x%x", p.c_str(), static_cast<unsigned>(getpid()) & 0xfffff,
           counter++ & 0xfff);
  std::string s(buf);
  return s.substr(0, 15);
}

bool IsRoot() { return geteuid() == 0; }

namespace {

// Host-path bookkeeping shared by every test process: for each path, how many ScopedHostPaths
// hold it and whether it was absent when the first one took it. Kept in kHostPathState under an
// flock of /run itself (a lock file would be one more thing left on the host).
constexpr char kHostPathState[] = "/run/cninet-test-hostpaths";

class RunLock {
 public:
  RunLock() : fd_(open("/run", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_ >= 0) {
      while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~RunLock() {
    if (fd_ >= 0) close(fd_);  // Releases the lock.
  }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_;
};

// State file of `path`: "<holders> <absent-at-first-hold>".
std::string StateFile(const std::string& path) {
  std::string name = path;
  std::replace(name.begin(), name.end(), '/', '_');
  return std::string(kHostPathState) + "/" + name;
}

std::pair<int, bool> ReadState(const std::string& path) {
  std::ifstream in(StateFile(path));
  int holders = 0;
  int absent = 0;
  if (in >> holders >> absent) return {holders, absent != 0};
  return {0, false};
}

void WriteState(const std::string& path, int holders, bool absent) {
  if (holders == 0) {
    unlink(StateFile(path).c_str());
    rmdir(kHostPathState);  // Only when empty: the last holder of any path removes it.
    return;
  }
  mkdir(kHostPathState, 0700);
  std::ofstream(StateFile(path), std::ios::trunc) << holders << " " << (absent ? 1 : 0) << "\n";
}

void RemoveHostPath(const std::string& p) {
  struct stat st;
  if (lstat(p.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    rmdir(p.c_str());  // fails (harmlessly) when not empty
  } else {
    unlink(p.c_str());
  }
}

}  // namespace

ScopedHostPaths::ScopedHostPaths(std::vector<std::string> paths) : paths_(std::move(paths)) {
  // Children before parents: a longer path of the same prefix is removed first.
  std::sort(paths_.begin(), paths_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  RunLock lock;
  for (const std::string& p : paths_) {
    auto [holders, absent] = ReadState(p);
    if (holders == 0) absent = access(p.c_str(), F_OK) != 0;
    WriteState(p, holders + 1, absent);
  }
}

ScopedHostPaths::~ScopedHostPaths() {
  RunLock lock;
  for (const std::string& p : paths_) {
    auto [holders, absent] = ReadState(p);
    if (holders <= 1 && absent) RemoveHostPath(p);
    WriteState(p, holders > 0 ? holders - 1 : 0, absent);
  }
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "cninet-test-XXXXXX").string();
  char* p = mkdtemp(tmpl.data());
  path_ = p != nullptr ? std::string(p) : std::string();
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Sub(std::string_view name) const { return path_ + "/" + std::string(name); }

void WriteFile(const std::string& path, std::string_view content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ScopedNetns::ScopedNetns(std::string_view prefix) : name_(UniqueName(prefix)) {
  CommandResult r = Run({"ip", "netns", "add", name_});
  if (!r.ok()) {
    ADD_FAILURE() << "ip netns add " << name_ << " failed: " << r.err;
    removed_ = true;
    return;
  }
  Exec("ip link set lo up");
}

ScopedNetns::~ScopedNetns() { Remove(); }

void ScopedNetns::Remove() {
  if (removed_) return;
  removed_ = true;
  // Kill anything still running in the namespace (servers started by the test).
  CommandResult pids = Run({"ip", "netns", "pids", name_});
  std::istringstream in(pids.out);
  for (std::string pid; in >> pid;) kill(std::atoi(pid.c_str()), SIGKILL);
  Run({"ip", "netns", "delete", name_});
}

CommandResult ScopedNetns::Exec(const std::string& script,
                                std::chrono::milliseconds timeout) const {
  return Run({"ip", "netns", "exec", name_, "/bin/sh", "-c", script}, {}, {}, timeout);
}

CommandResult ScopedNetns::ExecArgv(const std::vector<std::string>& argv,
                                    std::string_view stdin_data,
                                    const std::vector<std::string>& env,
                                    std::chrono::milliseconds timeout) const {
  std::vector<std::string> full = {"ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return Run(full, stdin_data, env, timeout);
}

std::vector<std::string> PluginCall::Env() const {
  std::vector<std::string> env;
  if (!command.empty()) env.push_back("CNI_COMMAND=" + command);
  if (!container_id.empty()) env.push_back("CNI_CONTAINERID=" + container_id);
  if (!netns.empty()) env.push_back("CNI_NETNS=" + netns);
  if (!ifname.empty()) env.push_back("CNI_IFNAME=" + ifname);
  if (!args.empty()) env.push_back("CNI_ARGS=" + args);
  if (!path.empty()) env.push_back("CNI_PATH=" + path);
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  return env;
}

CommandResult RunCniPlugin(const std::string& plugin, const PluginCall& call,
                           std::string_view config, const std::string& in_netns) {
  std::vector<std::string> argv;
  if (!in_netns.empty()) argv = {"ip", "netns", "exec", in_netns};
  argv.push_back(plugin);
  return Run(argv, config, call.Env());
}

std::pair<sockaddr_storage, socklen_t> SockAddr(const std::string& ip, uint16_t port) {
  sockaddr_storage ss{};
  if (ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    return {ss, sizeof(sockaddr_in6)};
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
  return {ss, sizeof(sockaddr_in)};
}

}  // namespace cninet::testing
