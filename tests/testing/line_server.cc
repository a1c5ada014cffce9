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

}  // namespace

LineServer::LineServer(LineServerOptions options) : options_(std::move(options)) {
  status_ = InNetns(options_.netns_path, [&]() -> absl::Status {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return absl::InternalError(std::string("socket: ") + strerror(errno));
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(options_.port);
    if (inet_pton(AF_INET, options_.address.c_str(), &a.sin_addr) != 1) {
      return absl::InvalidArgumentError("not an IPv4 address: " + options_.address);
    }
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
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
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    int c = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (c < 0) continue;
    char ip[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
    std::string who = ip;
    if (options_.peer_port) who += ":" + std::to_string(ntohs(peer.sin_port));
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

}  // namespace cninet::testing
