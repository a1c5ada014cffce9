// cninet's plugins (cninet-bridge + cninet-host-local, cninet-ebpf) under containerd 1.6's
// `ctr run --cni`, with containerd started by the test inside a node namespace.
//   --rm:        ctr sends DEL after the task exited, when the container's netns is already gone;
//   -d:          ctr never sends DEL; after `task kill` / `task delete` / `container delete` the
//   test
//                runs the DEL an orchestrator would (from ctr's libcni cache, netns gone).
// Either way nothing may be left: no lease, veth, endpoint, record, pin, uplink program.
#include <memory>
#include <string>

#include "chain_testing.h"
#include "cninet/cni/cni.h"
#include "cninet/datapath/datapath.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtimes.h"
#include "testing/test_util.h"

namespace cninet::chain_testing {
namespace {

namespace cni = ::cninet::cni;
namespace dp = ::cninet::datapath;
using ::cninet::datapath::testing::RunInNetns;
using ::cninet::datapath::testing::ScopedBpffs;
using ::cninet::testing::CommandResult;
using ::cninet::testing::TempDir;
using ::cninet::testing::UniqueName;
using ::testing::HasSubstr;

class ContainerdChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    ASSERT_TRUE(topo_.ok());
    spec_.name = UniqueName("ctd");
    spec_.ipam_dir = tmp_.Sub("ipam");
    spec_.state_dir = tmp_.Sub("state");
    spec_.bpffs = fs_.path();
    spec_.iface = "cninet-bridge";
    spec_.ipam = "cninet-host-local";
    WriteConflist();
    ctd_ = std::make_unique<Containerd>(topo_.node().name(), tmp_.Sub("net.d"));
    absl::Status started = ctd_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  void WriteConflist() {
    cninet::testing::WriteFile(tmp_.Sub("net.d/10-" + spec_.name + ".conflist"),
                               spec_.ToJson().dump(2));
  }
  std::string FullId(const std::string& id) {
    return "default-" + id;
  }  // ctr's container ID for CNI.

  // ctr-in-node.sh bind-mounts the test's cache over /var/lib/cni (ctr's fixed cache path), so
  // that mount point must exist on the host. Declared first, removed last.
  cninet::testing::ScopedHostPaths host_dirs_{{"/var/lib/cni", "/var/lib/cni/results"}};
  ScopedBpffs fs_;
  TempDir tmp_;
  NodeTopology topo_;
  ChainSpec spec_;
  std::unique_ptr<Containerd> ctd_;  // Destroyed first.
};

TEST_F(ContainerdChainTest, RunRmAddsThenDeletesAfterTheNetnsIsGone) {
  TcpServer outside(topo_.ext().path(), 9000, "EXT");
  const std::string id = "rm-" + spec_.name;
  CommandResult r =
      ctd_->Ctr({"run", "--rm", "--cni", "--rootfs", ctd_->rootfs(), id, "/bin/sh", "-c",
                 std::string("ip -4 -o addr show eth0; nc -w 3 ") + kExtIp + " 9000 </dev/null"});
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("inet 10.244.1."));
  // The outside saw the node address: the container's egress went through the attached datapath.
  EXPECT_THAT(r.out, HasSubstr(std::string("EXT ") + kNodeIp));
  Inventory inv = TakeInventory(topo_.node(), spec_, ctd_->cache_dir());
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

TEST_F(ContainerdChainTest, DetachedKillDeleteThenDelFromTheCacheLeavesNothing) {
  const std::string id = "d-" + spec_.name;
  CommandResult r =
      ctd_->Ctr({"run", "-d", "--cni", "--rootfs", ctd_->rootfs(), id, "/bin/sleep", "600"});
  ASSERT_TRUE(r.ok()) << r.out << r.err;

  cni::RuntimeOptions options;
  options.plugin_paths = {CNINET_PLUGIN_DIR};
  options.cache_dir = ctd_->cache_dir();
  cni::Runtime runtime(options);
  auto list = cni::NetConfList::FromJson(spec_.ToJson());
  ASSERT_TRUE(list.ok());
  cni::RuntimeConf rt;
  rt.container_id = FullId(id);
  auto cached = runtime.GetCachedResult(*list, rt);
  ASSERT_TRUE(cached.ok() && cached->has_value()) << "ctr's libcni cached the result of the chain";
  const std::string ip = (**cached).ips.at(0).address.address().ToString();
  {
    auto maps = dp::Datapath::OpenPinned(spec_.PinDir());
    ASSERT_TRUE(maps.ok()) << maps.status();
    auto eps = (*maps)->endpoints().List();
    ASSERT_TRUE(eps.ok());
    ASSERT_EQ(eps->size(), 1u);
    EXPECT_EQ((*eps)[0].address.ToString(), ip);
  }

  ctd_->Remove(id);  // task kill + task delete + container delete: the netns is gone now.
  Inventory before = TakeInventory(topo_.node(), spec_, ctd_->cache_dir());
  EXPECT_THAT(before.leases, ::testing::ElementsAre(ip)) << "ctr does not DEL detached containers";
  EXPECT_EQ(before.records.size(), 1u);

  // The orchestrator's DEL, netns gone, prevResult from ctr's cache, run in the node namespace.
  for (const auto& iface : (**cached).interfaces)
    if (!iface.sandbox.empty()) rt.netns = iface.sandbox;  // "/proc/<task pid>/ns/net": gone now.
  ASSERT_THAT(rt.netns, ::testing::StartsWith("/proc/"));
  absl::Status del =
      RunInNetns(topo_.node().path(), [&] { return runtime.DelNetworkList(*list, rt); });
  ASSERT_TRUE(del.ok()) << del;
  Inventory inv = TakeInventory(topo_.node(), spec_, ctd_->cache_dir());
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

// Must-show 4 for containerd: which conflist versions ctr 1.6 (go-cni + libcni 1.1) accepts.
TEST_F(ContainerdChainTest, ResultVersionsAcceptedByCtr) {
  for (const char* version : {"0.4.0", "1.0.0", "1.1.0"}) {
    SCOPED_TRACE(version);
    spec_.version = version;
    WriteConflist();
    const std::string id = std::string("v") + version[0] + version[2] + "-" + spec_.name;
    CommandResult r = ctd_->Ctr({"run", "--rm", "--cni", "--rootfs", ctd_->rootfs(), id, "/bin/sh",
                                 "-c", "ip -4 -o addr show eth0"});
    if (std::string(version) == "1.1.0") {
      EXPECT_FALSE(r.ok());
      EXPECT_THAT(r.err, HasSubstr("unsupported CNI result version \"1.1.0\""));
      ctd_->Remove(id);  // ctr leaves the created container behind when ADD fails.
    } else {
      ASSERT_TRUE(r.ok()) << r.out << r.err;
      EXPECT_THAT(r.out, HasSubstr("inet 10.244.1."));
    }
    Inventory inv = TakeInventory(topo_.node(), spec_, ctd_->cache_dir());
    EXPECT_TRUE(inv.empty()) << inv.Describe();
  }
}

}  // namespace
}  // namespace cninet::chain_testing
