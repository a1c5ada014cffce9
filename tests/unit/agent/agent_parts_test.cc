// The agent's parts without a kernel: the store cache (immutable snapshots, topics, forgotten
// local pods, malformed values), the pass scheduler (first round, dirty topics, resync, retry
// of failed topics) and the status builder's sections.
#include <chrono>
#include <string>
#include <vector>

#include "agent/node_setup.h"
#include "agent/pass_scheduler.h"
#include "agent/status_builder.h"
#include "agent/store_cache.h"
#include "cninet/agent/state.h"
#include "cninet/base/version_info.h"
#include "cninet/cni/plugin_names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cninet::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

template <typename T>
Event Put(const T& object, int64_t rev) {
  Event ev;
  ev.type = EventType::kPut;
  std::string key;
  if constexpr (std::is_same_v<T, v1::Node>) key = keys::Node(object.name());
  if constexpr (std::is_same_v<T, v1::NodeHeartbeat>) key = keys::Heartbeat(object.node());
  if constexpr (std::is_same_v<T, v1::Pod>) key = keys::Pod(object.namespace_(), object.name());
  if constexpr (std::is_same_v<T, v1::Service>) {
    key = keys::Service(object.namespace_(), object.name());
  }
  ev.kv.key = key;
  ev.kv.value = *EncodeObject(ObjectTraits<T>::kKind, object);
  ev.kv.mod_revision = rev;
  return ev;
}

Event Delete(const std::string& key, int64_t rev) {
  Event ev;
  ev.type = EventType::kDelete;
  ev.kv.key = key;
  ev.kv.mod_revision = rev;
  return ev;
}

v1::Node Node(const std::string& name) {
  v1::Node n;
  n.set_name(name);
  return n;
}

v1::Pod Pod(const std::string& name, const std::string& node, const std::string& ip) {
  v1::Pod p;
  p.set_namespace_("default");
  p.set_name(name);
  p.set_node(node);
  p.add_ips(ip);
  p.set_interface("veth-" + name);
  return p;
}

v1::Service Service(const std::string& name) {
  v1::Service s;
  s.set_namespace_("default");
  s.set_name(name);
  return s;
}

WatchUpdate Reset(std::vector<Event> events, int64_t rev) {
  WatchUpdate u;
  u.reset = true;
  u.events = std::move(events);
  u.revision = rev;
  return u;
}

WatchUpdate Changes(std::vector<Event> events, int64_t rev) {
  WatchUpdate u;
  u.events = std::move(events);
  u.revision = rev;
  return u;
}

TEST(StoreCacheTest, ResetSyncsAndTouchesEveryKindPresent) {
  StoreCache cache("n1");
  EXPECT_FALSE(cache.synced());
  Topics t = cache.Apply(Reset({Put(Node("n1"), 2), Put(Service("web"), 3)}, 5));
  EXPECT_TRUE(cache.synced());
  EXPECT_EQ(cache.revision(), 5);
  // A reset touches every kind, present or not.
  EXPECT_EQ(t, kAllTopics);
}

TEST(StoreCacheTest, ChangesTouchOnlyTheirTopics) {
  StoreCache cache("n1");
  cache.Apply(Reset({}, 1));
  EXPECT_EQ(cache.Apply(Changes({Put(Service("web"), 2)}, 2)), Topics{kTopicServices});
  EXPECT_EQ(cache.Apply(Changes({Put(Node("n2"), 3)}, 3)), Topics{kTopicNodes});
  EXPECT_EQ(cache.Apply(Changes({Put(Pod("a", "n1", "10.244.1.5"), 4)}, 4)),
            Topics{kTopicPods | kTopicPolicy});
  v1::NodeHeartbeat hb;
  hb.set_node("n2");
  EXPECT_EQ(cache.Apply(Changes({Put(hb, 5)}, 5)), Topics{kTopicNodes});
  EXPECT_EQ(cache.Peek()->alive, std::set<std::string>{"n2"});
}

