// cninet-ebpf executed like a runtime executes it: chained after cninet's and Debian's reference
// interface plugins, inside a "node" network namespace, with real pod namespaces, real traffic
// through the attached programs and the pinned maps inspected from the test.
#include "plugin.h"

#include <linux/if_link.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>
#include <thread>

#include "absl/strings/str_split.h"
#include "chain_testing.h"
#include "cninet/cni/cni.h"
#include "cninet/datapath/datapath.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::chain_testing {
namespace {

namespace cni = ::cninet::cni;
namespace dp = ::cninet::datapath;
using ::cninet::datapath::testing::RunInNetns;
using ::cninet::datapath::testing::ScopedBpffs;
using ::cninet::testing::CommandResult;
using ::cninet::testing::PluginCall;
using ::cninet::testing::ScopedNetns;
using ::cninet::testing::TempDir;
using ::cninet::testing::UniqueName;
using ::testing::HasSubstr;

std::string EbpfPlugin() { return std::string(CNINET_PLUGIN_DIR) + "/cninet-ebpf"; }

// The ifindex (in the node namespace) of the veth peer of `ifname` in `netns_path`: "eth0@if7".
int PeerIndex(const std::string& netns_path, const std::string& ifname = "eth0") {
  CommandResult r = cninet::testing::Run(
      {"nsenter", "--net=" + netns_path, "ip", "-o", "link", "show", "dev", ifname});
  size_t p = r.out.find("@if");
  return p == std::string::npos ? 0 : std::atoi(r.out.c_str() + p + 3);
}

// Name of the node-side interface with index `index`.
std::string NodeIfname(ScopedNetns& node, int index) {
  CommandResult r =
      node.Exec("ip -o link show | awk -F': ' '$1 == " + std::to_string(index) + " {print $2}'");
  std::string name = r.out.substr(0, r.out.find_first_of("@\n"));
  return name;
}

class ChainPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    ASSERT_TRUE(topo_.ok());
    spec_.name = UniqueName("chain");
    spec_.ipam_dir = tmp_.Sub("ipam");
    spec_.state_dir = tmp_.Sub("state");
    spec_.bpffs = fs_.path();
  }

  cni::Runtime MakeRuntime() const {
    cni::RuntimeOptions o;
    o.plugin_paths = {CNINET_PLUGIN_DIR, "/usr/lib/cni"};
    o.cache_dir = tmp_.Sub("cache");
    return cni::Runtime(o);
  }
  cni::NetConfList List(const ChainSpec& spec) const {
    auto l = cni::NetConfList::FromJson(spec.ToJson());
    EXPECT_TRUE(l.ok()) << l.status();
    return *l;
  }
  static cni::RuntimeConf Rt(const std::string& id, const std::string& netns,
                             nlohmann::json caps = nlohmann::json::object()) {
    cni::RuntimeConf rt;
    rt.container_id = id;
    rt.netns = netns;
    rt.capability_args = std::move(caps);
    return rt;
  }
  // Runtime calls execute in the node namespace (the plugins inherit it).
  absl::StatusOr<cni::Result> Add(const ChainSpec& spec, const cni::RuntimeConf& rt) {
    absl::StatusOr<cni::Result> out = absl::UnknownError("not run");
    absl::Status st = RunInNetns(topo_.node().path(), [&]() -> absl::Status {
      out = MakeRuntime().AddNetworkList(List(spec), rt);
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return out;
  }
  absl::Status InNode(const std::function<absl::Status(cni::Runtime&)>& fn) {
    return RunInNetns(topo_.node().path(), [&] {
      cni::Runtime r = MakeRuntime();
      return fn(r);
    });
  }
  absl::Status Del(const ChainSpec& spec, const cni::RuntimeConf& rt) {
    return InNode([&](cni::Runtime& r) { return r.DelNetworkList(List(spec), rt); });
  }
  absl::Status Check(const ChainSpec& spec, const cni::RuntimeConf& rt) {
    return InNode([&](cni::Runtime& r) { return r.CheckNetworkList(List(spec), rt); });
  }
  std::unique_ptr<dp::Datapath> Maps(const ChainSpec& spec) {
    auto d = dp::Datapath::OpenPinned(spec.PinDir());
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }
  static std::vector<dp::Endpoint> Endpoints(dp::Datapath& d) {
    auto eps = d.endpoints().List();
    EXPECT_TRUE(eps.ok()) << eps.status();
    return eps.ok() ? *eps : std::vector<dp::Endpoint>{};
  }
  static const dp::Endpoint* FindEndpoint(const std::vector<dp::Endpoint>& eps,
                                          const std::string& ip) {
    for (const auto& e : eps)
      if (e.address.ToString() == ip) return &e;
    return nullptr;
  }
  std::string TcFilters(const std::string& dev, const char* dir) {
    return topo_.node().Exec("tc filter show dev " + dev + " " + dir).out;
  }
  // Runs cninet-ebpf directly in the node namespace.
  CommandResult RunEbpf(const std::string& command, const std::string& id, const std::string& netns,
                        const nlohmann::json& conf) {
    PluginCall call;
    call.command = command;
    call.container_id = id;
    call.netns = netns;
    return cninet::testing::RunCniPlugin(EbpfPlugin(), call, conf.dump(), topo_.node().name());
  }
  // The cninet-ebpf entry of `spec` as a plugin configuration (cniVersion, name injected).
  static nlohmann::json EbpfConf(const ChainSpec& spec) {
    nlohmann::json c = spec.ToJson()["plugins"][1];
    c["cniVersion"] = spec.version;
    c["name"] = spec.name;
    c.erase("capabilities");
    return c;
  }

  // Declaration order matters: pods and the topology go before the bpffs and the temp dir.
  ScopedBpffs fs_;
  TempDir tmp_;
  NodeTopology topo_;
  ChainSpec spec_;
};

// ---------------------------------------------------------------------------------------------
// Lifecycle and traffic after every supported interface plugin (cninet's and Debian's).

struct IfaceCase {
  const char* iface;
  const char* ipam;
  const char* version;
};

// Readable test names in ctest's output.
void PrintTo(const IfaceCase& c, std::ostream* os) {
  *os << c.iface << "+" << c.ipam << " " << c.version;
}

class ChainLifecycleTest : public ChainPluginTest,
                           public ::testing::WithParamInterface<IfaceCase> {};

TEST_P(ChainLifecycleTest, AddAttachesRegistersServesTrafficAndDelLeavesNothing) {
  spec_.iface = GetParam().iface;
  spec_.ipam = GetParam().ipam;
  spec_.version = GetParam().version;
  ScopedNetns a("chpa"), b("chpb");
  const std::string id_a = "ctr-a-" + spec_.name, id_b = "ctr-b-" + spec_.name;
  auto ra = Add(spec_, Rt(id_a, a.path()));
  ASSERT_TRUE(ra.ok()) << ra.status();
  nlohmann::json caps = {
      {"portMappings", {{{"hostPort", 18080}, {"containerPort", 8080}, {"protocol", "tcp"}}}}};
  auto rb = Add(spec_, Rt(id_b, b.path(), caps));
  ASSERT_TRUE(rb.ok()) << rb.status();
  const std::string ip_a = Ipv4Of(a.path()), ip_b = Ipv4Of(b.path());
  ASSERT_FALSE(ip_a.empty());
  ASSERT_FALSE(ip_b.empty());
  EXPECT_EQ(ra->ips.at(0).address.address().ToString(), ip_a)
      << "the chain's result is the interface plugin's";

  // Endpoints point at the pods' host-side veths (found from the pod side, independently).
  const int veth_a = PeerIndex(a.path()), veth_b = PeerIndex(b.path());
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  auto eps = Endpoints(*maps);
  ASSERT_NE(FindEndpoint(eps, ip_a), nullptr);
  ASSERT_NE(FindEndpoint(eps, ip_b), nullptr);
  EXPECT_EQ(FindEndpoint(eps, ip_a)->ifindex, static_cast<uint32_t>(veth_a));
  EXPECT_EQ(FindEndpoint(eps, ip_b)->ifindex, static_cast<uint32_t>(veth_b));
  EXPECT_EQ(eps.size(), 2u);

  // Programs: from-pod on both veths (the same loaded program: the second ADD reused it),
  // from-world/to-world on the uplink.
  std::string fa = TcFilters(NodeIfname(topo_.node(), veth_a), "ingress");
  std::string fb = TcFilters(NodeIfname(topo_.node(), veth_b), "ingress");
  EXPECT_THAT(fa, HasSubstr("cn_from_pod"));
  EXPECT_THAT(fb, HasSubstr("cn_from_pod"));
  auto prog_id = [](const std::string& s) {
    return s.substr(s.find(" id ") + 4, s.find(" name") - s.find(" id ") - 4);
  };
  EXPECT_EQ(prog_id(fa), prog_id(fb));
  EXPECT_THAT(TcFilters("up0", "ingress"), HasSubstr("cn_from_world"));
  EXPECT_THAT(TcFilters("up0", "egress"), HasSubstr("cn_to_world"));

  // hostPort as a datapath service (no iptables rule anywhere in the node).
  auto services = maps->services().List();
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].frontends.at(0).kind, dp::FrontendKind::kNodePort);
  EXPECT_EQ(services[0].frontends.at(0).port, 18080);
  EXPECT_EQ(services[0].backends.at(0).ToString(), ip_b + ":8080");
  EXPECT_THAT(topo_.node().Exec("iptables-save 2>/dev/null; nft list ruleset 2>/dev/null").out,
              ::testing::Not(HasSubstr("18080")));

  if (spec_.version != std::string("0.3.1")) {
    absl::Status check = Check(spec_, Rt(id_b, b.path(), caps));
    EXPECT_TRUE(check.ok()) << check;
  }

  // Traffic: pod to pod, pod to a ClusterIP programmed by the test, pod to the outside
  // (masqueraded to the node address), outside to the hostPort (client address preserved).
  TcpServer server_b(b.path(), 8080, "B"), server_ext(topo_.ext().path(), 9000, "EXT");
  auto direct = TcpRequest(a.path(), ip_b, 8080);
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(*direct, "B " + ip_a + "\n");
  dp::Service vip;
  vip.id = 1;
  vip.frontends = {
      {*cni::IPAddress::Parse(kVip), 80, dp::Protocol::kTcp, dp::FrontendKind::kClusterIP}};
  vip.backends = {{*cni::IPAddress::Parse(ip_b), 8080}};
  vip.maglev_size = 251;
  ASSERT_TRUE(maps->services().Upsert(vip).ok());
  auto via_vip = TcpRequest(a.path(), kVip, 80);
  ASSERT_TRUE(via_vip.ok()) << via_vip.status();
  EXPECT_EQ(*via_vip, "B " + ip_a + "\n");
  auto out = TcpRequest(a.path(), kExtIp, 9000);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, std::string("EXT ") + kNodeIp + "\n");
  auto in = TcpRequest(topo_.ext().path(), kNodeIp, 18080);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(*in, std::string("B ") + kExtIp + "\n");
  ASSERT_TRUE(maps->services().Delete(1).ok());

  // DEL b: its endpoint, hostPort service and flows go; a is untouched.
  ASSERT_TRUE(Del(spec_, Rt(id_b, b.path(), caps)).ok());
  maps = Maps(spec_);  // A ServiceTable caches what it loaded: reopen to see the plugin's changes.
  ASSERT_NE(maps, nullptr);
  eps = Endpoints(*maps);
  EXPECT_EQ(FindEndpoint(eps, ip_b), nullptr);
  ASSERT_NE(FindEndpoint(eps, ip_a), nullptr);
  EXPECT_TRUE(maps->services().List().empty());
  auto ct = maps->conntrack().Dump();
  ASSERT_TRUE(ct.ok());
  for (const auto& e : *ct) {
    EXPECT_NE(e.tuple.src.ToString(), ip_b) << e.ToString();
    EXPECT_NE(e.tuple.dst.ToString(), ip_b) << e.ToString();
  }
  auto ra_again =
      Add(spec_, Rt("ctr-c-" + spec_.name, b.path()));  // The freed address can be reused.
  ASSERT_TRUE(ra_again.ok()) << ra_again.status();
  ASSERT_TRUE(Del(spec_, Rt("ctr-c-" + spec_.name, b.path())).ok());

  // DEL a, the last attachment: nothing is left (uplink detached, maps and program unpinned).
  ASSERT_TRUE(Del(spec_, Rt(id_a, a.path())).ok());
  Inventory inv = TakeInventory(topo_.node(), spec_, tmp_.Sub("cache"));
  EXPECT_TRUE(inv.empty()) << inv.Describe();
  // DEL is idempotent.
  EXPECT_TRUE(Del(spec_, Rt(id_a, a.path())).ok());
  EXPECT_TRUE(TakeInventory(topo_.node(), spec_, tmp_.Sub("cache")).empty());
}

