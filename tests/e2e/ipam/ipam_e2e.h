// Shared fixture of the ipam e2e suites: a "node" network namespace the plugins run in, a "pod"
// namespace used as CNI_NETNS, a temporary dataDir, and helpers to run cninet-host-local and the
// reference host-local exactly as a runtime does (exec, CNI_* environment, config on stdin).
#ifndef CNINET_TESTS_E2E_IPAM_IPAM_E2E_H_
#define CNINET_TESTS_E2E_IPAM_IPAM_E2E_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_util.h"

namespace cninet::ipam::e2e {

// Our plugin, as built, and the reference one Debian ships.
inline std::string OurPlugin() { return std::string(CNINET_PLUGIN_DIR) + "/cninet-host-local"; }
inline constexpr const char* kRefPlugin = "/usr/lib/cni/host-local";

class IpamE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_FALSE(tmp_.path().empty());
  }

  // A network configuration for network `name` with `ipam_body` (the ipam object's members
  // other than type and dataDir) at `version`.
  std::string Conf(const std::string& ipam_body, const std::string& version = "1.0.0",
                   const std::string& name = "e2enet", const std::string& type = "host-local",
                   const std::string& data_dir = "") const {
    return "{\"cniVersion\":\"" + version + "\",\"name\":\"" + name +
           "\",\"type\":\"mock\",\"ipam\":{\"type\":\"" + type + "\",\"dataDir\":\"" +
           (data_dir.empty() ? DataDir() : data_dir) + "\"," + ipam_body + "}}";
  }

  std::string DataDir() const { return tmp_.Sub("data"); }
  std::string NetDir(const std::string& name = "e2enet") const { return DataDir() + "/" + name; }

  // Runs `plugin` inside the node namespace with CNI_NETNS = the pod namespace.
  cninet::testing::CommandResult Call(const std::string& plugin, const std::string& command,
                                      const std::string& container_id, const std::string& conf,
                                      const std::string& cni_args = "",
                                      const std::string& ifname = "eth0") const {
    cninet::testing::PluginCall call;
    call.command = command;
    call.container_id = container_id;
    call.netns = command == "GC" || command == "STATUS" ? "" : pod_.path();
    call.ifname = command == "GC" || command == "STATUS" ? "" : ifname;
    call.args = cni_args;
    call.path = "/usr/lib/cni";
    return cninet::testing::RunCniPlugin(plugin, call, conf, node_.name());
  }

  // Lease files (names that are not lock / last_reserved_ip.* / hidden) of `dir`.
  static std::vector<std::string> LeaseFiles(const std::string& dir);
  // Every entry of `root` (recursively) with its mode and contents, for "nothing changed" checks.
  static std::map<std::string, std::string> Snapshot(const std::string& root);
  // The "ips" addresses of a result printed by a plugin.
  static std::vector<std::string> Addresses(const std::string& result_json);

  cninet::testing::TempDir tmp_;
  cninet::testing::ScopedNetns node_{"ipnode"};
  cninet::testing::ScopedNetns pod_{"ippod"};
};

}  // namespace cninet::ipam::e2e

#endif  // CNINET_TESTS_E2E_IPAM_IPAM_E2E_H_