TEST(StoreCacheTest, SnapshotIsImmutableAndHoldsOnlyItsTopics) {
  StoreCache cache("n1");
  cache.Apply(Reset({Put(Service("web"), 2), Put(Pod("a", "n1", "10.244.1.5"), 3)}, 3));
  std::shared_ptr<const Snapshot> snap = cache.Take(kTopicServices);
  EXPECT_EQ(snap->revision, 3);
  EXPECT_THAT(snap->Get<v1::Service>(), SizeIs(1));
  EXPECT_THAT(snap->Get<v1::Pod>(), IsEmpty());  // not taken for pods
  cache.Apply(Changes({Put(Service("db"), 4), Delete(keys::Service("default", "web"), 5)}, 5));
  // The earlier snapshot is unchanged; a new one sees the changes.
  ASSERT_THAT(snap->Get<v1::Service>(), SizeIs(1));
  EXPECT_EQ(snap->Get<v1::Service>()[0]->name(), "web");
  std::shared_ptr<const Snapshot> next = cache.Take(kTopicServices);
  ASSERT_THAT(next->Pointers<v1::Service>(), SizeIs(1));
  EXPECT_EQ(next->Pointers<v1::Service>()[0]->name(), "db");
  EXPECT_EQ(next->revision, 5);
}

TEST(StoreCacheTest, DeletedLocalPodsAreForgottenOnce) {
  StoreCache cache("n1");
  cache.Apply(
      Reset({Put(Pod("a", "n1", "10.244.1.5"), 2), Put(Pod("b", "n2", "10.244.2.5"), 3)}, 3));
  cache.Apply(
      Changes({Delete(keys::Pod("default", "a"), 4), Delete(keys::Pod("default", "b"), 5)}, 5));
  // Peek leaves them; only a pods snapshot takes them.
  EXPECT_THAT(cache.Peek()->forgotten, IsEmpty());
  EXPECT_THAT(cache.Take(kTopicServices)->forgotten, IsEmpty());
  std::shared_ptr<const Snapshot> snap = cache.Take(kTopicPods);
  EXPECT_THAT(snap->forgotten, ElementsAre(*cni::IPAddress::Parse("10.244.1.5")));
  EXPECT_THAT(snap->Get<v1::Pod>(), IsEmpty());
  EXPECT_THAT(cache.Take(kTopicPods)->forgotten, IsEmpty());
}

TEST(StoreCacheTest, MalformedValueIsAProblemUntilFixed) {
  StoreCache cache("n1");
  cache.Apply(Reset({Put(Service("web"), 2)}, 2));
  Event bad;
  bad.kv.key = keys::Service("default", "web");
  bad.kv.value = "{not json";
  bad.kv.mod_revision = 3;
  cache.Apply(Changes({bad}, 3));
  ASSERT_THAT(cache.problems(), SizeIs(1));
  EXPECT_EQ(cache.problems().begin()->first, keys::Service("default", "web"));
  // The malformed key keeps its last good value.
  EXPECT_THAT(cache.Peek()->Get<v1::Service>(), SizeIs(1));
  cache.Apply(Changes({Put(Service("web"), 4)}, 4));
  EXPECT_THAT(cache.problems(), IsEmpty());
}

TEST(StoreCacheTest, NotesThisNodesRemoval) {
  StoreCache cache("n1");
  cache.Apply(Reset({Put(Node("n1"), 2)}, 2));
  EXPECT_FALSE(cache.self_removed());
  cache.Apply(Changes({Delete(keys::Node("n1"), 3)}, 3));
  EXPECT_TRUE(cache.self_removed());
  cache.Apply(Changes({Put(Node("n1"), 4)}, 4));
  EXPECT_FALSE(cache.self_removed());
}

using Clock = std::chrono::steady_clock;

TEST(PassSchedulerTest, FirstRoundCoversEverything) {
  auto t0 = Clock::now();
  PassScheduler s(std::chrono::seconds(30), t0);
  EXPECT_TRUE(s.HasWork());
  Round r = s.Next(t0);
  EXPECT_TRUE(r.first);
  EXPECT_FALSE(r.resync);
  EXPECT_EQ(r.topics, kAllTopics);
  s.Done(r, 0);
  EXPECT_FALSE(s.HasWork());
}