INSTANTIATE_TEST_SUITE_P(Interfaces, ChainLifecycleTest,
                         ::testing::Values(IfaceCase{"cninet-bridge", "cninet-host-local", "1.1.0"},
                                           IfaceCase{"cninet-ptp", "cninet-host-local", "1.0.0"},
                                           IfaceCase{"bridge", "host-local", "1.0.0"},
                                           IfaceCase{"ptp", "host-local", "0.4.0"}),
                         [](const auto& p) {
                           std::string n = std::string(p.param.iface) + "_" + p.param.version;
                           std::replace_if(
                               n.begin(), n.end(), [](char c) { return !isalnum(c); }, '_');
                           return n;
                         });

// ---------------------------------------------------------------------------------------------

TEST_F(ChainPluginTest, DelWithTheNetnsGoneRemovesTheEndpointAndFlushesOnlyItsFlows) {
  ScopedNetns a("chpa"), b("chpb");
  const std::string id_a = "ctr-a-" + spec_.name, id_b = "ctr-b-" + spec_.name;
  ASSERT_TRUE(Add(spec_, Rt(id_a, a.path())).ok());
  ASSERT_TRUE(Add(spec_, Rt(id_b, b.path())).ok());
  const std::string ip_a = Ipv4Of(a.path()), ip_b = Ipv4Of(b.path()), netns_a = a.path();
  // UDP to the outside from both pods: conntrack entries and masquerade (NAT) mappings.
  ASSERT_TRUE(SendUdp(a.path(), kExtIp, 5353).ok());
  ASSERT_TRUE(SendUdp(b.path(), kExtIp, 5353).ok());
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  auto count = [&](const std::string& ip) {
    size_t n = 0;
    // Held in variables: a range-for over *Dump() would iterate a destroyed temporary.
    auto ct = maps->conntrack().Dump();
    auto nat = maps->nat().Dump();
    EXPECT_TRUE(ct.ok() && nat.ok());
    if (!ct.ok() || !nat.ok()) return n;
    for (const auto& e : *ct) n += e.tuple.src.ToString() == ip || e.tuple.dst.ToString() == ip;
    for (const auto& e : *nat) n += e.tuple.src.ToString() == ip || e.to_address.ToString() == ip;
    return n;
  };
  ASSERT_GE(count(ip_a), 2u) << "pod a's flow should be tracked and masqueraded";
  ASSERT_GE(count(ip_b), 2u);

  a.Remove();  // The pod's namespace (and with it the veth pair) is gone before DEL.
  ASSERT_TRUE(Del(spec_, Rt(id_a, netns_a)).ok());
  auto eps = Endpoints(*maps);
  EXPECT_EQ(FindEndpoint(eps, ip_a), nullptr);
  EXPECT_NE(FindEndpoint(eps, ip_b), nullptr);
  EXPECT_EQ(count(ip_a), 0u) << "stale conntrack/NAT entries of the deleted pod";
  EXPECT_GE(count(ip_b), 2u) << "other pods' flows must survive";
  // DEL with neither netns nor the cached result (no prevResult) is still fine.
  ASSERT_TRUE(Del(spec_, Rt(id_a, "")).ok());

  ASSERT_TRUE(Del(spec_, Rt(id_b, b.path())).ok());
  Inventory inv = TakeInventory(topo_.node(), spec_, tmp_.Sub("cache"));
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

TEST_F(ChainPluginTest, DelWithoutARecordFallsBackToPrevResult) {
  ScopedNetns a("chpa"), b("chpb");
  const std::string id_a = "ctr-a-" + spec_.name, id_b = "ctr-b-" + spec_.name;
  ASSERT_TRUE(Add(spec_, Rt(id_a, a.path())).ok());
  ASSERT_TRUE(Add(spec_, Rt(id_b, b.path())).ok());
  const std::string ip_a = Ipv4Of(a.path()), ip_b = Ipv4Of(b.path());
  // As if ADD had died after programming the maps but before writing its record.
  ASSERT_EQ(std::remove((spec_.InstanceStateDir() + "/" + id_a + ":eth0.json").c_str()), 0);
  ASSERT_TRUE(Del(spec_, Rt(id_a, a.path())).ok());  // The runtime passes the cached prevResult.
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  auto eps = Endpoints(*maps);
  EXPECT_EQ(FindEndpoint(eps, ip_a), nullptr) << "endpoint found through prevResult's host veth";
  EXPECT_NE(FindEndpoint(eps, ip_b), nullptr);
  ASSERT_TRUE(Del(spec_, Rt(id_b, b.path())).ok());
  Inventory inv = TakeInventory(topo_.node(), spec_, tmp_.Sub("cache"));
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

TEST_F(ChainPluginTest, FindsTheHostVethThroughTheContainerInterfacesPeer) {
  // prevResult from cninet-ptp, with the host interface removed: only the container side is left.
  ChainSpec ptp = spec_;
  ptp.iface = "cninet-ptp";
  ptp.ebpf_type = "";
  ScopedNetns pod("chpp");
  const std::string id = "ctr-p-" + spec_.name;
  auto r = Add(ptp, Rt(id, pod.path()));
  ASSERT_TRUE(r.ok()) << r.status();
  auto prev = r->ToJson("1.0.0");
  ASSERT_TRUE(prev.ok());
  nlohmann::json stripped = *prev;
  stripped["interfaces"] = nlohmann::json::array();
  for (const auto& i : (*prev)["interfaces"])
    if (i.contains("sandbox")) stripped["interfaces"].push_back(i);
  for (auto& ip : stripped["ips"]) ip["interface"] = 0;
  ASSERT_EQ(stripped["interfaces"].size(), 1u);

  nlohmann::json conf = EbpfConf(spec_);
  conf["prevResult"] = stripped;
  CommandResult add = RunEbpf("ADD", id, pod.path(), conf);
  ASSERT_TRUE(add.ok()) << add.out << add.err;
  EXPECT_EQ(nlohmann::json::parse(add.out), stripped) << "prevResult must be passed on unchanged";
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  auto eps = Endpoints(*maps);
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].ifindex, static_cast<uint32_t>(PeerIndex(pod.path())));
  EXPECT_THAT(TcFilters(NodeIfname(topo_.node(), PeerIndex(pod.path())), "ingress"),
              HasSubstr("cn_from_pod"));

  CommandResult del = RunEbpf("DEL", id, pod.path(), conf);
  ASSERT_TRUE(del.ok()) << del.out << del.err;
  ASSERT_TRUE(Del(ptp, Rt(id, pod.path())).ok());
  Inventory inv = TakeInventory(topo_.node(), spec_, tmp_.Sub("cache"));
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

class ResultVersionTest : public ChainPluginTest,
                          public ::testing::WithParamInterface<const char*> {};

TEST_P(ResultVersionTest, OutputIsThePrevResultInTheRequestsVersion) {
  ChainSpec ptp = spec_;
  ptp.iface = "cninet-ptp";
  ptp.ebpf_type = "";
  ptp.version = GetParam();
  ScopedNetns pod("chpv");
  const std::string id = "ctr-v-" + spec_.name;
  auto r = Add(ptp, Rt(id, pod.path()));
  ASSERT_TRUE(r.ok()) << r.status();
  auto prev = r->ToJson(GetParam());
  ASSERT_TRUE(prev.ok());
  (*prev)["cniVersion"] = GetParam();
  nlohmann::json conf = EbpfConf(spec_);
  conf["cniVersion"] = GetParam();
  conf["prevResult"] = *prev;
  CommandResult add = RunEbpf("ADD", id, pod.path(), conf);
  ASSERT_TRUE(add.ok()) << add.out << add.err;
  nlohmann::json out = nlohmann::json::parse(add.out);
  EXPECT_EQ(out, *prev);
  EXPECT_EQ(out["cniVersion"], GetParam());
  if (std::string(GetParam()) != "0.3.1") {
    CommandResult check = RunEbpf("CHECK", id, pod.path(), conf);
    EXPECT_TRUE(check.ok()) << check.out << check.err;
  }
  ASSERT_TRUE(RunEbpf("DEL", id, pod.path(), conf).ok());
  ASSERT_TRUE(Del(ptp, Rt(id, pod.path())).ok());
  EXPECT_TRUE(TakeInventory(topo_.node(), spec_, "").empty());
}

INSTANTIATE_TEST_SUITE_P(Versions, ResultVersionTest,
                         ::testing::Values("0.3.1", "0.4.0", "1.0.0", "1.1.0"), [](const auto& p) {
                           std::string n = p.param;
                           std::replace(n.begin(), n.end(), '.', '_');
                           return "v" + n;
                         });

TEST_F(ChainPluginTest, CheckFailsWhenTheFilterOrTheEndpointIsMissing) {
  ScopedNetns a("chpa"), b("chpb");
  const std::string id_a = "ctr-a-" + spec_.name, id_b = "ctr-b-" + spec_.name;
  ASSERT_TRUE(Add(spec_, Rt(id_a, a.path())).ok());
  ASSERT_TRUE(Add(spec_, Rt(id_b, b.path())).ok());
  ASSERT_TRUE(Check(spec_, Rt(id_a, a.path())).ok());
  ASSERT_TRUE(Check(spec_, Rt(id_b, b.path())).ok());

  // a: the from-pod filter is removed behind the plugin's back.
  ASSERT_TRUE(
      topo_.node()
          .Exec("tc filter del dev " + NodeIfname(topo_.node(), PeerIndex(a.path())) + " ingress")
          .ok());
  absl::Status ca = Check(spec_, Rt(id_a, a.path()));
  EXPECT_EQ(cni::GetErrorCode(ca), static_cast<uint32_t>(cni::ErrorCode::kCheckMismatch)) << ca;
  EXPECT_THAT(std::string(ca.message()), HasSubstr("from-pod is not attached"));
  // b: its endpoint is removed from the map.
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  ASSERT_TRUE(maps->endpoints().Delete(*cni::IPAddress::Parse(Ipv4Of(b.path()))).ok());
  absl::Status cb = Check(spec_, Rt(id_b, b.path()));
  EXPECT_EQ(cni::GetErrorCode(cb), static_cast<uint32_t>(cni::ErrorCode::kCheckMismatch)) << cb;
  EXPECT_THAT(std::string(cb.message()), HasSubstr("is missing"));
  // An attachment that was never added.
  ScopedNetns c("chpc");
  nlohmann::json conf = EbpfConf(spec_);
  conf["prevResult"] = {{"cniVersion", spec_.version}, {"ips", {{{"address", "10.244.1.99/24"}}}}};
  CommandResult cc = RunEbpf("CHECK", "never-added", c.path(), conf);
  EXPECT_FALSE(cc.ok());
  EXPECT_EQ(nlohmann::json::parse(cc.out, nullptr, false).value("code", 0),
            static_cast<int>(cni::ErrorCode::kCheckMismatch))
      << cc.out;

  ASSERT_TRUE(Del(spec_, Rt(id_a, a.path())).ok());
  ASSERT_TRUE(Del(spec_, Rt(id_b, b.path())).ok());
  Inventory inv = TakeInventory(topo_.node(), spec_, tmp_.Sub("cache"));
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

TEST_F(ChainPluginTest, GcRemovesAttachmentsMissingFromValidAttachments) {
  spec_.version = "1.1.0";  // GC is a 1.1.0 verb.
  ScopedNetns a("chpa"), b("chpb");
  const std::string id_a = "ctr-a-" + spec_.name, id_b = "ctr-b-" + spec_.name;
  ASSERT_TRUE(Add(spec_, Rt(id_a, a.path())).ok());
  nlohmann::json caps = {
      {"portMappings", {{{"hostPort", 18081}, {"containerPort", 80}, {"protocol", "udp"}}}}};
  ASSERT_TRUE(Add(spec_, Rt(id_b, b.path(), caps)).ok());
  const std::string ip_a = Ipv4Of(a.path()), ip_b = Ipv4Of(b.path());
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  ASSERT_EQ(maps->services().List().size(), 1u);

  absl::Status gc = InNode([&](cni::Runtime& r) {
    return r.GcNetworkList(List(spec_), {{id_a, "eth0"}});
  });
  ASSERT_TRUE(gc.ok()) << gc;
  maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  auto eps = Endpoints(*maps);
  EXPECT_NE(FindEndpoint(eps, ip_a), nullptr);
  EXPECT_EQ(FindEndpoint(eps, ip_b), nullptr);
  EXPECT_TRUE(maps->services().List().empty()) << "b's hostPort service must go with it";
  Inventory inv = TakeInventory(topo_.node(), spec_, "");
  EXPECT_THAT(inv.records, ::testing::ElementsAre(id_a + ":eth0.json"));
  EXPECT_THAT(inv.leases, ::testing::ElementsAre(ip_a)) << "host-local's GC released b's address";
  EXPECT_TRUE(Check(spec_, Rt(id_a, a.path())).ok());

  ASSERT_TRUE(Del(spec_, Rt(id_b, b.path(), caps))
                  .ok());  // Removes b's veth; the plugin has nothing left for b.
  ASSERT_TRUE(Del(spec_, Rt(id_a, a.path())).ok());
  inv = TakeInventory(topo_.node(), spec_, tmp_.Sub("cache"));
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

TEST_F(ChainPluginTest, StatusIsUnavailableWhenTheDatapathCannotBeLoaded) {
  nlohmann::json conf = EbpfConf(spec_);
  conf["cniVersion"] = "1.1.0";
  CommandResult ok = RunEbpf("STATUS", "", "", conf);
  EXPECT_TRUE(ok.ok()) << ok.out << ok.err;

  // Not a bpf filesystem: the maps cannot be pinned.
  nlohmann::json no_bpffs = conf;
  no_bpffs["bpffsRoot"] = tmp_.path();
  CommandResult down = RunEbpf("STATUS", "", "", no_bpffs);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(nlohmann::json::parse(down.out)["code"], 50) << down.out;

  // Maps pinned by a datapath of another size cannot be reused.
  ScopedNetns a("chpa");
  const std::string id = "ctr-a-" + spec_.name;
  ASSERT_TRUE(Add(spec_, Rt(id, a.path())).ok());
  nlohmann::json other = conf;
  other["mapSizes"]["conntrack"] = 8192;
  CommandResult mismatch = RunEbpf("STATUS", "", "", other);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(nlohmann::json::parse(mismatch.out)["code"], 50) << mismatch.out;
  EXPECT_THAT(mismatch.out, HasSubstr("other sizes"));
  EXPECT_TRUE(RunEbpf("STATUS", "", "", conf).ok());
  ASSERT_TRUE(Del(spec_, Rt(id, a.path())).ok());
  EXPECT_TRUE(TakeInventory(topo_.node(), spec_, tmp_.Sub("cache")).empty());
}

TEST_F(ChainPluginTest, BadInputIsRejectedWithTheRightCodeAndChangesNothing) {
  ScopedNetns pod("chpx");
  nlohmann::json prev = {{"cniVersion", "1.0.0"},
                         {"interfaces", {{{"name", "eth0"}, {"sandbox", pod.path()}}}},
                         {"ips", {{{"address", "10.244.1.50/24"}, {"interface", 0}}}}};
  struct Case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    int code;
  };
  std::vector<Case> cases = {
      {"no prevResult", [](nlohmann::json& c) { c.erase("prevResult"); }, 7},
      {"no clusterCIDR", [](nlohmann::json& c) { c.erase("clusterCIDR"); }, 7},
      {"clusterCIDR not a prefix", [](nlohmann::json& c) { c["clusterCIDR"] = "banana"; }, 7},
      {"two IPv4 clusterCIDRs", [](nlohmann::json& c) { c["clusterCIDRs"] = {"10.99.0.0/16"}; }, 7},
      {"masquerade not a bool", [](nlohmann::json& c) { c["masquerade"] = "yes"; }, 7},
      {"relative stateDir", [](nlohmann::json& c) { c["stateDir"] = "state"; }, 7},
      {"instance with a dot", [](nlohmann::json& c) { c["instance"] = "a.b"; }, 7},
      {"nodeAddresses unspecified", [](nlohmann::json& c) { c["nodeAddresses"] = {"::"}; }, 7},
      {"mapSizes too small", [](nlohmann::json& c) { c["mapSizes"]["conntrack"] = 2; }, 7},
      {"uplink missing", [](nlohmann::json& c) { c["uplink"] = "nosuchdev0"; }, 7},
      {"sctp hostPort",
       [](nlohmann::json& c) {
         c["runtimeConfig"] = {
             {"portMappings", {{{"hostPort", 1}, {"containerPort", 1}, {"protocol", "sctp"}}}}};
       },
       2},
      {"pod without addresses",
       [](nlohmann::json& c) { c["prevResult"]["ips"] = nlohmann::json::array(); }, 7},
      {"no host side", [](nlohmann::json& c) { c["prevResult"]["interfaces"][0]["name"] = "eth9"; },
       static_cast<int>(cni::ErrorCode::kNoHostInterface)},
  };
  for (const auto& c : cases) {
    nlohmann::json conf = EbpfConf(spec_);
    conf["prevResult"] = prev;
    c.edit(conf);
    CommandResult r = RunEbpf("ADD", "bad-input", pod.path(), conf);
    EXPECT_EQ(r.exit_code, 1) << c.what;
    auto err = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_EQ(err.value("code", -1), c.code) << c.what << ": " << r.out;
    Inventory inv = TakeInventory(topo_.node(), spec_, "");
    EXPECT_TRUE(inv.empty()) << c.what << " left: " << inv.Describe();
  }
}

TEST_F(ChainPluginTest, HostPortConflictFailsTheSecondAddAndRollsItBack) {
  ScopedNetns a("chpa"), b("chpb");
  const std::string id_a = "ctr-a-" + spec_.name, id_b = "ctr-b-" + spec_.name;
  nlohmann::json caps = {
      {"portMappings", {{{"hostPort", 18080}, {"containerPort", 80}, {"protocol", "tcp"}}}}};
  ASSERT_TRUE(Add(spec_, Rt(id_a, a.path(), caps)).ok());
  auto second = Add(spec_, Rt(id_b, b.path(), caps));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(cni::GetErrorCode(second.status()),
            static_cast<uint32_t>(cni::ErrorCode::kHostPortConflict))
      << second.status();
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  auto eps = Endpoints(*maps);
  EXPECT_EQ(eps.size(), 1u) << "the failed ADD's endpoint must be rolled back";
  EXPECT_EQ(maps->services().List().size(), 1u);
  EXPECT_EQ(maps->services().List()[0].backends.at(0).address.ToString(), Ipv4Of(a.path()));
  EXPECT_THAT(TakeInventory(topo_.node(), spec_, "").records,
              ::testing::ElementsAre(id_a + ":eth0.json"));
  EXPECT_THAT(TcFilters(NodeIfname(topo_.node(), PeerIndex(b.path())), "ingress"),
              ::testing::Not(HasSubstr("cn_from_pod")));

  ASSERT_TRUE(
      Del(spec_, Rt(id_b, b.path(), caps)).ok());  // What the runtime does after a failed ADD.
  ASSERT_TRUE(Del(spec_, Rt(id_a, a.path(), caps)).ok());
  Inventory inv = TakeInventory(topo_.node(), spec_, tmp_.Sub("cache"));
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

TEST_F(ChainPluginTest, ConcurrentAddsAndDelsShareOneInstance) {
  constexpr int kPods = 4;
  std::vector<std::unique_ptr<ScopedNetns>> pods;
  for (int i = 0; i < kPods; ++i) pods.push_back(std::make_unique<ScopedNetns>("chpn"));
  auto id = [&](int i) { return "ctr-" + std::to_string(i) + "-" + spec_.name; };
  std::vector<absl::Status> results(kPods);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPods; ++i)
      threads.emplace_back(
          [&, i] { results[i] = Add(spec_, Rt(id(i), pods[i]->path())).status(); });
    for (auto& t : threads) t.join();
  }
  for (const auto& s : results) ASSERT_TRUE(s.ok()) << s;
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  auto eps = Endpoints(*maps);
  EXPECT_EQ(eps.size(), static_cast<size_t>(kPods));
  std::set<std::string> prog_ids;
  for (const auto& p : pods) {
    std::string f = TcFilters(NodeIfname(topo_.node(), PeerIndex(p->path())), "ingress");
    ASSERT_THAT(f, HasSubstr("cn_from_pod"));
    prog_ids.insert(f.substr(f.find(" id ") + 4, f.find(" name") - f.find(" id ") - 4));
  }
  EXPECT_EQ(prog_ids.size(), 1u) << "one loaded program serves every pod";
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPods; ++i)
      threads.emplace_back([&, i] { results[i] = Del(spec_, Rt(id(i), pods[i]->path())); });
    for (auto& t : threads) t.join();
  }
  for (const auto& s : results) ASSERT_TRUE(s.ok()) << s;
  Inventory inv = TakeInventory(topo_.node(), spec_, tmp_.Sub("cache"));
  EXPECT_TRUE(inv.empty()) << inv.Describe();
}

