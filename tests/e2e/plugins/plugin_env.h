// Fixtures for the plugin e2e suites: a "node" namespace where plugins run (as a runtime would run
// them on a host), pod namespaces, plugin execution, and normalized views of node and pod state
// for comparisons and leak checks.
#ifndef CNINET_TESTS_E2E_PLUGINS_PLUGIN_ENV_H_
#define CNINET_TESTS_E2E_PLUGINS_PLUGIN_ENV_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/cni.h"
#include "cninet/netlink/netlink.h"
#include "gtest/gtest.h"
#include "net_testing.h"
#include "testing/test_util.h"

namespace cninet::testing {

// Our plugin `name` in the build tree, or a reference plugin in /usr/lib/cni.
std::string OurPlugin(std::string_view name);
std::string RefPlugin(std::string_view name);
// True when the IPAM engineer's cninet-host-local was built into this tree.
bool HaveCninetHostLocal();

// The outcome of one plugin run, parsed.
struct PluginRun {
  CommandResult raw;
  absl::StatusOr<cni::Result> result = absl::UnknownError("not run");  // ADD only.
  absl::Status status;  // OK on exit code 0; otherwise the plugin's error (code, msg).
  uint32_t code() const { return cni::GetErrorCode(status); }
};

// A pod: its own namespace.
struct Pod {
  std::unique_ptr<netlink::NamedNetns> ns;
  std::unique_ptr<netlink::Handle> h;
  std::string path() const { return ns->path(); }
};

// A node namespace with a Handle, an IPAM data directory and plugin execution inside it.
class Node {
 public:
  Node();
  const netlink::NamedNetns& ns() const { return *ns_; }
  netlink::Handle& h() { return *h_; }
  const std::string& data_dir() const { return dir_.path(); }
  TempDir& dir() { return dir_; }
  // A new pod namespace (loopback up).
  Pod NewPod();
  // Runs `binary` for `command` inside the node namespace.
  PluginRun Exec(const std::string& binary, std::string_view command, std::string_view container_id,
                 const std::string& netns, std::string_view config,
                 std::string_view ifname = "eth0", std::string_view cni_args = {},
                 std::string path = {});

 private:
  TempDir dir_;
  std::unique_ptr<netlink::NamedNetns> ns_;
  std::unique_ptr<netlink::Handle> h_;
};

// host-local IPAM section: ranges/routes are JSON text, e.g. R"([[{"subnet":"10.1.0.0/24"}]])".
nlohmann::json HostLocalIpam(const std::string& data_dir, std::string_view ranges,
                             std::string_view routes = "[]", std::string_view type = "host-local");

// Normalized pod-side state of `ifname`: link kind/MTU/admin state, global and host-scope
// addresses (link-local ones depend on the random MAC and are left out), main-table routes
// with device names instead of indexes. Sorted, one fact per string.
std::vector<std::string> PodView(netlink::Handle& h, std::string_view ifname);
// Normalized node-side state for leak checks: links (name, kind, master), addresses and routes
// of every table but "local".
std::vector<std::string> NodeView(netlink::Handle& h);
// Leases held in a host-local data directory (<dir>/<network>/<ip> files).
std::vector<std::string> Leases(const std::string& data_dir, std::string_view network);
// A result with the parts that legitimately differ between two runs (MACs, random or derived
// veth names, sandbox paths) masked.
nlohmann::json NormalizedResult(const std::string& stdout_json);

}  // namespace cninet::testing

#endif  // CNINET_TESTS_E2E_PLUGINS_PLUGIN_ENV_H_
