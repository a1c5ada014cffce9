#include "testing/line_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <utility>

#include "testing/test_util.h"

namespace cninet::testing {
namespace {

// Runs `fn` on a thread that first enters the network namespace `path` ("" = stays).
absl::Status InNetns(const std::string& path, const std::function<absl::Status()>& fn) {
  if (path.empty()) return fn();
  absl::Status result;
  std::thread t([&] {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || unshare(CLONE_FS) != 0 || setns(fd, CLONE_NEWNET) != 0) {
      result = absl::InternalError("enter " + path + ": " + strerror(errno));
      if (fd >= 0) close(fd);
      return;
    }
    close(fd);
    result = fn();
  });
  t.join();
  return result;
}

// "ip" or "ip:port" ("[ip]:port" for IPv6).
std::string PeerText(const sockaddr_storage& peer, bool with_port) {
  char ip[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  bool v6 = peer.ss_family == AF_INET6;
  if (v6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    port = ntohs(a->sin6_port);
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    port = ntohs(a->sin_port);
  }
  if (!with_port) return ip;
  return v6 ? "[" + std::string(ip) + "]:" + std::to_string(port)
            : std::string(ip) + ":" + std::to_string(port);
}

}  // namespace

LineServer::LineServer(LineServerOptions options) : options_(std::move(options)) {
  status_ = InNetns(options_.netns_path, [&]() -> absl::Status {
    const bool v6 = options_.address.find(':') != std::string::npos;
    listen_fd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return absl::InternalError(std::string("socket: ") + strerror(errno));
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_storage a{};
    socklen_t alen = 0;
    if (v6) {
      setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      auto* a6 = reinterpret_cast<sockaddr_in6*>(&a);
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(options_.port);
      alen = sizeof(*a6);
      if (inet_pton(AF_INET6, options_.address.c_str(), &a6->sin6_addr) != 1)
        return absl::InvalidArgumentError("not an IP address: " + options_.address);
    } else {
      auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
      a4->sin_family = AF_INET;
      a4->sin_port = htons(options_.port);
      alen = sizeof(*a4);
      if (inet_pton(AF_INET, options_.address.c_str(), &a4->sin_addr) != 1)
        return absl::InvalidArgumentError("not an IP address: " + options_.address);
    }
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), alen) != 0 ||
        listen(listen_fd_, 64) != 0) {
      return absl::InternalError(std::string("bind/listen: ") + strerror(errno));
    }
    return absl::OkStatus();
  });
  if (status_.ok()) accept_thread_ = std::thread([this] { AcceptLoop(); });
}

LineServer::~LineServer() {
  stop_ = true;
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (int fd : conns_) shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : workers_) t.join();
  for (int fd : conns_) close(fd);
  if (listen_fd_ >= 0) close(listen_fd_);
}

std::string LineServer::Reply(const std::string& peer, const std::string& line) const {
  std::string reply = options_.name + " " + peer;
  if (options_.echo_line && !line.empty()) return reply + " " + line;  // line ends with '\n'
  return reply + "\n";
}

void LineServer::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int c = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::string who = PeerText(peer, options_.peer_port);
    if (options_.greet_and_close) {
      std::string reply = Reply(who, "");
      (void)!write(c, reply.data(), reply.size());
      close(c);
      continue;
    }
    std::lock_guard<std::mutex> l(mu_);
    conns_.push_back(c);
    workers_.emplace_back([this, c, who] { Serve(c, who); });
  }
}

void LineServer::Serve(int fd, const std::string& peer) {
  std::string buf;
  char tmp[512];
  while (true) {
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n <= 0) break;
    buf.append(tmp, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string reply = Reply(peer, buf.substr(0, nl + 1));
      buf.erase(0, nl + 1);
      if (write(fd, reply.data(), reply.size()) < 0) return;
    }
  }
  // The fd stays open until the destructor: closing here could let it shut a reused number.
}

UdpLineServer::UdpLineServer(const std::string& netns_path, int af, uint16_t port, std::string name)
    : name_(std::move(name)) {
  status_ = InNetns(netns_path, [&]() -> absl::Status {
    fd_ = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return absl::InternalError(std::string("socket: ") + strerror(errno));
    sockaddr_storage a{};
    socklen_t len = 0;
    if (af == AF_INET6) {
      int one = 1;
      setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      auto* a6 = reinterpret_cast<sockaddr_in6*>(&a);
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(port);
      len = sizeof(*a6);
    } else {
      auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
      a4->sin_family = AF_INET;
      a4->sin_port = htons(port);
      len = sizeof(*a4);
    }
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0)
      return absl::InternalError(std::string("bind: ") + strerror(errno));
    return absl::OkStatus();
  });
  if (status_.ok()) thread_ = std::thread([this] { Loop(); });
}

UdpLineServer::~UdpLineServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
}

void UdpLineServer::Loop() {
  char buf[512];
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len);
    if (n < 0) continue;
    std::string out = name_ + " " + PeerText(peer, true) + " " + std::string(buf, n);
    (void)!sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&peer), len);
  }
}

LineConn::LineConn(LineConn&& o) noexcept : fd(std::exchange(o.fd, -1)) {}

LineConn& LineConn::operator=(LineConn&& o) noexcept {
  if (this != &o) {
    if (fd >= 0) close(fd);
    fd = std::exchange(o.fd, -1);
  }
  return *this;
}

LineConn::~LineConn() {
  if (fd >= 0) close(fd);
}

uint16_t LineConn::LocalPort() const {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&a)->sin6_port
                                       : reinterpret_cast<sockaddr_in*>(&a)->sin_port);
}

absl::StatusOr<LineConn> ConnectLine(const std::string& netns_path, const std::string& ip,
                                     uint16_t port, std::chrono::milliseconds timeout) {
  LineConn c;
  absl::Status st = InNetns(netns_path, [&]() -> absl::Status {
    auto [a, len] = SockAddr(ip, port);
    c.fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return absl::InternalError(std::string("socket: ") + strerror(errno));
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
      return absl::UnavailableError("connect " + ip + ":" + std::to_string(port) + ": " +
                                    strerror(errno));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return c;
}

absl::StatusOr<std::string> AskLine(const LineConn& c, const std::string& line) {
  std::string msg = line + "\n";
  if (write(c.fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size()))
    return absl::UnavailableError(std::string("write: ") + strerror(errno));
  std::string got;
  char ch;
  while (got.empty() || got.back() != '\n') {
    ssize_t n = read(c.fd, &ch, 1);
    if (n <= 0) {
      return absl::UnavailableError(std::string("no reply (") + (n == 0 ? "EOF" : strerror(errno)) +
                                    ")");
    }
    got.push_back(ch);
  }
  got.pop_back();
  return got;
}

}  // namespace cninet::testing