TEST(PassSchedulerTest, DirtyTopicsOnlyAndRetryOfFailures) {
  auto t0 = Clock::now();
  PassScheduler s(std::chrono::seconds(30), t0);
  s.Done(s.Next(t0), 0);
  s.MarkDirty(kTopicServices);
  s.MarkDirty(kTopicServices);
  EXPECT_TRUE(s.HasWork());
  Round r = s.Next(t0 + std::chrono::seconds(1));
  EXPECT_FALSE(r.first);
  EXPECT_EQ(r.topics, Topics{kTopicServices});
  EXPECT_FALSE(s.HasWork());
  // A change arriving during the round and the failed topic both come back.
  s.MarkDirty(kTopicPods);
  s.Done(r, kTopicServices);
  EXPECT_EQ(s.Next(t0 + std::chrono::seconds(2)).topics, Topics{kTopicServices | kTopicPods});
}

TEST(PassSchedulerTest, ResyncCoversEverythingAndMovesOn) {
  auto t0 = Clock::now();
  PassScheduler s(std::chrono::seconds(30), t0);
  s.Done(s.Next(t0), 0);
  EXPECT_EQ(s.next_resync(), t0 + std::chrono::seconds(30));
  Round r = s.Next(t0 + std::chrono::seconds(31));
  EXPECT_TRUE(r.resync);
  EXPECT_EQ(r.topics, kAllTopics);
  EXPECT_EQ(s.next_resync(), t0 + std::chrono::seconds(61));
}

TEST(PassSchedulerTest, NothingBeforeTheCacheIsSynced) {
  auto t0 = Clock::now();
  PassScheduler s(std::chrono::seconds(30), t0);
  Round r = s.Next(t0 + std::chrono::seconds(31), /*synced=*/false);
  EXPECT_EQ(r.topics, Topics{0});
  EXPECT_EQ(s.next_resync(), t0 + std::chrono::seconds(61));  // no busy wait
  s.Done(r, 0);
  EXPECT_TRUE(s.Next(t0 + std::chrono::seconds(32)).first);  // still the first real round
}

TEST(StatusBuilderTest, HealthNamesEveryReason) {
  api::AgentStatus s;
  HealthInputs h;
  h.synced = true;
  h.heartbeat_lost = true;
  h.watches.push_back(absl::UnavailableError("etcd down"));
  FillHealth(h, &s);
  EXPECT_FALSE(s.ready());
  EXPECT_FALSE(s.healthy());
  EXPECT_THAT(s.message(), HasSubstr("first reconcile pending"));
  EXPECT_THAT(s.message(), HasSubstr("heartbeat lease lost"));
  EXPECT_THAT(s.message(), HasSubstr("store: etcd down"));
  api::AgentStatus ok;
  FillHealth({.ready = true, .synced = true}, &ok);
  EXPECT_TRUE(ok.healthy());
  EXPECT_EQ(ok.message(), "");
}

TEST(StatusBuilderTest, NodesCarryTheirRoute) {
  StoreCache cache("n1");
  v1::NodeHeartbeat hb;
  hb.set_node("n2");
  cache.Apply(Reset(
      {Put(Node("n1"), 2), Put(Node("n2"), 3), Put(Node("n3"), 4), Put(Node("n4"), 5), Put(hb, 6)},
      6));
  OverlayPlan plan;
  OverlayPeer p;
  p.node = "n2";
  p.mode = PeerMode::kDirect;
  p.gateway = *cni::IPAddress::Parse("192.168.1.12");
  plan.peers.push_back(p);
  plan.skipped.push_back({"n3", "no IPv4 podCIDR yet"});
  api::AgentStatus s;
  AddNodes(*cache.Peek(), plan, "n1", &s);
  ASSERT_EQ(s.nodes_size(), 4);
  EXPECT_EQ(s.nodes(0).route(), "self");
  EXPECT_EQ(s.nodes(1).route(), "direct via 192.168.1.12");
  EXPECT_TRUE(s.nodes(1).alive());
  EXPECT_EQ(s.nodes(2).route(), "skipped: no IPv4 podCIDR yet");
  EXPECT_FALSE(s.nodes(2).alive());
  EXPECT_EQ(s.nodes(3).route(), "not planned yet");
}

