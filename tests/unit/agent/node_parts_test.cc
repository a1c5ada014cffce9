// The node agent's smaller parts: PlanEndpoints, the conflist, the podCIDR store over a real
// embedded store (first writer wins across concurrent allocators), and the local API over a real
// Unix socket with a fake handler.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "cninet/agent/cni_config.h"
#include "cninet/agent/embedded_store.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/pod_cidr_store.h"
#include "cninet/agent/pods.h"
#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "cninet/cni/conf.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_util.h"

namespace cninet::agent {
namespace {

using ::cninet::testing::ReadFile;
using ::cninet::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

cni::IPAddress Ip(const char* s) { return *cni::IPAddress::Parse(s); }
cni::IPPrefix Net(const char* s) { return *cni::IPPrefix::Parse(s); }

v1::Pod MakePod(const std::string& name, const std::string& node, const std::string& ip,
                const std::string& iface, const std::string& mac = "0a:58:0a:f4:00:05") {
  v1::Pod p;
  p.set_namespace_("default");
  p.set_name(name);
  p.set_node(node);
  p.add_ips(ip);
  p.set_interface(iface);
  p.set_mac(mac);
  return p;
}

// ---- PlanEndpoints ----

TEST(PlanEndpointsTest, LocalPodsWithExistingInterfacesBecomeEndpoints) {
  std::vector<v1::Pod> pods = {MakePod("b", "n1", "10.244.0.6", "vethb"),
                               MakePod("a", "n1", "10.244.0.5", "vetha"),
                               MakePod("remote", "n2", "10.244.1.5", "vethr"),
                               MakePod("gone", "n1", "10.244.0.7", "vethx"),
                               MakePod("outside", "n1", "10.9.0.1", "vetha"),
                               MakePod("dup", "n1", "10.244.0.5", "vethb"),
                               MakePod("badmac", "n1", "10.244.0.8", "vetha", "zz")};
  pods[0].add_ips("fd00::6");  // IPv6: not a datapath endpoint
  std::vector<PlanWarning> w;
  auto eps = PlanEndpoints(
      pods, "n1", Net("10.244.0.0/24"),
      [](std::string_view ifname) { return ifname == "vetha"   ? 11
                                           : ifname == "vethb" ? 12
                                                               : 0; },
      &w);
  ASSERT_THAT(eps, SizeIs(2));
  EXPECT_EQ(eps[0].pod, "default/a");
  EXPECT_EQ(eps[0].endpoint.address, Ip("10.244.0.5"));
  EXPECT_EQ(eps[0].endpoint.ifindex, 11u);
  EXPECT_EQ(eps[0].endpoint.mac[5], 0x05);
  EXPECT_EQ(eps[1].pod, "default/b");
  EXPECT_EQ(eps[1].endpoint.ifindex, 12u);
  std::string all;
  for (const auto& x : w) all += x.object + ": " + x.message + "\n";
  EXPECT_THAT(all, HasSubstr("default/gone: host-side interface vethx does not exist"));
  EXPECT_THAT(all, HasSubstr("default/outside: 10.9.0.1 is outside"));
  EXPECT_THAT(all, HasSubstr("default/dup: 10.244.0.5 is already the address of default/a"));
  EXPECT_THAT(all, HasSubstr("default/badmac: MAC zz does not parse"));
  EXPECT_THAT(all, ::testing::Not(HasSubstr("remote")));
}

TEST(PlanEndpointsTest, DualStackNodesPlanBothAddressesEachInsideItsFamilysPodCIDR) {
  std::vector<v1::Pod> pods = {MakePod("a", "n1", "10.244.0.5", "vetha"),
                               MakePod("b", "n1", "10.244.0.6", "vethb")};
  pods[0].add_ips("fd00:10:244::5");
  pods[1].add_ips("fd00:99::6");  // outside the IPv6 podCIDR
  std::vector<const v1::Pod*> ptrs = {&pods[0], &pods[1]};
  std::vector<cni::IPPrefix> cidrs = {Net("10.244.0.0/24"), Net("fd00:10:244::/64")};
  std::vector<PlanWarning> w;
  auto eps = PlanEndpoints(
      std::span<const v1::Pod* const>(ptrs), "n1", std::span<const cni::IPPrefix>(cidrs),
      [](std::string_view ifname) { return ifname == "vetha" ? 11 : 12; }, &w);
  ASSERT_THAT(eps, SizeIs(3));
  EXPECT_EQ(eps[0].endpoint.address, Ip("10.244.0.5"));
  EXPECT_EQ(eps[1].endpoint.address, Ip("fd00:10:244::5"));
  EXPECT_EQ(eps[1].endpoint.ifindex, 11u);
  EXPECT_EQ(eps[2].endpoint.address, Ip("10.244.0.6"));
  ASSERT_THAT(w, SizeIs(1));
  EXPECT_THAT(w[0].message, HasSubstr("fd00:99::6 is outside this node's podCIDR"));
}

// ---- Conflist ----

TEST(ConflistTest, DualStackGivesTheEbpfPluginBothClusterCIDRs) {
  ConflistParams p;
  p.pod_cidr = Net("10.244.3.0/24");
  p.pod_cidr_v6 = Net("fd00:10:244:3::/64");
  p.cluster_cidr = Net("10.244.0.0/16");
  p.cluster_cidr_v6 = Net("fd00:10:244::/56");
  p.node_addresses = {Ip("192.168.1.11"), Ip("fd00:50::11")};
  absl::StatusOr<cni::NetConfList> list = cni::NetConfList::Parse(BuildConflist(p));
  ASSERT_TRUE(list.ok()) << list.status();
  const auto& ebpf = list->plugins[1];
  EXPECT_FALSE(ebpf.contains("clusterCIDR"));
  ASSERT_EQ(ebpf["clusterCIDRs"].size(), 2u);
  EXPECT_EQ(ebpf["clusterCIDRs"][0], "10.244.0.0/16");
  EXPECT_EQ(ebpf["clusterCIDRs"][1], "fd00:10:244::/56");
  EXPECT_EQ(ebpf["nodeAddresses"][1], "fd00:50::11");
}

TEST(ConflistTest, ChainsBridgeEbpfAndTheAgentReporterWithTheAgentsSettings) {
  ConflistParams p;
  p.pod_cidr = Net("10.244.3.0/24");
  p.cluster_cidr = Net("10.244.0.0/16");
  p.mtu = 1450;
  p.ipam_data_dir = "/var/lib/cninet/agent/ipam";
  p.uplink = "eth0";
  p.node_addresses = {Ip("192.168.1.11")};
  p.bpffs_root = "/sys/fs/bpf";
  p.instance = "node-1";
  p.ebpf_state_dir = "/var/lib/cninet/agent/ebpf";
  p.map_sizes.conntrack = 4096;
  p.agent_socket = "/run/cninet/agent.sock";
  std::string text = BuildConflist(p);
  absl::StatusOr<cni::NetConfList> list = cni::NetConfList::Parse(text);
  ASSERT_TRUE(list.ok()) << list.status() << "\n" << text;
  EXPECT_EQ(list->name, "cninet");
  ASSERT_THAT(list->plugins, SizeIs(3));
  EXPECT_EQ(list->plugins[0]["type"], "cninet-bridge");
  EXPECT_EQ(list->plugins[1]["type"], "cninet-ebpf");
  EXPECT_EQ(list->plugins[2]["type"], "cninet-agent-cni");
  const auto& bridge = list->plugins[0];
  EXPECT_EQ(bridge["mtu"], 1450);
  EXPECT_EQ(bridge["isDefaultGateway"], true);
  EXPECT_EQ(bridge["ipam"]["type"], "cninet-host-local");
  EXPECT_EQ(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
  const auto& ebpf = list->plugins[1];
  EXPECT_EQ(ebpf["clusterCIDR"], "10.244.0.0/16");
  EXPECT_EQ(ebpf["instance"], "node-1");
  EXPECT_EQ(ebpf["nodeAddresses"][0], "192.168.1.11");
  EXPECT_EQ(ebpf["teardownWhenIdle"], false);
  EXPECT_EQ(ebpf["mapSizes"]["conntrack"], 4096);
  EXPECT_EQ(list->plugins[2]["socket"], "/run/cninet/agent.sock");
  // Without a socket the reporter is not chained.
  p.agent_socket.clear();
  EXPECT_THAT(cni::NetConfList::Parse(BuildConflist(p))->plugins, SizeIs(2));
}

// ---- podCIDR store ----

class PodCidrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmbeddedStoreOptions o;
    o.dir = dir_.Sub("store");
    o.sync = false;
    auto s = OpenEmbeddedStore(o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    cluster_.set_cluster_cidr("10.244.0.0/22");
    ApplyDefaults(&cluster_);  // /24 per node: 4 subnets
  }
  TempDir dir_;
  std::unique_ptr<Store> store_;
  v1::ClusterConfig cluster_;
};

TEST_F(PodCidrTest, NodesGetTheLowestFreeSubnetAndKeepIt) {
  auto a = AllocatePodCIDR(*store_, cluster_, "node-a", std::nullopt);
  auto b = AllocatePodCIDR(*store_, cluster_, "node-b", std::nullopt);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(*a, Net("10.244.0.0/24"));
  EXPECT_EQ(*b, Net("10.244.1.0/24"));
  EXPECT_EQ(*AllocatePodCIDR(*store_, cluster_, "node-a", std::nullopt), *a);
  // Stored as PodCIDRAllocation objects an operator can read.
  auto obj = GetObject<v1::PodCIDRAllocation>(*store_, keys::PodCIDR("10.244.1.0/24"));
  ASSERT_TRUE(obj.ok()) << obj.status();
  EXPECT_EQ(obj->value.node(), "node-b");
  // A recorded podCIDR is claimed; one owned by another node is not.
  EXPECT_EQ(*AllocatePodCIDR(*store_, cluster_, "node-c", Net("10.244.3.0/24")),
            Net("10.244.3.0/24"));
  EXPECT_EQ(*AllocatePodCIDR(*store_, cluster_, "node-d", Net("10.244.0.0/24")),
            Net("10.244.2.0/24"));
  auto e = AllocatePodCIDR(*store_, cluster_, "node-e", std::nullopt);
  EXPECT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("no free /24"));
}

TEST_F(PodCidrTest, AMalformedAllocationStillOccupiesItsSubnet) {
  ASSERT_TRUE(store_->Put(keys::PodCIDR("10.244.0.0/24"), "{garbage").ok());
  auto a = AllocatePodCIDR(*store_, cluster_, "node-a", std::nullopt);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, Net("10.244.1.0/24"));
}

