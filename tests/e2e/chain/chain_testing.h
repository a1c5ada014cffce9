// Shared pieces of the cninet-ebpf suites: the "node" topology (node and outside namespaces joined
// by the node's uplink), conflists with cninet-ebpf chained after an interface plugin, TCP
// helpers that run inside namespaces, and the leftover inventory every suite asserts is empty.
//
//   pods (netns) --veth-- [bridge/ptp   node netns   up0 192.168.200.1] --veth-- ext 192.168.200.2
//
// The node's default route points at the outside namespace, so the plugin finds up0 as uplink.
#ifndef CNINET_TESTS_E2E_CHAIN_CHAIN_TESTING_H_
#define CNINET_TESTS_E2E_CHAIN_CHAIN_TESTING_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/line_server.h"
#include "testing/test_util.h"

namespace cninet::chain_testing {

inline constexpr char kNodeIp[] = "192.168.200.1";
inline constexpr char kExtIp[] = "192.168.200.2";
inline constexpr char kClusterCidr[] = "10.244.0.0/16";
inline constexpr char kVip[] = "10.96.0.10";

// The node and outside namespaces with the uplink between them; removed on destruction.
class NodeTopology {
 public:
  NodeTopology();
  cninet::testing::ScopedNetns& node() { return node_; }
  cninet::testing::ScopedNetns& ext() { return ext_; }
  // True when setup succeeded (failures are reported as test failures too).
  bool ok() const { return ok_; }

 private:
  cninet::testing::ScopedNetns node_{"chn"};
  cninet::testing::ScopedNetns ext_{"che"};
  bool ok_ = false;
};

// A network configuration list: an interface plugin with IPAM, then (optionally) cninet-ebpf.
struct ChainSpec {
  std::string version = "1.0.0";
  std::string name;                        // Network name.
  std::string iface = "cninet-bridge";     // cninet-bridge, cninet-ptp, bridge or ptp.
  std::string ipam = "cninet-host-local";  // cninet-host-local or host-local.
  std::string subnet = "10.244.1.0/24";
  std::string bridge = "cnb0";
  std::string ipam_dir;                                  // host-local dataDir.
  std::string state_dir;                                 // cninet-ebpf stateDir.
  std::string bpffs;                                     // cninet-ebpf bpffsRoot.
  std::string ebpf_type = "cninet-ebpf";                 // "" = no chained datapath plugin.
  nlohmann::json ebpf_extra = nlohmann::json::object();  // Merged into the cninet-ebpf entry.

  nlohmann::json ToJson() const;
  // <bpffs>/cninet/<instance>: where the datapath pins the maps.
  std::string PinDir() const;
  // <bpffs>/cninet/<instance>/programs: where cninet-ebpf pins its program.
  std::string ProgramPinDir() const;
  // <state_dir>/<instance>.
  std::string InstanceStateDir() const;
};

// Everything of an attachment that could be left behind on the node.
struct Inventory {
  std::vector<std::string> pod_veths;  // veth links in the node netns other than the uplink.
  bool uplink_clsact = false;          // clsact qdisc on up0.
  std::vector<std::string> leases;     // host-local lease files.
  std::vector<std::string> records;    // cninet-ebpf attachment records.
  bool maps_pinned = false;            // <bpffs>/cninet/<instance> exists.
  bool program_pinned = false;         // <bpffs>/cninet/<instance>/programs exists.
  std::vector<std::string> cache;      // libcni result cache entries of the network.
  std::string rules;  // nftables/iptables ruleset of the node (a fresh namespace has none).
  // One line per leftover, "" when nothing is left.
  std::string Describe() const;
  bool empty() const { return Describe().empty(); }
};

// Takes the inventory of `spec`'s network on `node` (`cache_dir` may be "").
Inventory TakeInventory(cninet::testing::ScopedNetns& node, const ChainSpec& spec,
                        const std::string& cache_dir);

// A TCP server in a namespace: answers every connection with "TAG PEER" and closes (the shared
// line server in greeting mode).
struct TcpServer : ::cninet::testing::LineServer {
  TcpServer(const std::string& netns_path, uint16_t port, std::string tag)
      : ::cninet::testing::LineServer(
            ::cninet::testing::LineServerOptions{.netns_path = netns_path,
                                                 .port = port,
                                                 .name = std::move(tag),
                                                 .greet_and_close = true}) {
    EXPECT_TRUE(status().ok()) << status();
  }
  bool ok() const { return status().ok(); }
};

// Connects from inside `netns_path` to ip:port and returns everything the server sent.
absl::StatusOr<std::string> TcpRequest(const std::string& netns_path, const std::string& ip,
                                       uint16_t port);

// Sends one UDP datagram from inside `netns_path` (creates conntrack/NAT state).
absl::Status SendUdp(const std::string& netns_path, const std::string& ip, uint16_t port);

// First IPv4 address of `ifname` inside netns `path` ("" when none).
std::string Ipv4Of(const std::string& netns_path, const std::string& ifname = "eth0");

}  // namespace cninet::chain_testing

#endif  // CNINET_TESTS_E2E_CHAIN_CHAIN_TESTING_H_
