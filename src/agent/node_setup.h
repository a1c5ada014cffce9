// Node setup: everything the agent does once before it starts watching - the node's network
// namespace and netlink handle, the store, the cluster configuration, the podCIDR, the uplink,
// the VXLAN device and sysctls, the node's registration, the datapath and the conflist. Its
// undoing, TeardownNode (agent.h), is implemented beside it.
#ifndef CNINET_SRC_AGENT_NODE_SETUP_H_
#define CNINET_SRC_AGENT_NODE_SETUP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/agent.h"
#include "cninet/agent/cni_config.h"
#include "cninet/agent/overlay.h"
#include "cninet/agent/store.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/datapath.h"
#include "cninet/netlink/netlink.h"
#include "cninet/v1/cluster.pb.h"

namespace cninet::agent {

// Bytes the VXLAN encapsulation takes from the uplink's MTU.
inline constexpr uint32_t kVxlanOverhead = 50;

// The node's uplink as found in its namespace.
struct Uplink {
  std::string name;
  int index = 0;
  uint32_t mtu = 0;
  std::vector<cni::IPPrefix> addresses;     // IPv4, universe scope; the first is the internal one
  std::vector<cni::IPPrefix> addresses_v6;  // IPv6, universe scope (direct IPv6 routing)
};

// The uplink named `wanted`, or ("") the interface of the IPv4 default route.
absl::StatusOr<Uplink> ResolveUplink(netlink::Handle& h, const std::string& wanted);

// The node's network namespace ("" = the process's own) and a netlink handle in it.
class NodeNamespace {
 public:
  // Opens `netns` (a path) and a handle inside it.
  static absl::StatusOr<NodeNamespace> Open(const std::string& netns);
  // Runs `fn` in the node's namespace (on this thread).
  absl::Status Run(const std::function<absl::Status()>& fn);
  // Writes a sysctl of the node's namespace.
  absl::Status SetSysctl(const std::string& key, const std::string& value);
  // The handle (reconcile thread only once the agent runs).
  netlink::Handle& handle() { return *handle_; }
  // The index of `ifname` in the node, 0 when absent.
  int LinkIndex(std::string_view ifname);

 private:
  std::optional<netlink::Netns> netns_;
  std::optional<netlink::Handle> handle_;
};

// What node setup produced, owned by the running agent.
struct NodeSetup {
  std::optional<NodeNamespace> node;
  std::shared_ptr<Store> store;
  v1::ClusterConfig cluster;  // with defaults applied
  cni::IPPrefix cluster_cidr;
  cni::IPPrefix pod_cidr;
  std::optional<cni::IPPrefix> cluster_cidr_v6;  // dual-stack clusters only
  std::optional<cni::IPPrefix> pod_cidr_v6;      // dual-stack clusters only
  Uplink uplink;
  std::unique_ptr<OverlayReconciler> overlay;    // the VXLAN device exists
  std::unique_ptr<datapath::Datapath> datapath;  // loaded, pinned, attached to uplink and VXLAN
  std::string socket_lb_cgroup;                  // where socket LB is attached ("" = off)
};

// Opens the node and the store, loads the cluster configuration, assigns the podCIDR, creates
// the VXLAN device, sets the sysctls and registers the node (in that order).
absl::Status PrepareNode(const AgentOptions& opt, NodeSetup* setup);
// Loads the datapath and attaches it to the uplink and the VXLAN device.
absl::Status LoadDatapath(const AgentOptions& opt, NodeSetup* setup);
// Socket-level load balancing (opt.socket_lb_cgroup): attaches (or updates in place) the pinned
// socket-LB links on that cgroup and serves the node's network namespace; the links stay pinned
// when the agent exits, like the tc filters. Off: removes links an earlier run pinned.
absl::Status SetUpSocketLb(const AgentOptions& opt, NodeSetup* setup);
// The conflist's parameters for this node.
ConflistParams ConflistFor(const AgentOptions& opt, const NodeSetup& setup);
// Writes the node's conflist (nothing when opt.cni_conf_dir is empty).
absl::Status WriteConflist(const AgentOptions& opt, const NodeSetup& setup);

}  // namespace cninet::agent

#endif  // CNINET_SRC_AGENT_NODE_SETUP_H_
