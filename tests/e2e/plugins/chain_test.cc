// Chains with real reference peers, executed by cninet's Runtime (libcni's role) inside a "node"
// namespace: [cninet-ptp, tuning], [cninet-bridge, portmap], [cninet-bridge, bandwidth]. Each
// chain must ADD, CHECK and DEL, and the peers' effects must be real (sysctl and MAC set,
// port mapping carrying TCP, traffic shaping installed) and gone after DEL.
#include <sys/socket.h>

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin_env.h"

namespace cninet::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    pod_ = node_.NewPod();
    ASSERT_TRUE(pod_.h);
    cni::RuntimeOptions o;
    o.plugin_paths = {CNINET_PLUGIN_DIR, "/usr/lib/cni"};
    o.cache_dir = node_.dir().Sub("cache");
    runtime_ = std::make_unique<cni::Runtime>(o);
    rt_.container_id = "chain-ctr";
    rt_.netns = pod_.path();
    rt_.ifname = "eth0";
  }

  // The runtime runs where a runtime runs: in the node namespace (plugins inherit it).
  absl::StatusOr<cni::Result> Add(const cni::NetConfList& list) {
    absl::StatusOr<cni::Result> r = absl::UnknownError("not run");
    absl::Status st = node_.ns().ns().Run([&] {
      r = runtime_->AddNetworkList(list, rt_);
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return r;
  }
  absl::Status Check(const cni::NetConfList& list) {
    absl::Status r;
    absl::Status st = node_.ns().ns().Run([&] {
      r = runtime_->CheckNetworkList(list, rt_);
      return absl::OkStatus();
    });
    return st.ok() ? r : st;
  }
  absl::Status Del(const cni::NetConfList& list) {
    absl::Status r;
    absl::Status st = node_.ns().ns().Run([&] {
      r = runtime_->DelNetworkList(list, rt_);
      return absl::OkStatus();
    });
    return st.ok() ? r : st;
  }

  cni::NetConfList List(const std::string& name, nlohmann::json plugins) {
    nlohmann::json j = {{"cniVersion", "1.0.0"}, {"name", name}, {"plugins", plugins}};
    auto l = cni::NetConfList::FromJson(j);
    EXPECT_TRUE(l.ok()) << l.status();
    return *l;
  }

  // The reference tuning plugin keeps its backups in /run/cni/tuning (a fixed path). Declared
  // first, so removed last.
  cninet::testing::ScopedHostPaths host_dirs_{{"/run/cni", "/run/cni/tuning"}};
  Node node_;
  Pod pod_;
  std::unique_ptr<cni::Runtime> runtime_;
  cni::RuntimeConf rt_;
};

TEST_F(ChainTest, PtpThenTuning) {
  auto list = List("chain-tuning",
                   {{{"type", "cninet-ptp"},
                     {"mtu", 1400},
                     {"ipam", HostLocalIpam(node_.data_dir(), R"([[{"subnet":"10.21.0.0/24"}]])",
                                            R"([{"dst":"0.0.0.0/0"}])")}},
                    {{"type", "tuning"},
                     {"mac", "02:aa:bb:cc:dd:ee"},
                     {"sysctl", {{"net.ipv4.conf.eth0.proxy_arp", "1"}}}}});
  auto result = Add(list);
  ASSERT_TRUE(result.ok()) << result.status();
  auto eth0 = pod_.h->GetLink("eth0");
  ASSERT_TRUE(eth0.ok());
  EXPECT_EQ(eth0->mac.ToString(), "02:aa:bb:cc:dd:ee");  // tuning ran after us...
  auto proxy = netlink::GetSysctl(pod_.ns->ns(), "net/ipv4/conf/eth0/proxy_arp");
  ASSERT_TRUE(proxy.ok());
  EXPECT_EQ(*proxy, "1");
  // ...and reported the new MAC in the result, which our CHECK then verifies.
  bool found = false;
  for (const auto& itf : result->interfaces)
    found |= itf.name == "eth0" && itf.mac == "02:aa:bb:cc:dd:ee";
  EXPECT_TRUE(found);
  ASSERT_TRUE(Check(list).ok()) << Check(list);
  // Still routed after the MAC change: the host resolves the pod by ARP, not a pinned entry.
  auto ex = TcpExchange(pod_.ns->ns(), *cni::IPAddress::Parse("10.21.0.2"), 9000, node_.ns().ns(),
                        "after tuning");
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_EQ(ex->reply, "echo:after tuning");

  ASSERT_TRUE(Del(list).ok());
  EXPECT_FALSE(pod_.h->GetLink("eth0").ok());
  EXPECT_TRUE(Leases(node_.data_dir(), "chain-tuning").empty());
  ASSERT_TRUE(Del(list).ok()) << "DEL twice";
}

// Debian's portmap (v1.1.1) CHECK also checks its IPv4 rules in the ip6tables table whenever
// ip6tables is usable, so its CHECK fails whatever the main plugin is (upstream issue
// containernetworking/plugins#819; the reference bridge fails identically). The chain therefore
// runs with a PATH offering iptables but not ip6tables, which makes portmap skip IPv6.
class ScopedPath {
 public:
  explicit ScopedPath(const std::string& path) : old_(getenv("PATH") ? getenv("PATH") : "") {
    setenv("PATH", path.c_str(), 1);
  }
  ~ScopedPath() { setenv("PATH", old_.c_str(), 1); }

 private:
  std::string old_;
};

TEST_F(ChainTest, BridgeThenPortmap) {
  std::string bin = node_.dir().Sub("bin");
  ASSERT_TRUE(Sh("mkdir -p " + bin +
                 " && for t in iptables iptables-save iptables-restore; do ln -s "
                 "$(command -v $t) " +
                 bin + "/$t; done")
                  .ok());
  ScopedPath path(bin);
  auto list = List("chain-portmap",
                   {{{"type", "cninet-bridge"},
                     {"bridge", "cnpm0"},
                     {"isGateway", true},
                     {"ipam", HostLocalIpam(node_.data_dir(), R"([[{"subnet":"10.22.0.0/24"}]])")}},
                    {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}}});
  rt_.capability_args = {
      {"portMappings", {{{"hostPort", 18080}, {"containerPort", 80}, {"protocol", "tcp"}}}}};
  auto result = Add(list);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(Check(list).ok()) << Check(list);
  auto nat = node_.ns().ns().Call<std::string>([]() -> absl::StatusOr<std::string> {
    CommandResult r = ::cninet::testing::Run({"/usr/sbin/iptables-save", "-t", "nat"});
    if (!r.ok()) return absl::InternalError(r.err);
    return r.out;
  });
  ASSERT_TRUE(nat.ok()) << nat.status();
  EXPECT_THAT(*nat, HasSubstr("--dport 18080"));

  // node -> gateway:18080 is DNATed by portmap to pod:80.
  auto ex = TcpExchangeVia(pod_.ns->ns(), *cni::IPAddress::Parse("10.22.0.2"), 80, node_.ns().ns(),
                           *cni::IPAddress::Parse("10.22.0.1"), 18080, "mapped");
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_EQ(ex->reply, "echo:mapped");

  ASSERT_TRUE(Del(list).ok());
  nat = node_.ns().ns().Call<std::string>([]() -> absl::StatusOr<std::string> {
    return ::cninet::testing::Run({"/usr/sbin/iptables-save", "-t", "nat"}).out;
  });
  ASSERT_TRUE(nat.ok());
  EXPECT_THAT(*nat, Not(HasSubstr("--dport 18080")));
  EXPECT_TRUE(Leases(node_.data_dir(), "chain-portmap").empty());
}

