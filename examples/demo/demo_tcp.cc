// cninet-demo-tcp: the demo's TCP server and client, so the demo needs no other tool.
//
//   cninet-demo-tcp serve PORT NAME       answer every line with "NAME <peer address>"
//   cninet-demo-tcp ask IP PORT [SECS]    connect, send a line, print the answer (exit 1 on
//                                         failure or after SECS seconds, default 3)
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

int RunServer(int port, const std::string& name) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(s, 128) != 0) {
    std::fprintf(stderr, "cninet-demo-tcp: listen on %d: %s\n", port, std::strerror(errno));
    return 1;
  }
  while (true) {
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    int c = accept4(s, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (c < 0) continue;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
    std::thread(Serve, c, name, std::string(ip)).detach();
  }
}

int Ask(const char* ip, int port, int timeout_s) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) return Usage();
  int rc = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
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