TEST(StatusBuilderTest, EndpointsProgrammedWhenTheTableAgrees) {
  StoreCache cache("n1");
  cache.Apply(
      Reset({Put(Pod("a", "n1", "10.244.1.5"), 2), Put(Pod("b", "n1", "10.244.1.6"), 3)}, 3));
  std::vector<PlannedEndpoint> planned(2);
  planned[0].pod = "default/a";
  planned[0].endpoint.address = *cni::IPAddress::Parse("10.244.1.5");
  planned[0].endpoint.ifindex = 7;
  planned[1].pod = "default/b";
  planned[1].endpoint.address = *cni::IPAddress::Parse("10.244.1.6");
  planned[1].endpoint.ifindex = 8;
  std::vector<datapath::Endpoint> table(1);
  table[0].address = planned[0].endpoint.address;
  table[0].ifindex = 7;
  api::AgentStatus s;
  AddEndpoints(planned, table, *cache.Peek(), &s);
  ASSERT_EQ(s.endpoints_size(), 2);
  EXPECT_EQ(s.endpoints(0).interface(), "veth-a");
  EXPECT_TRUE(s.endpoints(0).programmed());
  EXPECT_EQ(s.endpoints(1).interface(), "veth-b");
  EXPECT_FALSE(s.endpoints(1).programmed());
}

TEST(StatusBuilderTest, ServicesAndProblemsAreCapped) {
  std::map<uint32_t, ProgrammedService> programmed;
  for (uint32_t id = 1; id <= 5; ++id)
    programmed[id].key = {"default", "s" + std::to_string(id), ""};
  programmed[6] = {};  // recovered from the maps, not matched yet
  api::AgentStatus s;
  AddServices(programmed, 3, &s);
  EXPECT_EQ(s.services_total(), 6u);
  EXPECT_EQ(s.services_size(), 3);
  api::AgentStatus all;
  AddServices(programmed, 10, &all);
  EXPECT_EQ(all.services(5).key(), "(recovered)");
  std::vector<std::string> problems(kMaxStatusProblems + 5, "x");
  AddProblems(problems, &s);
  EXPECT_EQ(static_cast<size_t>(s.problems_size()), kMaxStatusProblems);
}

TEST(StatusBuilderTest, FrontendStrings) {
  datapath::Frontend f;
  f.address = *cni::IPAddress::Parse("10.96.0.10");
  f.port = 53;
  f.protocol = datapath::Protocol::kUdp;
  EXPECT_EQ(FrontendString(f), "10.96.0.10:53/udp");
  f.kind = datapath::FrontendKind::kNodePort;
  f.port = 30080;
  EXPECT_THAT(FrontendString(f), HasSubstr("nodePort:30080/"));
  // IPv6 frontends in brackets; an IPv6 nodePort is told apart from the IPv4 one.
  f.address = *cni::IPAddress::Parse("::");
  EXPECT_EQ(FrontendString(f), "nodePort:[::]:30080/udp");
  f.kind = datapath::FrontendKind::kClusterIP;
  f.address = *cni::IPAddress::Parse("fd00:10:96::10");
  f.port = 53;
  EXPECT_EQ(FrontendString(f), "[fd00:10:96::10]:53/udp");
}

