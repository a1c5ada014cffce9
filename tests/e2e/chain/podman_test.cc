// cninet-ebpf under Podman 4.3 (CNI backend) inside a node namespace: two containers on a
// conflist [interface plugin + IPAM, cninet-ebpf] get addresses, talk TCP (busybox nc), reach a
// ClusterIP programmed in the datapath by the test, are reachable through a hostPort (-p) from
// another namespace, and `podman rm -f` leaves no lease, link, map entry, program or rule.
#include <memory>
#include <string>
#include <thread>

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
using ::cninet::datapath::testing::ScopedBpffs;
using ::cninet::testing::CommandResult;
using ::cninet::testing::TempDir;
using ::cninet::testing::UniqueName;
using ::testing::HasSubstr;

// The server answers every connection with its name; the client just sleeps.
constexpr char kServe[] = "while true; do echo SERVED-BY-$(hostname) | nc -l -p 8080; done";

class PodmanChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    ASSERT_TRUE(topo_.ok());
    spec_.name = UniqueName("pdm");
    spec_.ipam_dir = tmp_.Sub("ipam");
    spec_.state_dir = tmp_.Sub("state");
    spec_.bpffs = fs_.path();
    podman_ = std::make_unique<Podman>(topo_.node().name(), tmp_.Sub("net.d"));
    absl::Status imported = podman_->ImportBusybox();
    ASSERT_TRUE(imported.ok()) << imported;
  }

  void WriteConflist() {
    cninet::testing::WriteFile(tmp_.Sub("net.d/" + spec_.name + ".conflist"),
                               spec_.ToJson().dump(2));
  }

  CommandResult Pm(const std::vector<std::string>& args) { return podman_->Run(args); }
  std::string Exec(const std::string& container, const std::string& script) {
    CommandResult r = Pm({"exec", container, "sh", "-c", script});
    EXPECT_TRUE(r.ok()) << "podman exec " << container << " " << script << ": " << r.out << r.err;
    return r.out;
  }
  // busybox nc from `container` to ip:port; retried briefly, as the server's `nc -l` loop has a
  // gap between two connections.
  std::string Nc(const std::string& container, const std::string& ip, int port) {
    return Exec(container, "for i in 1 2 3 4 5; do nc -w 3 " + ip + " " + std::to_string(port) +
                               " </dev/null && break; sleep 0.3; done");
  }
  std::unique_ptr<dp::Datapath> Maps() {
    auto d = dp::Datapath::OpenPinned(spec_.PinDir());
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }
  std::string Libcni(const std::string& container) {
    // libcni (podman's) caches results in /var/lib/cni/results/<network>-<container id>-<ifname>.
    return "/var/lib/cni/results/" + spec_.name + "-" + container + "-eth0";
  }

  // Must-show 1/2: two containers, TCP between them, a ClusterIP, a hostPort, masquerade; then
  // `podman rm -f` leaves nothing.
  void TwoContainersEndToEnd() {
    WriteConflist();
    const std::string srv = "srv-" + spec_.name, cli = "cli-" + spec_.name;
    CommandResult s = Pm({"run", "-d", "--name", srv, "--hostname", "srv", "--network", spec_.name,
                          "-p", "18080:8080", Podman::Image(), "sh", "-c", kServe});
    ASSERT_TRUE(s.ok()) << s.out << s.err;
    CommandResult c =
        Pm({"run", "-d", "--name", cli, "--network", spec_.name, Podman::Image(), "sleep", "600"});
    ASSERT_TRUE(c.ok()) << c.out << c.err;
    const std::string srv_id = Pm({"inspect", "--format", "{{.Id}}", srv}).out.substr(0, 64);
    const std::string ip_srv = podman_->Ipv4(srv), ip_cli = podman_->Ipv4(cli);
    ASSERT_THAT(ip_srv, ::testing::StartsWith("10.244.1."));
    ASSERT_THAT(ip_cli, ::testing::StartsWith("10.244.1."));
    EXPECT_THAT(Exec(cli, "ip -4 -o addr show eth0"), HasSubstr(ip_cli))
        << "the address podman reports is configured";

    // The datapath knows both containers and the hostPort.
    auto maps = Maps();
    ASSERT_NE(maps, nullptr);
    auto eps = maps->endpoints().List();
    ASSERT_TRUE(eps.ok());
    EXPECT_EQ(eps->size(), 2u);
    auto services = maps->services().List();
    ASSERT_EQ(services.size(), 1u);
    EXPECT_EQ(services[0].frontends.at(0).port, 18080);
    EXPECT_EQ(services[0].backends.at(0).ToString(), ip_srv + ":8080");
    EXPECT_TRUE(cninet::testing::ReadFile(Libcni(srv_id)).find(ip_srv) != std::string::npos)
        << "podman cached the chain's result (prevResult passed through cninet-ebpf)";

    // Container to container over TCP.
    EXPECT_THAT(Nc(cli, ip_srv, 8080), HasSubstr("SERVED-BY-srv"));
    // A ClusterIP programmed by the test, backed by the server container.
    dp::Service vip;
    vip.id = 1;
    vip.frontends = {
        {*cni::IPAddress::Parse(kVip), 80, dp::Protocol::kTcp, dp::FrontendKind::kClusterIP}};
    vip.backends = {{*cni::IPAddress::Parse(ip_srv), 8080}};
    vip.maglev_size = 251;
    ASSERT_TRUE(maps->services().Upsert(vip).ok());
    EXPECT_THAT(Nc(cli, kVip, 80), HasSubstr("SERVED-BY-srv"));
    // The hostPort, from another namespace, to the node's address.
    auto via_host_port = TcpRequest(topo_.ext().path(), kNodeIp, 18080);
    for (int i = 0; i < 5 && !via_host_port.ok(); ++i) {  // The server loop's gap, as in Nc().
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      via_host_port = TcpRequest(topo_.ext().path(), kNodeIp, 18080);
    }
    ASSERT_TRUE(via_host_port.ok()) << via_host_port.status();
    EXPECT_THAT(*via_host_port, HasSubstr("SERVED-BY-srv"));
    // Egress leaving the cluster CIDR is masqueraded to the node address.
    TcpServer outside(topo_.ext().path(), 9000, "EXT");
    EXPECT_THAT(Nc(cli, kExtIp, 9000), HasSubstr(std::string("EXT ") + kNodeIp));
    ASSERT_TRUE(maps->services().Delete(1).ok());

    CommandResult rm = Pm({"rm", "--force", "--time", "0", srv, cli});
    ASSERT_TRUE(rm.ok()) << rm.out << rm.err;
    Inventory inv = TakeInventory(topo_.node(), spec_, "/var/lib/cni");
    EXPECT_TRUE(inv.empty()) << inv.Describe();
    EXPECT_TRUE(cninet::testing::ReadFile(Libcni(srv_id)).empty());
  }

  // podman's libcni caches results under /var/lib/cni and its image code keeps a blob-info cache
  // in /var/lib/containers/cache, whatever --root says (fixed paths). Declared first, removed last.
  cninet::testing::ScopedHostPaths host_dirs_{
      {"/var/lib/cni", "/var/lib/cni/results", "/var/lib/containers", "/var/lib/containers/cache",
       "/var/lib/containers/cache/blob-info-cache-v1.boltdb"}};
  ScopedBpffs fs_;
  TempDir tmp_;
  NodeTopology topo_;
  ChainSpec spec_;
  std::unique_ptr<Podman> podman_;  // Destroyed first: containers go before the namespaces.
};

