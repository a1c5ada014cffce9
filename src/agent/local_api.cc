#include "cninet/agent/local_api.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::agent {
namespace {

using Clock = std::chrono::steady_clock;

// Waits until `fd` is ready for `events` or the deadline passes.
absl::Status WaitFd(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return absl::DeadlineExceededError("local API: timed out");
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r > 0) return absl::OkStatus();
    if (r < 0 && errno != EINTR) return ErrnoStatus(errno, "poll");
  }
}

absl::Status WriteAll(int fd, const char* data, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    ssize_t w = send(fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      data += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) return ErrnoStatus(errno, "local API: send");
    CNINET_RETURN_IF_ERROR(WaitFd(fd, POLLOUT, deadline));
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, char* data, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    ssize_t r = recv(fd, data, n, MSG_DONTWAIT);
    if (r > 0) {
      data += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return absl::UnavailableError("local API: connection closed");
    if (errno != EAGAIN && errno != EINTR) return ErrnoStatus(errno, "local API: recv");
    CNINET_RETURN_IF_ERROR(WaitFd(fd, POLLIN, deadline));
  }
  return absl::OkStatus();
}

absl::Status SendMessage(int fd, const google::protobuf::Message& m, Clock::time_point deadline) {
  std::string body;
  if (!m.SerializeToString(&body)) return absl::InternalError("local API: serialize");
  if (body.size() > kMaxApiMessageBytes) return absl::ResourceExhaustedError("message too large");
  uint32_t n = static_cast<uint32_t>(body.size());
  char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                 static_cast<char>(n)};
  CNINET_RETURN_IF_ERROR(WriteAll(fd, len, 4, deadline));
  return WriteAll(fd, body.data(), body.size(), deadline);
}

absl::Status ReceiveMessage(int fd, google::protobuf::Message* m, Clock::time_point deadline) {
  unsigned char len[4];
  CNINET_RETURN_IF_ERROR(ReadAll(fd, reinterpret_cast<char*>(len), 4, deadline));
  uint32_t n = (uint32_t{len[0]} << 24) | (uint32_t{len[1]} << 16) | (uint32_t{len[2]} << 8) |
               uint32_t{len[3]};
  if (n > kMaxApiMessageBytes) {
    return absl::InvalidArgumentError(StrCat("local API: message of ", n, " bytes is too large"));
  }
  std::string body(n, '\0');
  CNINET_RETURN_IF_ERROR(ReadAll(fd, body.data(), n, deadline));
  if (!m->ParseFromString(body)) return absl::InvalidArgumentError("local API: malformed message");
  return absl::OkStatus();
}

