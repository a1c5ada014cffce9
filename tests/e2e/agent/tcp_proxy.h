// A TCP forwarder on 127.0.0.1 whose connections a test can cut, to break a client's streams
// while the server stays up (e.g. to compact etcd while a watch is disconnected).
#ifndef CNINET_TESTS_E2E_AGENT_TCP_PROXY_H_
#define CNINET_TESTS_E2E_AGENT_TCP_PROXY_H_

#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace cninet::agent::testing {

class TcpProxy {
 public:
  // Listens on a free 127.0.0.1 port and forwards to 127.0.0.1:`target_port`.
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // The listening port (0 when setting up failed).
  int port() const { return port_; }
  // Down: every open connection is cut and new ones are closed at once. Up: forwarding again.
  void SetUp(bool up);

 private:
  void AcceptLoop();
  void Pump(int client, int server);

  const int target_port_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  int port_ = 0;
  std::mutex mu_;
  bool up_ = true;
  std::set<int> open_fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace cninet::agent::testing

#endif  // CNINET_TESTS_E2E_AGENT_TCP_PROXY_H_