TEST_F(PodmanChainTest, CninetBridgeHostLocalAndEbpf) {
  spec_.iface = "cninet-bridge";
  spec_.ipam = "cninet-host-local";
  spec_.version = "1.0.0";
  TwoContainersEndToEnd();
}

TEST_F(PodmanChainTest, ReferenceBridgeHostLocalThenCninetEbpf) {
  spec_.iface = "bridge";
  spec_.ipam = "host-local";
  spec_.version = "1.0.0";
  TwoContainersEndToEnd();
}

// Must-show 4 for podman: 0.4.0 and 1.0.0 results are accepted; podman 4.3's libcni (CNI 1.0)
// rejects 1.1.0 results, and cleans up after itself (DEL through the chain).
TEST_F(PodmanChainTest, ResultVersionsAcceptedByPodman) {
  spec_.iface = "cninet-ptp";
  for (const char* version : {"0.4.0", "1.0.0", "1.1.0"}) {
    SCOPED_TRACE(version);
    spec_.version = version;
    WriteConflist();
    const std::string name = "v" + std::string(version).substr(0, 1) +
                             std::string(version).substr(2, 1) + "-" + spec_.name;
    TcpServer outside(topo_.ext().path(), 9000, "EXT");
    CommandResult r =
        Pm({"run", "--rm", "--name", name, "--network", spec_.name, Podman::Image(), "sh", "-c",
            std::string("ip -4 -o addr show eth0; nc -w 3 ") + kExtIp + " 9000 </dev/null"});
    if (std::string(version) == "1.1.0") {
      EXPECT_FALSE(r.ok());
      EXPECT_THAT(r.err, HasSubstr("unsupported CNI result version \"1.1.0\""));
    } else {
      ASSERT_TRUE(r.ok()) << r.out << r.err;
      EXPECT_THAT(r.out, HasSubstr("inet 10.244.1."));
      EXPECT_THAT(r.out, HasSubstr(std::string("EXT ") + kNodeIp))
          << "egress went through the datapath (masquerade)";
    }
    Inventory inv = TakeInventory(topo_.node(), spec_, "/var/lib/cni");
    EXPECT_TRUE(inv.empty()) << inv.Describe();
  }
}

}  // namespace
}  // namespace cninet::chain_testing
