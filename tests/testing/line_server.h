// The e2e suites' TCP server: listens in a network namespace and answers each line it reads with
// "NAME PEER LINE" (or "NAME PEER"), so a client learns which backend answered and which source
// address that backend saw (NAT, masquerade, policy tests).
#ifndef CNINET_TESTS_TESTING_LINE_SERVER_H_
#define CNINET_TESTS_TESTING_LINE_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet::testing {

// How a LineServer listens and answers.
struct LineServerOptions {
  std::string netns_path;           // namespace to listen in ("" = the caller's)
  std::string address = "0.0.0.0";  // address to bind (IPv4, or IPv6 with V6ONLY: "::")
  uint16_t port = 0;                // TCP port
  std::string name;                 // first word of every reply
  bool echo_line = true;            // append the received line ("NAME PEER LINE")
  bool peer_port = false;           // PEER as "ip:port" ("[ip]:port") instead of "ip"
  bool greet_and_close = false;     // answer "NAME PEER" on accept, then close (no reading)
};

// A TCP line server running on its own threads until destroyed.
class LineServer {
 public:
  explicit LineServer(LineServerOptions options);
  // In `netns_path` on 0.0.0.0:`port`, answering "NAME PEER LINE".
  LineServer(const std::string& netns_path, uint16_t port, std::string name)
      : LineServer(LineServerOptions{.netns_path = netns_path, .port = port, .name = name}) {}
  ~LineServer();
  LineServer(const LineServer&) = delete;
  LineServer& operator=(const LineServer&) = delete;

  // OK when it listens.
  const absl::Status& status() const { return status_; }

 private:
  void AcceptLoop();
  void Serve(int fd, const std::string& peer);
  std::string Reply(const std::string& peer, const std::string& line) const;

  LineServerOptions options_;
  absl::Status status_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> workers_;
};

// A UDP server on the wildcard address of family `af` (AF_INET or AF_INET6, IPv6 only) in a
// namespace, answering each datagram with "NAME PEER DATA" (PEER as "ip:port" / "[ip]:port"),
// on its own thread until destroyed.
class UdpLineServer {
 public:
  UdpLineServer(const std::string& netns_path, int af, uint16_t port, std::string name);
  ~UdpLineServer();
  UdpLineServer(const UdpLineServer&) = delete;
  UdpLineServer& operator=(const UdpLineServer&) = delete;

  // OK when it is bound.
  const absl::Status& status() const { return status_; }

 private:
  void Loop();

  std::string name_;
  absl::Status status_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A client TCP socket of the line servers, connected from inside a namespace; it then works
// from any thread. Move-only; closes on destruction.
struct LineConn {
  int fd = -1;
  LineConn() = default;
  explicit LineConn(int f) : fd(f) {}
  LineConn(LineConn&& o) noexcept;
  LineConn& operator=(LineConn&& o) noexcept;
  LineConn(const LineConn&) = delete;
  LineConn& operator=(const LineConn&) = delete;
  ~LineConn();
  // The socket's own port.
  uint16_t LocalPort() const;
};

// Connects from inside `netns_path` ("" = the caller's) to ip:port of either family, with
// `timeout` for the connect and for later reads and writes (Unavailable naming the target).
absl::StatusOr<LineConn> ConnectLine(const std::string& netns_path, const std::string& ip,
                                     uint16_t port,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Sends `line` and returns the reply line (without its newline).
absl::StatusOr<std::string> AskLine(const LineConn& c, const std::string& line);

}  // namespace cninet::testing

#endif  // CNINET_TESTS_TESTING_LINE_SERVER_H_