TEST_F(ChainTest, BridgeThenBandwidth) {
  auto list = List("chain-bw",
                   {{{"type", "cninet-bridge"},
                     {"bridge", "cnbw0"},
                     {"isGateway", true},
                     {"ipam", HostLocalIpam(node_.data_dir(), R"([[{"subnet":"10.23.0.0/24"}]])")}},
                    {{"type", "bandwidth"},
                     {"ingressRate", 8000000},
                     {"ingressBurst", 800000},
                     {"egressRate", 8000000},
                     {"egressBurst", 800000}}});
  auto result = Add(list);
  ASSERT_TRUE(result.ok()) << result.status();
  std::string host_veth;
  for (const auto& itf : result->interfaces) {
    if (itf.sandbox.empty() && itf.name != "cnbw0") host_veth = itf.name;
  }
  ASSERT_FALSE(host_veth.empty());
  CommandResult tc = ::cninet::testing::Run(
      {"ip", "netns", "exec", node_.ns().name(), "tc", "qdisc", "show", "dev", host_veth});
  ASSERT_TRUE(tc.ok()) << tc.err;
  EXPECT_THAT(tc.out, HasSubstr("tbf"));
  auto links = node_.h().ListLinks();
  ASSERT_TRUE(links.ok());
  int ifbs = 0;
  for (const auto& l : *links) ifbs += l.kind == "ifb";
  EXPECT_EQ(ifbs, 1) << "bandwidth's egress ifb device";
  ASSERT_TRUE(Check(list).ok()) << Check(list);
  auto ex = TcpExchange(pod_.ns->ns(), *cni::IPAddress::Parse("10.23.0.2"), 9001, node_.ns().ns(),
                        "shaped");
  ASSERT_TRUE(ex.ok()) << ex.status();

  ASSERT_TRUE(Del(list).ok());
  links = node_.h().ListLinks();
  ASSERT_TRUE(links.ok());
  for (const auto& l : *links) {
    EXPECT_NE(l.kind, "ifb") << l.name;
    EXPECT_NE(l.kind, "veth") << l.name;
  }
  EXPECT_TRUE(Leases(node_.data_dir(), "chain-bw").empty());
}

}  // namespace
}  // namespace cninet::testing