TEST(StatusBuilderTest, DualStackRoutesShowBothFamilies) {
  StoreCache cache("n1");
  cache.Apply(Reset({Put(Node("n1"), 2), Put(Node("n2"), 3), Put(Node("n3"), 4)}, 4));
  OverlayPlan plan;
  OverlayPeer p4;
  p4.node = "n2";
  p4.pod_cidr = *cni::IPPrefix::Parse("10.244.1.0/24");
  p4.vtep = *cni::IPAddress::Parse("192.168.1.12");
  OverlayPeer p6 = p4;
  p6.pod_cidr = *cni::IPPrefix::Parse("fd00:10:244:1::/64");
  p6.mode = PeerMode::kDirect;
  p6.gateway = *cni::IPAddress::Parse("fd00:1::12");
  plan.peers = {p4, p6};
  OverlayPeer n3 = p4;
  n3.node = "n3";
  plan.peers.push_back(n3);
  plan.skipped.push_back({"n3", "IPv6: this node has no IPv6 podCIDR"});
  api::AgentStatus s;
  AddNodes(*cache.Peek(), plan, "n1", &s);
  ASSERT_EQ(s.nodes_size(), 3);
  EXPECT_EQ(s.nodes(1).route(),
            "vxlan via 192.168.1.12 (00:00:00:00:00:00); IPv6 direct via fd00:1::12");
  EXPECT_EQ(s.nodes(2).route(),
            "vxlan via 192.168.1.12 (00:00:00:00:00:00); IPv6 skipped: this node has no IPv6 "
            "podCIDR");
}

TEST(NodeSetupTest, ConflistFollowsTheNodeAndTheOptions) {
  AgentOptions opt;
  opt.node_name = "n1";
  opt.state_dir = "/var/lib/x";
  opt.socket_path = "/run/x.sock";
  opt.masquerade = false;
  NodeSetup setup;
  setup.pod_cidr = *cni::IPPrefix::Parse("10.244.3.0/24");
  setup.cluster_cidr = *cni::IPPrefix::Parse("10.244.0.0/16");
  setup.uplink.name = "eth0";
  setup.uplink.mtu = 1500;
  setup.uplink.addresses.push_back(*cni::IPPrefix::Parse("192.168.1.11/24"));
  ConflistParams p = ConflistFor(opt, setup);
  EXPECT_EQ(p.mtu, 1500 - kVxlanOverhead);  // no cluster MTU: the uplink's minus VXLAN
  EXPECT_EQ(p.ipam_data_dir, "/var/lib/x/ipam");
  EXPECT_EQ(p.ebpf_state_dir, "/var/lib/x/ebpf");
  EXPECT_EQ(p.instance, "n1");
  EXPECT_FALSE(p.masquerade);
  EXPECT_EQ(p.agent_socket, "/run/x.sock");
  setup.cluster.set_mtu(1400);
  opt.report_pods = false;
  p = ConflistFor(opt, setup);
  EXPECT_EQ(p.mtu, 1400u);
  EXPECT_EQ(p.agent_socket, "");
  // The plugin types come from cni/plugin_names.h.
  nlohmann::json list = nlohmann::json::parse(BuildConflist(ConflistFor(AgentOptions{}, setup)));
  ASSERT_EQ(list["plugins"].size(), 3u);
  EXPECT_EQ(list["plugins"][0]["type"], std::string(cni::kBridgePlugin));
  EXPECT_EQ(list["plugins"][0]["ipam"]["type"], std::string(cni::kHostLocalPlugin));
  EXPECT_EQ(list["plugins"][1]["type"], std::string(cni::kEbpfPlugin));
  EXPECT_EQ(list["plugins"][2]["type"], std::string(cni::kAgentCniPlugin));
}

TEST(NodeSetupTest, SocketLbIsOffByDefaultAndItsCgroupMustBeAbsolute) {
  AgentOptions opt;
  opt.node_name = "node-1";
  EXPECT_EQ(opt.socket_lb_cgroup, "");  // never the machine's root cgroup unless asked
  EXPECT_TRUE(opt.Validate().ok());
  opt.socket_lb_cgroup = "sys/fs/cgroup";
  absl::Status st = opt.Validate();
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_THAT(st.message(), ::testing::HasSubstr("socket LB cgroup"));
  opt.socket_lb_cgroup = "/sys/fs/cgroup";
  EXPECT_TRUE(opt.Validate().ok());
}

TEST(NodeSetupTest, AgentVersionIsTheProjectVersion) {
  EXPECT_EQ(AgentVersion(), "cninet-agent/" + std::string(cninet::Version()));
}

}  // namespace
}  // namespace cninet::agent
