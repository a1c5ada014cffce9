// cninet-bench-tcp: a short-connection TCP load generator and its server, for bench/compare.
//
//   cninet-bench-tcp server --port P [--threads T]
//       Accepts on 0.0.0.0:P (one SO_REUSEPORT socket per thread); per connection: read the
//       request, write a 64-byte response, close. Runs until SIGTERM/SIGINT.
//   cninet-bench-tcp client (--vip-base A --services N | --addresses A,B,...) --port P
//                           [--targets K] [--threads T] [--duration S] [--warmup S]
//       Opens short connections to K service addresses spread evenly over the N consecutive
//       addresses starting at A (so a rule list walked in order is, on average, walked half
//       way) - or to the listed addresses - round-robin per thread: connect, send a 16-byte
//       request, read the 64-byte response, close with RST (SO_LINGER 0: no TIME_WAIT, so ports
//       recycle at once). Prints one line:
//       "connections=<n> errors=<n> seconds=<s> cps=<rate> p50_us=<x> p99_us=<x>
//       connect_p50_us=<x>" (p50/p99: the whole connection; connect_p50_us: the connect() call
//       alone, i.e. the SYN / SYN-ACK round trip plus any connect-time hook such as socket LB).
// Every connection that fails (connect, short read) counts as an error; the client exits 1 if
// more than 1 % fail.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kRequest = 16;
constexpr size_t kResponse = 64;

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop = true; }

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "cninet-bench-tcp: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

bool WriteAll(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool ReadExactly(int fd, char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = read(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void ServerThread(uint16_t port) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls < 0) Die("socket");
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) Die("bind");
  if (listen(ls, 4096) < 0) Die("listen");
  // A receive timeout lets the thread notice SIGTERM while blocked in accept().
  timeval tv{0, 200000};
  setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char req[kRequest];
  char resp[kResponse];
  std::memset(resp, 'r', sizeof(resp));
  while (!g_stop) {
    int fd = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval ctv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &ctv, sizeof(ctv));
    if (ReadExactly(fd, req, sizeof(req))) WriteAll(fd, resp, sizeof(resp));
    close(fd);
  }
  close(ls);
}

struct ClientStats {
  uint64_t ok = 0;
  uint64_t errors = 0;
  std::vector<uint32_t> latency_us;  // sampled
  std::vector<uint32_t> connect_ns;  // sampled with latency_us: the connect() call alone
};

void ClientThread(const std::vector<uint32_t>& targets, uint16_t port, size_t first,
                  std::chrono::steady_clock::time_point start,
                  std::chrono::steady_clock::time_point end, ClientStats* st) {
  char req[kRequest];
  std::memset(req, 'q', sizeof(req));
  char resp[kResponse];
  size_t next = first;
  linger lg{1, 0};
  while (true) {
    auto t0 = std::chrono::steady_clock::now();
    if (t0 >= end || g_stop) break;
    const bool counted = t0 >= start;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = targets[next];
    next = (next + 1) % targets.size();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) Die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    const auto c0 = std::chrono::steady_clock::now();
    const bool connected = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    const auto c1 = std::chrono::steady_clock::now();
    bool ok = connected && WriteAll(fd, req, sizeof(req)) && ReadExactly(fd, resp, sizeof(resp));
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    if (!counted) continue;
    if (!ok) {
      ++st->errors;
      continue;
    }
    ++st->ok;
    if ((st->ok & 15) == 0) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      st->latency_us.push_back(static_cast<uint32_t>(us));
      st->connect_ns.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(c1 - c0).count()));
    }
  }
}

const char* Arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 2; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

int Usage() {
  std::fprintf(stderr,
               "usage: cninet-bench-tcp server --port P [--threads T]\n"
               "       cninet-bench-tcp client (--vip-base A --services N | --addresses A,B,...)"
               " --port P [--targets K] [--threads T] [--duration S] [--warmup S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  const std::string mode = argv[1];
  const int threads = std::atoi(Arg(argc, argv, "--threads", "2"));
  const uint16_t port = static_cast<uint16_t>(std::atoi(Arg(argc, argv, "--port", "0")));
  if (port == 0 || threads <= 0) return Usage();

  if (mode == "server") {
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) ts.emplace_back(ServerThread, port);
    for (auto& t : ts) t.join();
    return 0;
  }
  if (mode != "client") return Usage();
  const double duration = std::atof(Arg(argc, argv, "--duration", "5"));
  const double warmup = std::atof(Arg(argc, argv, "--warmup", "1"));
  if (duration <= 0) return Usage();
  std::vector<uint32_t> targets;
  if (const char* list = Arg(argc, argv, "--addresses", nullptr)) {
    std::string all = list;
    for (size_t pos = 0; pos <= all.size();) {
      size_t comma = all.find(',', pos);
      if (comma == std::string::npos) comma = all.size();
      in_addr a{};
      if (inet_pton(AF_INET, all.substr(pos, comma - pos).c_str(), &a) != 1) return Usage();
      targets.push_back(a.s_addr);
      pos = comma + 1;
    }
  } else {
    in_addr base{};
    if (inet_pton(AF_INET, Arg(argc, argv, "--vip-base", ""), &base) != 1) return Usage();
    const long services = std::atol(Arg(argc, argv, "--services", "1"));
    const long k = std::min<long>(services, std::atol(Arg(argc, argv, "--targets", "64")));
    if (services <= 0 || k <= 0) return Usage();
    for (long i = 0; i < k; ++i) {
      const long idx = (2 * i + 1) * services / (2 * k);  // evenly spread, middle of each slice
      targets.push_back(htonl(ntohl(base.s_addr) + static_cast<uint32_t>(idx)));
    }
  }
  const auto now = std::chrono::steady_clock::now();
  const auto start = now + std::chrono::microseconds(static_cast<int64_t>(warmup * 1e6));
  const auto end = start + std::chrono::microseconds(static_cast<int64_t>(duration * 1e6));
  std::vector<ClientStats> stats(static_cast<size_t>(threads));
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back(ClientThread, std::cref(targets), port,
                    static_cast<size_t>(i) * targets.size() / static_cast<size_t>(threads), start,
                    end, &stats[static_cast<size_t>(i)]);
  }
  for (auto& t : ts) t.join();
  uint64_t ok = 0, errors = 0;
  std::vector<uint32_t> lat, conn;
  for (const auto& s : stats) {
    conn.insert(conn.end(), s.connect_ns.begin(), s.connect_ns.end());
    ok += s.ok;
    errors += s.errors;
    lat.insert(lat.end(), s.latency_us.begin(), s.latency_us.end());
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    return lat.empty() ? 0u : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))];
  };
  std::sort(conn.begin(), conn.end());
  const double connect_p50_us = conn.empty() ? 0.0 : conn[conn.size() / 2] / 1e3;
  std::printf(
      "connections=%llu errors=%llu seconds=%.1f cps=%.0f p50_us=%u p99_us=%u "
      "connect_p50_us=%.1f\n",
      static_cast<unsigned long long>(ok), static_cast<unsigned long long>(errors), duration,
      static_cast<double>(ok) / duration, pct(0.5), pct(0.99), connect_p50_us);
  return (ok == 0 || errors * 100 > ok + errors) ? 1 : 0;
}