TEST_F(PodCidrTest, ConcurrentAllocatorsNeverShareASubnet) {
  // Four "agents" with their own store handles on the same directory, all at once.
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < 4; ++i) {
    EmbeddedStoreOptions o;
    o.dir = dir_.Sub("store");
    o.sync = false;
    auto s = OpenEmbeddedStore(o);
    ASSERT_TRUE(s.ok()) << s.status();
    stores.push_back(*std::move(s));
  }
  std::vector<absl::StatusOr<cni::IPPrefix>> got(4, absl::UnknownError("not run"));
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      got[i] = AllocatePodCIDR(*stores[i], cluster_, StrCat("node-", i), std::nullopt);
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  std::set<cni::IPPrefix> distinct;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(got[i].ok()) << "node-" << i << ": " << got[i].status();
    distinct.insert(*got[i]);
  }
  EXPECT_EQ(distinct.size(), 4u);
}

// ---- Local API ----

class FakeHandler : public LocalApiHandler {
 public:
  api::AgentStatus Status(const api::StatusRequest& r) override {
    api::AgentStatus s;
    s.set_node("n1");
    s.set_ready(true);
    s.set_services_total(r.max_services());
    return s;
  }
  api::HealthReply Health() override {
    api::HealthReply h;
    h.set_ready(false);
    h.set_message("warming up");
    return h;
  }
  absl::Status ReportPod(const v1::Pod& pod) override {
    if (pod.name().empty()) return absl::InvalidArgumentError("pod without a name");
    reported.push_back(pod);
    return absl::OkStatus();
  }
  absl::Status ForgetPod(const api::ForgetPodRequest& r) override {
    forgotten.push_back(r.container_id());
    return absl::OkStatus();
  }
  absl::Status GcPods(const api::GcPodsRequest& r) override {
    valid = {r.valid_container_ids().begin(), r.valid_container_ids().end()};
    return absl::OkStatus();
  }
  std::vector<v1::Pod> reported;
  std::vector<std::string> forgotten;
  std::vector<std::string> valid;
};

