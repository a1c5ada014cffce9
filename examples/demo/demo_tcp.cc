// cninet-demo-tcp: the demo's TCP server and client, so the demo needs no other tool.
//
//   cninet-demo-tcp serve PORT NAME       answer every line with "NAME <peer address>" (IPv4 and
//                                         IPv6: one dual-stack socket)
//   cninet-demo-tcp ask IP PORT [SECS]    connect (IPv4 or IPv6), send a line, print the answer
//                                         (exit 1 on failure or after SECS seconds, default 3)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

int Usage() {
  std::fprintf(stderr, "usage: cninet-demo-tcp serve PORT NAME | ask IP PORT [TIMEOUT_SECONDS]\n");
  return 2;
}

void Serve(int fd, std::string name, std::string peer) {
  std::string buf;
  char tmp[512];
  while (true) {
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n <= 0) break;
    buf.append(tmp, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      buf.erase(0, nl + 1);
      std::string reply = name + " " + peer + "\n";
      if (write(fd, reply.data(), reply.size()) < 0) break;
    }
  }
  close(fd);
}

// The peer's address; an IPv4 client of the dual-stack socket without its "::ffff:" prefix.
std::string PeerText(const sockaddr_storage& peer) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (peer.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&peer)->sin_addr, ip, sizeof(ip));
    return ip;
  }
  const in6_addr& a6 = reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&a6)) {
    inet_ntop(AF_INET, &a6.s6_addr[12], ip, sizeof(ip));
  } else {
    inet_ntop(AF_INET6, &a6, ip, sizeof(ip));
  }
  return ip;
}

int RunServer(int port, const std::string& name) {
  int one = 1, zero = 0;
  // One socket for both families ([::] with IPV6_V6ONLY off); IPv4 only without IPv6.
  int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (s >= 0) {
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    a->sin6_addr = in6addr_any;
    addr_len = sizeof(*a);
  } else {
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    addr_len = sizeof(*a);
  }
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(s, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 || listen(s, 128) != 0) {
    std::fprintf(stderr, "cninet-demo-tcp: listen on %d: %s\n", port, std::strerror(errno));
    return 1;
  }
  while (true) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int c = accept4(s, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::thread(Serve, c, name, PeerText(peer)).detach();
  }
}

int Ask(const char* ip, int port, int timeout_s) {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (std::strchr(ip, ':') != nullptr) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return Usage();
    addr_len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return Usage();
    addr_len = sizeof(*a);
  }
  int s = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int rc = connect(s, reinterpret_cast<sockaddr*>(&addr), addr_len);
  if (rc != 0 && errno != EINPROGRESS) {
    std::printf("connect failed: %s\n", std::strerror(errno));
    return 1;
  }
  pollfd p{s, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof(err);
  if (poll(&p, 1, timeout_s * 1000) != 1 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
      err != 0) {
    std::printf("connect failed: %s\n", err != 0 ? std::strerror(err) : "timed out");
    return 1;
  }
  const char hello[] = "hello\n";
  if (write(s, hello, sizeof(hello) - 1) != static_cast<ssize_t>(sizeof(hello) - 1)) {
    std::printf("write failed\n");
    return 1;
  }
  std::string got;
  char c;
  while (got.empty() || got.back() != '\n') {
    p = {s, POLLIN, 0};
    if (poll(&p, 1, timeout_s * 1000) != 1 || read(s, &c, 1) != 1) {
      std::printf("no answer\n");
      return 1;
    }
    got.push_back(c);
  }
  std::fputs(got.c_str(), stdout);
  close(s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 4 && std::strcmp(argv[1], "serve") == 0)
    return RunServer(std::atoi(argv[2]), argv[3]);
  if (argc >= 4 && std::strcmp(argv[1], "ask") == 0) {
    return Ask(argv[2], std::atoi(argv[3]), argc >= 5 ? std::atoi(argv[4]) : 3);
  }
  return Usage();
}