absl::StatusOr<sockaddr_un> SocketAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        StrCat("socket path \"", path, "\" must be 1..", sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

void SetStatus(api::Response* r, const absl::Status& st) {
  r->set_code(static_cast<int32_t>(st.code()));
  r->set_error(std::string(st.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalApiServer>> LocalApiServer::Start(const std::string& path,
                                                                      LocalApiHandler* handler) {
  CNINET_ASSIGN_OR_RETURN(sockaddr_un addr, SocketAddress(path));
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    if (std::filesystem::create_directories(parent, ec)) {
      chmod(parent.c_str(), 0700);
    } else if (ec) {
      return absl::InternalError(StrCat("create ", parent.string(), ": ", ec.message()));
    }
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoStatus(errno, "local API: socket");
  // A socket file left by a previous agent that died: replace it, unless someone answers there.
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      close(fd);
      return absl::AlreadyExistsError(StrCat(path, " exists and is not a socket"));
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live =
        probe >= 0 && connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
    if (probe >= 0) close(probe);
    if (live) {
      close(fd);
      return absl::AlreadyExistsError(StrCat("another agent serves ", path));
    }
    unlink(path.c_str());
  }
  mode_t old_mask = umask(0177);  // The socket is born 0600: no window with a wider mode.
  int rc = bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  umask(old_mask);
  if (rc != 0) {
    close(fd);
    return ErrnoStatus(err, StrCat("local API: bind ", path));
  }
  if (chmod(path.c_str(), 0600) != 0 || listen(fd, 64) != 0) {
    err = errno;
    close(fd);
    unlink(path.c_str());
    return ErrnoStatus(err, StrCat("local API: listen on ", path));
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    err = errno;
    close(fd);
    unlink(path.c_str());
    return ErrnoStatus(err, "local API: eventfd");
  }
  std::unique_ptr<LocalApiServer> s(new LocalApiServer(path, fd, wake, handler));
  s->thread_ = std::thread([raw = s.get()] { raw->Serve(); });
  CNINET_LOG(kInfo, "local API on ", path);
  return s;
}

LocalApiServer::LocalApiServer(std::string path, int fd, int wake_fd, LocalApiHandler* handler)
    : path_(std::move(path)), listen_fd_(fd), wake_fd_(wake_fd), handler_(handler) {}

LocalApiServer::~LocalApiServer() {
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(wake_fd_);
  unlink(path_.c_str());
}

void LocalApiServer::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      CNINET_LOG(kError, "local API: poll: ", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) continue;
    HandleConnection(c);
    close(c);
  }
}

void LocalApiServer::HandleConnection(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid()) {
    CNINET_LOG(kWarning, "local API: refusing a peer with uid ", cred.uid);
    return;
  }
  auto deadline = Clock::now() + std::chrono::seconds(10);
  api::Request req;
  if (absl::Status st = ReceiveMessage(fd, &req, deadline); !st.ok()) {
    CNINET_LOG(kWarning, "local API: ", st.message());
    return;
  }
  api::Response resp;
  switch (req.kind_case()) {
    case api::Request::kStatus:
      *resp.mutable_status() = handler_->Status(req.status());
      break;
    case api::Request::kHealth:
      *resp.mutable_health() = handler_->Health();
      break;
    case api::Request::kReportPod:
      SetStatus(&resp, handler_->ReportPod(req.report_pod().pod()));
      break;
    case api::Request::kForgetPod:
      SetStatus(&resp, handler_->ForgetPod(req.forget_pod()));
      break;
    case api::Request::kGcPods:
      SetStatus(&resp, handler_->GcPods(req.gc_pods()));
      break;
    default:
      SetStatus(&resp, absl::InvalidArgumentError("unknown request"));
  }
  if (absl::Status st = SendMessage(fd, resp, deadline); !st.ok()) {
    CNINET_LOG(kWarning, "local API: ", st.message());
  }
}

absl::StatusOr<api::Response> CallAgent(const std::string& socket_path, const api::Request& request,
                                        std::chrono::milliseconds timeout) {
  CNINET_ASSIGN_OR_RETURN(sockaddr_un addr, SocketAddress(socket_path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        StrCat("no agent at ", socket_path, ": ", strerror(err), " (is cninet-agent running?)"));
  }
  auto deadline = Clock::now() + timeout;
  api::Response resp;
  absl::Status st = SendMessage(fd, request, deadline);
  if (st.ok()) st = ReceiveMessage(fd, &resp, deadline);
  close(fd);
  if (!st.ok()) return Annotate(st, StrCat("agent at ", socket_path));
  if (resp.code() != 0) {
    return absl::Status(static_cast<absl::StatusCode>(resp.code()), resp.error());
  }
  return resp;
}

absl::StatusOr<api::AgentStatus> QueryAgentStatus(const std::string& socket,
                                                  uint32_t max_services) {
  api::Request req;
  req.mutable_status()->set_max_services(max_services);
  CNINET_ASSIGN_OR_RETURN(api::Response resp, CallAgent(socket, req));
  return resp.status();
}

absl::StatusOr<api::HealthReply> QueryAgentHealth(const std::string& socket) {
  api::Request req;
  req.mutable_health();
  CNINET_ASSIGN_OR_RETURN(api::Response resp, CallAgent(socket, req));
  return resp.health();
}

absl::Status ReportPodToAgent(const std::string& socket, const v1::Pod& pod) {
  api::Request req;
  *req.mutable_report_pod()->mutable_pod() = pod;
  return CallAgent(socket, req).status();
}

absl::Status ForgetPodAtAgent(const std::string& socket, const api::ForgetPodRequest& request) {
  api::Request req;
  *req.mutable_forget_pod() = request;
  return CallAgent(socket, req).status();
}

absl::Status GcPodsAtAgent(const std::string& socket, const api::GcPodsRequest& request) {
  api::Request req;
  *req.mutable_gc_pods() = request;
  return CallAgent(socket, req).status();
}

}  // namespace cninet::agent