TEST(LocalApiTest, RequestsReachTheHandlerAndErrorsComeBackWithTheirCode) {
  TempDir dir;
  FakeHandler h;
  std::string path = dir.Sub("run/agent.sock");
  auto server = LocalApiServer::Start(path, &h);
  ASSERT_TRUE(server.ok()) << server.status();
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // root only

  auto s = QueryAgentStatus(path, 7);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->node(), "n1");
  EXPECT_EQ(s->services_total(), 7u);
  auto health = QueryAgentHealth(path);
  ASSERT_TRUE(health.ok());
  EXPECT_FALSE(health->ready());
  EXPECT_EQ(health->message(), "warming up");

  v1::Pod pod = MakePod("web", "", "10.244.0.5", "veth1");
  EXPECT_TRUE(ReportPodToAgent(path, pod).ok());
  ASSERT_THAT(h.reported, SizeIs(1));
  EXPECT_EQ(h.reported[0].interface(), "veth1");
  absl::Status bad = ReportPodToAgent(path, v1::Pod());
  EXPECT_TRUE(absl::IsInvalidArgument(bad)) << bad;
  EXPECT_THAT(std::string(bad.message()), HasSubstr("without a name"));
  api::ForgetPodRequest f;
  f.set_container_id("abc");
  EXPECT_TRUE(ForgetPodAtAgent(path, f).ok());
  EXPECT_EQ(h.forgotten, std::vector<std::string>{"abc"});
  api::GcPodsRequest gc;
  gc.add_valid_container_ids("c1");
  gc.add_valid_container_ids("c2");
  EXPECT_TRUE(GcPodsAtAgent(path, gc).ok());
  EXPECT_EQ(h.valid, (std::vector<std::string>{"c1", "c2"}));

  // A second server on the same live socket is refused; after the first stops it may start.
  EXPECT_TRUE(absl::IsAlreadyExists(LocalApiServer::Start(path, &h).status()));
  server->reset();
  EXPECT_TRUE(absl::IsUnavailable(QueryAgentStatus(path).status()));
  EXPECT_TRUE(LocalApiServer::Start(path, &h).ok());
}

TEST(LocalApiTest, OversizedOrGarbageRequestsAreDroppedAndTheServerGoesOn) {
  TempDir dir;
  FakeHandler h;
  std::string path = dir.Sub("agent.sock");
  auto server = LocalApiServer::Start(path, &h);
  ASSERT_TRUE(server.ok()) << server.status();
  for (std::string junk :
       {std::string("\xff\xff\xff\xff", 4), std::string("\x00\x00\x00\x02\xff\xff", 6)}) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    char buf[16];
    EXPECT_EQ(read(fd, buf, sizeof(buf)), 0);  // closed without an answer
    close(fd);
  }
  EXPECT_TRUE(QueryAgentStatus(path).ok());
}

}  // namespace
}  // namespace cninet::agent
