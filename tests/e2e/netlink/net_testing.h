// Test helpers for suites that build netns topologies: real TCP/UDP exchanges between
// namespaces (sockets opened inside them through Netns::Call, no external tools needed) and
// status assertion macros.
#ifndef CNINET_TESTS_E2E_NETLINK_NET_TESTING_H_
#define CNINET_TESTS_E2E_NETLINK_NET_TESTING_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cninet/base/status.h"
#include "cninet/cni/ip.h"
#include "cninet/netlink/netns.h"

// ASSERT_OK(status-expression): fails the test with the status when it is not OK.
#define ASSERT_OK(...)                                \
  do {                                                \
    ::absl::Status assert_ok_st_ = (__VA_ARGS__);     \
    ASSERT_TRUE(assert_ok_st_.ok()) << assert_ok_st_; \
  } while (false)
// EXPECT_OK(status-expression).
#define EXPECT_OK(...)                                \
  do {                                                \
    ::absl::Status expect_ok_st_ = (__VA_ARGS__);     \
    EXPECT_TRUE(expect_ok_st_.ok()) << expect_ok_st_; \
  } while (false)
// ASSERT_OK_AND_ASSIGN(lhs, statusor-expression).
#define ASSERT_OK_AND_ASSIGN(lhs, ...) \
  CNINET_ASSERT_OK_AND_ASSIGN_IMPL_(CNINET_STATUS_CONCAT_(cninet_sor_, __LINE__), lhs, __VA_ARGS__)
#define CNINET_ASSERT_OK_AND_ASSIGN_IMPL_(sor, lhs, ...) \
  auto sor = (__VA_ARGS__);                              \
  ASSERT_TRUE(sor.ok()) << sor.status();                 \
  lhs = std::move(*sor)

namespace cninet::testing {

// What one exchange observed.
struct Exchange {
  std::string reply;        // What the client received ("echo:" + payload on success).
  std::string client_addr;  // The client's address as the server saw it.
};

// A server in `server_ns` listens on server_ip:port, a client in `client_ns` connects, sends
// `payload`, and reads the echo. Fails (DeadlineExceeded, Unavailable, ...) if anything in
// between does not carry the traffic within `timeout`.
absl::StatusOr<Exchange> TcpExchange(const netlink::Netns& server_ns,
                                     const cni::IPAddress& server_ip, uint16_t port,
                                     const netlink::Netns& client_ns, std::string_view payload,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5));
// TcpExchange where the client connects to dest_ip:dest_port, which something in between
// (DNAT, a port mapping) must deliver to the server's bind_ip:bind_port.
absl::StatusOr<Exchange> TcpExchangeVia(
    const netlink::Netns& server_ns, const cni::IPAddress& bind_ip, uint16_t bind_port,
    const netlink::Netns& client_ns, const cni::IPAddress& dest_ip, uint16_t dest_port,
    std::string_view payload, std::chrono::milliseconds timeout = std::chrono::seconds(5));
// The same with one UDP datagram each way.
absl::StatusOr<Exchange> UdpExchange(const netlink::Netns& server_ns,
                                     const cni::IPAddress& server_ip, uint16_t port,
                                     const netlink::Netns& client_ns, std::string_view payload,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace cninet::testing

#endif  // CNINET_TESTS_E2E_NETLINK_NET_TESTING_H_
