#include "testing/etcd_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "testing/test_util.h"

namespace cninet::testing {
namespace {

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Three distinct free 127.0.0.1 ports (the sockets stay bound until all are known).
absl::Status PickPorts(int* a, int* b, int* c) {
  Socket s1(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Socket s2(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Socket s3(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int* out[3] = {a, b, c};
  const Socket* sockets[3] = {&s1, &s2, &s3};
  for (int i = 0; i < 3; ++i) {
    if (sockets[i]->get() < 0) return ErrnoStatus(errno, "socket");
    sockaddr_in addr = Loopback(0);
    if (bind(sockets[i]->get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return ErrnoStatus(errno, "bind 127.0.0.1:0");
    }
    socklen_t len = sizeof(addr);
    if (getsockname(sockets[i]->get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return ErrnoStatus(errno, "getsockname");
    }
    *out[i] = ntohs(addr.sin_port);
  }
  return absl::OkStatus();
}

// GET /health on etcd's metrics port (plain HTTP also when clients speak TLS); true when it
// reports itself healthy.
bool Healthy(int port) {
  absl::StatusOr<HttpResponse> r = HttpGet(port, "/health");
  return r.ok() && r->body.find("\"health\":\"true\"") != std::string::npos;
}

std::string LogTail(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return "(no log)";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "(no log)";
  const uintmax_t want = 2000;
  std::string out(static_cast<size_t>(std::min<uintmax_t>(size, want)), '\0');
  ssize_t n = pread(fd, out.data(), out.size(), static_cast<off_t>(size - out.size()));
  close(fd);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

}  // namespace

absl::Status EtcdServerOptions::Validate() const {
  if (data_dir.empty()) return absl::InvalidArgumentError("etcd: data_dir is not set");
  if (name.empty()) return absl::InvalidArgumentError("etcd: name is not set");
  if (client_port < 0 || client_port > 65535 || peer_port < 0 || peer_port > 65535) {
    return absl::InvalidArgumentError("etcd: ports must be 0 (pick one) or 1-65535");
  }
  if (client_port != 0 && client_port == peer_port) {
    return absl::InvalidArgumentError("etcd: client and peer ports must differ");
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError("etcd: tls.cert_file and tls.key_file go together");
  }
  if (tls.client_cert_auth && (tls.cert_file.empty() || tls.trusted_ca_file.empty())) {
    return absl::InvalidArgumentError(
        "etcd: tls.client_cert_auth needs tls.cert_file, tls.key_file and tls.trusted_ca_file");
  }
  if (start_timeout.count() <= 0) {
    return absl::InvalidArgumentError("etcd: start_timeout must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EtcdServer>> EtcdServer::Start(const EtcdServerOptions& options) {
  CNINET_RETURN_IF_ERROR(options.Validate());
  if (access(options.binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        StrCat("etcd binary ", options.binary, " not found (Debian package etcd-server)"));
  }
  EtcdServerOptions opts = options;
  if (opts.log_file.empty()) opts.log_file = opts.data_dir + ".log";
  absl::Status last;
  // With picked ports another process may grab one before etcd binds it: retry with new ones.
  // (The metrics port is always picked.)
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::unique_ptr<EtcdServer> server(new EtcdServer(opts));
    int client = 0, peer = 0;
    CNINET_RETURN_IF_ERROR(PickPorts(&client, &peer, &server->metrics_port_));
    if (server->options_.client_port == 0) server->options_.client_port = client;
    if (server->options_.peer_port == 0) server->options_.peer_port = peer;
    last = server->Launch();
    if (last.ok()) last = server->WaitReady();
    if (last.ok()) return server;
  }
  return last;
}

EtcdServer::~EtcdServer() {
  if (absl::Status s = Stop(true); !s.ok()) CNINET_LOG(kWarning, "stopping etcd: ", s.ToString());
}

std::string EtcdServer::endpoint() const { return StrCat("127.0.0.1:", options_.client_port); }
std::string EtcdServer::url() const {
  return StrCat(options_.tls.cert_file.empty() ? "http" : "https",
                "://127.0.0.1:", options_.client_port);
}

absl::Status EtcdServer::Launch() {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return absl::InternalError(StrCat("creating ", options_.data_dir, ": ", ec.message()));
  chmod(options_.data_dir.c_str(), 0700);
  int log_fd = open(options_.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return ErrnoStatus(errno, StrCat("opening ", options_.log_file));
  const std::string client = url();
  const std::string peer = StrCat("http://127.0.0.1:", options_.peer_port);
  std::vector<std::string> args = {
      options_.binary,
      "--name=" + options_.name,
      "--data-dir=" + options_.data_dir,
      "--listen-client-urls=" + client,
      "--advertise-client-urls=" + client,
      "--listen-peer-urls=" + peer,
      "--initial-advertise-peer-urls=" + peer,
      StrCat("--initial-cluster=", options_.name, "=", peer),
      "--initial-cluster-state=new",
      StrCat("--initial-cluster-token=cninet-", getpid(), "-", options_.client_port),
      "--logger=zap",
      "--log-outputs=stderr",
      StrCat("--listen-metrics-urls=http://127.0.0.1:", metrics_port_),
  };
  if (!options_.tls.cert_file.empty()) {
    args.push_back("--cert-file=" + options_.tls.cert_file);
    args.push_back("--key-file=" + options_.tls.key_file);
  }
  if (!options_.tls.trusted_ca_file.empty()) {
    args.push_back("--trusted-ca-file=" + options_.tls.trusted_ca_file);
  }
  if (options_.tls.client_cert_auth) args.push_back("--client-cert-auth");
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const bool kill_with_parent = options_.kill_with_parent;
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(log_fd);
    return ErrnoStatus(err, "fork");
  }
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    if (kill_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
    }
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    setpgid(0, 0);
    close_range(3, ~0U, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status EtcdServer::WaitReady() {
  auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int wstatus = 0;
    pid_t r = waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return absl::UnavailableError(
          StrCat("etcd exited during start-up; log tail:\n", LogTail(options_.log_file)));
    }
    if (Healthy(metrics_port_)) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (void)Stop(false);
  return absl::UnavailableError(StrCat("etcd did not become healthy within ",
                                       options_.start_timeout.count(), " ms; log tail:\n",
                                       LogTail(options_.log_file)));
}

absl::Status EtcdServer::Stop(bool graceful) {
  if (pid_ < 0) return absl::OkStatus();
  kill(pid_, graceful ? SIGTERM : SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    int wstatus = 0;
    pid_t r = waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status EtcdServer::Restart() {
  CNINET_RETURN_IF_ERROR(Stop(true));
  CNINET_RETURN_IF_ERROR(Launch());
  return WaitReady();
}

}  // namespace cninet::testing