TEST_F(ChainPluginTest, TheGuidesExamplePluginPutsAPodOnTheDatapath) {
  spec_.iface = "cninet-ptp";
  spec_.ebpf_type = "cninet-chain-example";
  spec_.ebpf_extra = {{"nodeAddress", kNodeIp}};
  ScopedNetns pod("chpg");
  const std::string id = "ctr-g-" + spec_.name;
  ASSERT_TRUE(Add(spec_, Rt(id, pod.path())).ok());
  auto maps = Maps(spec_);
  ASSERT_NE(maps, nullptr);
  auto eps = Endpoints(*maps);
  ASSERT_NE(FindEndpoint(eps, Ipv4Of(pod.path())), nullptr);
  EXPECT_EQ(FindEndpoint(eps, Ipv4Of(pod.path()))->ifindex,
            static_cast<uint32_t>(PeerIndex(pod.path())));
  const std::string veth = NodeIfname(topo_.node(), PeerIndex(pod.path()));
  EXPECT_THAT(TcFilters(veth, "ingress"), HasSubstr("cn_from_pod"));
  ASSERT_TRUE(Del(spec_, Rt(id, pod.path())).ok());
  EXPECT_TRUE(Endpoints(*maps).empty());
  // The example leaves its (empty) maps pinned by design; the private bpffs goes with the test.
}

}  // namespace
}  // namespace cninet::chain_testing
