#include "net_testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::testing {
namespace {

// A file descriptor closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

socklen_t ToSockaddr(const cni::IPAddress& ip, uint16_t port, sockaddr_storage* ss) {
  memset(ss, 0, sizeof(*ss));
  if (ip.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, ip.bytes().data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  memcpy(&sin6->sin6_addr, ip.bytes().data(), 16);
  return sizeof(sockaddr_in6);
}

std::string AddrText(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

absl::Status WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline,
                     std::string_view what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return absl::DeadlineExceededError(cninet::StrCat(what, ": timed out"));
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus(errno, what);
    if (r > 0) return absl::OkStatus();
  }
}

absl::StatusOr<Fd> OpenSocket(const netlink::Netns& ns, int family, int type) {
  CNINET_ASSIGN_OR_RETURN(int fd, ns.Call<int>([&]() -> absl::StatusOr<int> {
    int s = socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) return ErrnoStatus(errno, "socket");
    return s;
  }));
  return Fd(fd);
}

absl::StatusOr<Exchange> DoExchange(bool tcp, const netlink::Netns& server_ns,
                                    const cni::IPAddress& server_ip, uint16_t port,
                                    const netlink::Netns& client_ns, const cni::IPAddress& dest_ip,
                                    uint16_t dest_port, std::string_view payload,
                                    std::chrono::milliseconds timeout) {
  int family = server_ip.is_v4() ? AF_INET : AF_INET6;
  int type = tcp ? SOCK_STREAM : SOCK_DGRAM;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_storage addr{};
  socklen_t addr_len = ToSockaddr(server_ip, port, &addr);
  sockaddr_storage dest{};
  socklen_t dest_len = ToSockaddr(dest_ip, dest_port, &dest);

  CNINET_ASSIGN_OR_RETURN(Fd server, OpenSocket(server_ns, family, type));
  int one = 1;
  setsockopt(server.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(server.get(), reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    return ErrnoStatus(errno, cninet::StrCat("bind ", server_ip.ToString()));
  }
  if (tcp && listen(server.get(), 4) != 0) return ErrnoStatus(errno, "listen");

  // Server side: answer exactly one request with "echo:" + request.
  absl::Status server_status;
  std::string seen_client;
  std::thread server_thread([&] {
    char buf[2048];
    if (tcp) {
      server_status = WaitFor(server.get(), POLLIN, deadline, "accept");
      if (!server_status.ok()) return;
      sockaddr_storage peer{};
      socklen_t plen = sizeof(peer);
      Fd conn(accept4(server.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC));
      if (conn.get() < 0) {
        server_status = ErrnoStatus(errno, "accept");
        return;
      }
      seen_client = AddrText(peer);
      fcntl(conn.get(), F_SETFL, O_NONBLOCK);
      server_status = WaitFor(conn.get(), POLLIN, deadline, "server read");
      if (!server_status.ok()) return;
      ssize_t n = read(conn.get(), buf, sizeof(buf));
      if (n <= 0) {
        server_status = absl::UnavailableError("server read failed");
        return;
      }
      std::string reply = "echo:" + std::string(buf, static_cast<size_t>(n));
      if (write(conn.get(), reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) {
        server_status = absl::UnavailableError("server write failed");
      }
    } else {
      server_status = WaitFor(server.get(), POLLIN, deadline, "server recv");
      if (!server_status.ok()) return;
      sockaddr_storage peer{};
      socklen_t plen = sizeof(peer);
      ssize_t n =
          recvfrom(server.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &plen);
      if (n < 0) {
        server_status = ErrnoStatus(errno, "recvfrom");
        return;
      }
      seen_client = AddrText(peer);
      std::string reply = "echo:" + std::string(buf, static_cast<size_t>(n));
      if (sendto(server.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer),
                 plen) < 0) {
        server_status = ErrnoStatus(errno, "sendto");
      }
    }
  });

  auto client_side = [&]() -> absl::StatusOr<std::string> {
    CNINET_ASSIGN_OR_RETURN(Fd client, OpenSocket(client_ns, family, type));
    if (connect(client.get(), reinterpret_cast<sockaddr*>(&dest), dest_len) != 0) {
      if (errno != EINPROGRESS) return ErrnoStatus(errno, "connect");
      CNINET_RETURN_IF_ERROR(WaitFor(client.get(), POLLOUT, deadline, "connect"));
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return ErrnoStatus(err, "connect");
    }
    if (send(client.get(), payload.data(), payload.size(), MSG_NOSIGNAL) < 0) {
      return ErrnoStatus(errno, "client send");
    }
    std::string got;
    while (got.size() < payload.size() + 5) {
      CNINET_RETURN_IF_ERROR(WaitFor(client.get(), POLLIN, deadline, "client read"));
      char buf[2048];
      ssize_t n = recv(client.get(), buf, sizeof(buf), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n < 0) return ErrnoStatus(errno, "client read");
      if (n == 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  };
  absl::StatusOr<std::string> reply = client_side();
  if (!reply.ok()) {
    // Unblock the server thread quickly: it gives up at the deadline anyway.
    shutdown(server.get(), SHUT_RDWR);
  }
  server_thread.join();
  if (!reply.ok()) return reply.status();
  if (!server_status.ok()) return server_status;
  return Exchange{*reply, seen_client};
}

}  // namespace

absl::StatusOr<Exchange> TcpExchange(const netlink::Netns& server_ns,
                                     const cni::IPAddress& server_ip, uint16_t port,
                                     const netlink::Netns& client_ns, std::string_view payload,
                                     std::chrono::milliseconds timeout) {
  return DoExchange(true, server_ns, server_ip, port, client_ns, server_ip, port, payload, timeout);
}

absl::StatusOr<Exchange> TcpExchangeVia(const netlink::Netns& server_ns,
                                        const cni::IPAddress& bind_ip, uint16_t bind_port,
                                        const netlink::Netns& client_ns,
                                        const cni::IPAddress& dest_ip, uint16_t dest_port,
                                        std::string_view payload,
                                        std::chrono::milliseconds timeout) {
  return DoExchange(true, server_ns, bind_ip, bind_port, client_ns, dest_ip, dest_port, payload,
                    timeout);
}

absl::StatusOr<Exchange> UdpExchange(const netlink::Netns& server_ns,
                                     const cni::IPAddress& server_ip, uint16_t port,
                                     const netlink::Netns& client_ns, std::string_view payload,
                                     std::chrono::milliseconds timeout) {
  return DoExchange(false, server_ns, server_ip, port, client_ns, server_ip, port, payload,
                    timeout);
}

}  // namespace cninet::testing
