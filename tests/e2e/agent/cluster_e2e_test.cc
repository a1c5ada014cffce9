// The reference agent end to end (issue 8, "Must show" 1-4): three "nodes" as network namespaces
// on an underlay switch namespace, a real etcd on 127.0.0.1, one real cninet-agent process per
// node, two pods per node created through the agent's conflist by cninet-cni (cninet-bridge +
// cninet-host-local, cninet-ebpf, cninet-agent-cni), and real TCP between them:
//   - every pod reaches every other pod (across nodes over VXLAN);
//   - a ClusterIP whose backends run on two other nodes is balanced across them;
//   - killing and restarting an agent keeps an established connection through a ClusterIP;
//   - deleting a node from etcd (with etcdctl) removes its routes, neighbours and FDB entries;
//   - malformed values written with etcdctl are logged and skipped, the agent keeps serving;
//   - the direct-routing variant carries the same traffic without VXLAN;
//   - a single node on the embedded store, with no etcd at all;
//   - dual-stack (issue 14): the 3-node cluster is dual-stack, every pod gets an IPv4 and an IPv6
//     address, IPv6 pod-to-pod TCP crosses nodes over the VXLAN device (IPv6 inner, IPv4
//     underlay) or over direct IPv6 routes; a dual-stack Service's IPv4 ClusterIP works as
//     before, and its IPv6 ClusterIP and NodePort are balanced over the IPv6 backends.
// The Service cases (issue 15: NodePort from the external namespace, externalTrafficPolicy Local
// and its health check, socket-level load balancing for the node's own processes, and the rest of
// the sig-network Service tests) run on the same cluster in tests/e2e/services/
// services_cluster_e2e_test.cc. The fixture is cluster_fixture.h.
// Every namespace, process, mount, cgroup and pin is removed by the Cluster's destructor.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cluster_fixture.h"
#include "cluster_testing.h"
#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/pins.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::agent::testing {
namespace {

using ::cninet::testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(ClusterTest, EveryPodReachesEveryOtherPodOverVxlan) {
  uint64_t before = VxlanTxPackets(0);
  ExpectAllPairs();
  // Cross-node traffic left through the VXLAN device, routed by the agent's routes.
  EXPECT_GT(VxlanTxPackets(0), before);
  CommandResult routes = cluster_->InNode(0, "ip -4 route show proto 73");
  EXPECT_THAT(routes.out, HasSubstr("10.244.1.0/24 via 10.244.1.0 dev cninet-vxlan onlink"));
  EXPECT_THAT(routes.out, HasSubstr("10.244.2.0/24 via 10.244.2.0 dev cninet-vxlan onlink"));
}

TEST_F(ClusterTest, DualStackPodsReachEveryOtherPodOverIPv6ThroughVxlan) {
  // Each node registered one podCIDR per family; each pod got an address from both.
  absl::StatusOr<ObjectList<v1::Node>> nodes = ListObjects<v1::Node>(cluster_->store());
  ASSERT_OK(nodes);
  ASSERT_EQ(nodes->items.size(), 3u);
  for (const auto& n : nodes->items) {
    ASSERT_EQ(n.value.pod_cidrs_size(), 2) << n.value.DebugString();
    EXPECT_THAT(n.value.pod_cidrs(1), HasSubstr("fd00:10:244:")) << n.value.DebugString();
  }
  for (Pod& p : cluster_->pods()) {
    EXPECT_THAT(p.ip6, HasSubstr("fd00:10:244:")) << p.name;
    EXPECT_EQ(cluster_->InNode(p.node, "sysctl -n net.ipv6.conf.all.forwarding").out, "1\n");
  }
  uint64_t before = VxlanTxPackets(0);
  ExpectAllPairsV6();
  EXPECT_GT(VxlanTxPackets(0), before);
  // IPv6 routes through the VXLAN device via the peers' VTEP link-local addresses (IPv6 inner
  // over the IPv4 underlay), next to the unchanged IPv4 routes.
  CommandResult routes = cluster_->InNode(0, "ip -6 route show proto 73");
  EXPECT_THAT(routes.out, HasSubstr("fd00:10:244:1::/64 via fe80::"));
  EXPECT_THAT(routes.out, HasSubstr("fd00:10:244:2::/64 via fe80::"));
  EXPECT_THAT(routes.out, HasSubstr("dev cninet-vxlan"));
  CommandResult routes4 = cluster_->InNode(0, "ip -4 route show proto 73");
  EXPECT_THAT(routes4.out, HasSubstr("10.244.1.0/24 via 10.244.1.0 dev cninet-vxlan onlink"));
  // The status shows both families of every peer's route, and the node's addresses of both.
  absl::StatusOr<api::AgentStatus> s = cluster_->AgentStatus(0);
  ASSERT_OK(s);
  EXPECT_THAT(s->node_addresses(), ::testing::Contains(HasSubstr("fd00:50::11/")));
  EXPECT_THAT(s->node_addresses(), ::testing::Contains(HasSubstr("192.168.50.")));
  for (const auto& n : s->nodes()) {
    if (n.node().name() == "node-1") continue;
    EXPECT_THAT(n.route(), HasSubstr("; IPv6 vxlan via 192.168.50.")) << n.route();
  }
}

TEST_F(ClusterTest, ADualStackServiceKeepsItsIPv4ClusterIp) {
  int client = PodIndex("pod-1a");
  int b2 = PodIndex("pod-2a"), b3 = PodIndex("pod-3a");
  ASSERT_OK(cluster_->PutDualStackService("web2", {"10.96.0.12", "fd00:10:96::12"}, 80, {b2, b3},
                                          kPodPort));
  ASSERT_OK(cluster_->WaitStatus(
      0, [](const api::AgentStatus& s) { return HasService(s, "10.96.0.12:80/tcp", 2); }));
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> who = WhoAnswers(pod(client).ns->path(), "10.96.0.12", 80);
    ASSERT_TRUE(who.ok()) << "connection " << i << ": " << who.status();
    seen.insert(*who);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"pod-2a", "pod-3a"}));
}

// The dual-stack datapath programs the IPv6 frontends and backends (NodePort on the nodes' IPv6
// addresses).
TEST_F(ClusterTest, IPv6ClusterIpAndNodePortAreBalancedOverTheIPv6Backends) {
  int client = PodIndex("pod-1a");
  int b2 = PodIndex("pod-2a"), b3 = PodIndex("pod-3a");
  ASSERT_OK(cluster_->PutDualStackService("web6", {"10.96.0.13", "fd00:10:96::13"}, 80, {b2, b3},
                                          kPodPort, 30081));
  for (int n = 0; n < 3; ++n) {
    ASSERT_OK(cluster_->WaitStatus(n, [](const api::AgentStatus& s) {
      return HasService(s, "[fd00:10:96::13]:80/tcp", 2) &&
             HasService(s, "nodePort:[::]:30081/tcp", 2);
    }));
  }
  std::map<std::string, int> answers;
  for (int i = 0; i < 40; ++i) {
    absl::StatusOr<std::string> who = WhoAnswers(pod(client).ns->path(), "fd00:10:96::13", 80);
    ASSERT_TRUE(who.ok()) << "connection " << i << ": " << who.status();
    ++answers[*who];
  }
  EXPECT_EQ(answers.size(), 2u);
  EXPECT_GE(answers["pod-2a"], 8) << "pod-2a answered " << answers["pod-2a"] << " of 40";
  EXPECT_GE(answers["pod-3a"], 8) << "pod-3a answered " << answers["pod-3a"] << " of 40";
  // The IPv6 NodePort from the external namespace, on every node's IPv6 address.
  for (const char* node_ip : {"fd00:50::11", "fd00:50::12", "fd00:50::13"}) {
    absl::StatusOr<std::string> who = WhoAnswers(cluster_->external().path(), node_ip, 30081);
    ASSERT_TRUE(who.ok()) << node_ip << ": " << who.status();
    EXPECT_TRUE(*who == "pod-2a" || *who == "pod-3a") << *who;
  }
}

TEST_F(ClusterTest, ClusterIpIsBalancedAcrossBackendsOnTwoOtherNodes) {
  int client = PodIndex("pod-1a");
  int b2 = PodIndex("pod-2a"), b3 = PodIndex("pod-3a");
  ASSERT_OK(cluster_->PutService("web", "10.96.0.10", 80, {b2, b3}, kPodPort));
  ASSERT_OK(cluster_->WaitStatus(
      0, [](const api::AgentStatus& s) { return HasService(s, "10.96.0.10:80/tcp", 2); }));
  std::map<std::string, int> answers;
  for (int i = 0; i < 40; ++i) {
    absl::StatusOr<std::string> who = WhoAnswers(pod(client).ns->path(), "10.96.0.10", 80);
    ASSERT_TRUE(who.ok()) << "connection " << i << ": " << who.status();
    ++answers[*who];
  }
  // Only the two backends answer (the replies came back from 10.96.0.10:80, or TCP would not
  // have connected), and each gets a fair share of the new connections.
  EXPECT_EQ(answers.size(), 2u);
  EXPECT_GE(answers["pod-2a"], 8) << "pod-2a answered " << answers["pod-2a"] << " of 40";
  EXPECT_GE(answers["pod-3a"], 8) << "pod-3a answered " << answers["pod-3a"] << " of 40";
  // The reply path: node-1's from-world on the VXLAN device reverse-DNATed the replies.
  absl::StatusOr<api::AgentStatus> s = cluster_->AgentStatus(0);
  ASSERT_OK(s);
  uint64_t rev_dnat = 0;
  for (const auto& c : s->counters()) {
    if (c.name() == "rev_dnat") rev_dnat = c.packets();
  }
  EXPECT_GT(rev_dnat, 0u);
}

TEST_F(ClusterTest, RestartedAgentKeepsAnEstablishedConnectionThroughAClusterIp) {
  int client = PodIndex("pod-1a");
  ASSERT_OK(cluster_->PutService("web", "10.96.0.10", 80, {PodIndex("pod-2a"), PodIndex("pod-3a")},
                                 kPodPort));
  absl::StatusOr<api::AgentStatus> before = cluster_->WaitStatus(
      0, [](const api::AgentStatus& s) { return HasService(s, "10.96.0.10:80/tcp", 2); });
  ASSERT_OK(before);
  absl::StatusOr<Sock> conn = Connect(pod(client).ns->path(), "10.96.0.10", 80);
  ASSERT_OK(conn);
  absl::StatusOr<std::string> first = Ask(*conn, "one");
  ASSERT_OK(first);

  cluster_->nodes()[0].agent->Kill();  // SIGKILL: no chance to clean anything up
  absl::StatusOr<std::string> during = Ask(*conn, "two");
  ASSERT_OK(during);
  EXPECT_EQ(*during, *first) << "the flow moved while the agent was down";

  ASSERT_OK(cluster_->StartAgent(0));
  absl::StatusOr<std::string> after = Ask(*conn, "three");
  ASSERT_TRUE(after.ok()) << "the established connection broke across the restart: "
                          << after.status();
  EXPECT_EQ(*after, *first);
  // The restarted agent recovered the service under the same id instead of reprogramming it.
  absl::StatusOr<api::AgentStatus> now = cluster_->AgentStatus(0);
  ASSERT_OK(now);
  ASSERT_EQ(now->services_size(), 1);
  EXPECT_EQ(now->services(0).id(), before->services(0).id());
  EXPECT_EQ(now->services(0).key(), "default/web");
  EXPECT_THAT(cluster_->AgentLog(0), HasSubstr("recovered 1 programmed services"));
  // New connections work too.
  EXPECT_OK(WhoAnswers(pod(client).ns->path(), "10.96.0.10", 80));
}

TEST_F(ClusterTest, DeletingANodeFromEtcdRemovesItsRoutesAndFdbEntriesOnTheOthers) {
  absl::StatusOr<api::AgentStatus> s = cluster_->AgentStatus(2);
  ASSERT_OK(s);
  std::string mac, cidr;
  for (const auto& n : s->nodes()) {
    if (n.node().name() == "node-3") {
      mac = n.node().vtep_mac();
      cidr = n.node().pod_cidrs(0);
    }
  }
  ASSERT_FALSE(mac.empty());
  for (int n : {0, 1}) {
    EXPECT_THAT(cluster_->InNode(n, "ip -4 route show proto 73").out, HasSubstr(cidr));
    EXPECT_THAT(cluster_->InNode(n, "bridge fdb show dev cninet-vxlan").out, HasSubstr(mac));
    EXPECT_THAT(cluster_->InNode(n, "ip neigh show dev cninet-vxlan").out, HasSubstr(mac));
  }
  cluster_->nodes()[2].agent->Kill(/*graceful=*/true);
  // An operator removes the node, with etcd's own client.
  CommandResult del = ::cninet::testing::Run(
      {"etcdctl", "--endpoints", cluster_->etcd_url(), "del", std::string(keys::Node("node-3"))},
      {}, {"ETCDCTL_API=3"});
  ASSERT_TRUE(del.ok()) << del.err;
  EXPECT_THAT(del.out, HasSubstr("1"));
  for (int n : {0, 1}) {
    ASSERT_OK(cluster_->WaitStatus(n, [](const api::AgentStatus& st) {
      for (const auto& node : st.nodes()) {
        if (node.node().name() == "node-3") return false;
      }
      return true;
    }));
    auto gone = [&]() {
      return cluster_->InNode(n, "ip -4 route show proto 73").out.find(cidr) == std::string::npos &&
             cluster_->InNode(n, "bridge fdb show dev cninet-vxlan").out.find(mac) ==
                 std::string::npos &&
             cluster_->InNode(n, "ip neigh show dev cninet-vxlan").out.find(mac) ==
                 std::string::npos;
    };
    for (int i = 0; i < 50 && !gone(); ++i) usleep(100000);
    EXPECT_THAT(cluster_->InNode(n, "ip -4 route show proto 73").out, Not(HasSubstr(cidr)));
    EXPECT_THAT(cluster_->InNode(n, "bridge fdb show dev cninet-vxlan").out, Not(HasSubstr(mac)));
    EXPECT_THAT(cluster_->InNode(n, "ip neigh show dev cninet-vxlan").out, Not(HasSubstr(mac)));
  }
  // The two remaining nodes still talk to each other.
  EXPECT_OK(WhoAnswers(pod(PodIndex("pod-1a")).ns->path(), pod(PodIndex("pod-2a")).ip, kPodPort));
}

TEST_F(ClusterTest, MalformedValuesWrittenWithEtcdctlAreLoggedAndSkipped) {
  ASSERT_OK(cluster_->PutService("web", "10.96.0.10", 80, {PodIndex("pod-2a")}, kPodPort));
  ASSERT_OK(cluster_->WaitStatus(
      0, [](const api::AgentStatus& s) { return HasService(s, "10.96.0.10:80/tcp", 1); }));
  auto put = [&](const std::string& key, const std::string& value) {
    CommandResult r = ::cninet::testing::Run(
        {"etcdctl", "--endpoints", cluster_->etcd_url(), "put", key, value}, {}, {"ETCDCTL_API=3"});
    ASSERT_TRUE(r.ok()) << key << ": " << r.err;
  };
  put("/cninet/v1/services/default/bad-ip", R"({"clusterIP":"10.96.0.300","ports":[{"port":80}]})");
  put("/cninet/v1/services/default/typo", R"({"clusterIp":"10.96.0.21","ports":[{"port":80}]})");
  put("/cninet/v1/services/default/not-json", "{this is not json");
  put("/cninet/v1/endpoints/default/web", R"({"ports":[{"backends":[{"ip":"10.244.1.2"}]}]})");
  put("/cninet/v1/nodes/node-9", R"({"podCIDRs":["10.244.9.0/33"]})");
  put("/cninet/v1/pods/default/ghost", R"({"node":"node-1","ips":["10.244.0.999"]})");
  // A valid service written after the garbage is still programmed and served.
  ASSERT_OK(cluster_->PutService("good", "10.96.0.30", 80, {PodIndex("pod-3a")}, kPodPort));
  absl::StatusOr<api::AgentStatus> s = cluster_->WaitStatus(0, [](const api::AgentStatus& st) {
    return HasService(st, "10.96.0.30:80/tcp", 1) && st.problems_size() >= 6;
  });
  ASSERT_OK(s);
  EXPECT_EQ(Who(pod(PodIndex("pod-1a")).ns->path(), "10.96.0.30", 80), "pod-3a");
  // The malformed Endpoints update left the last valid value in force.
  EXPECT_EQ(Who(pod(PodIndex("pod-1a")).ns->path(), "10.96.0.10", 80), "pod-2a");
  EXPECT_TRUE(s->healthy()) << s->message();
  EXPECT_EQ(s->services_total(), 2u);
  std::string problems = StrJoin(s->problems(), "\n");
  std::string log = cluster_->AgentLog(0);
  for (const char* key :
       {"/cninet/v1/services/default/bad-ip", "/cninet/v1/services/default/typo",
        "/cninet/v1/services/default/not-json", "/cninet/v1/endpoints/default/web",
        "/cninet/v1/nodes/node-9", "/cninet/v1/pods/default/ghost"}) {
    EXPECT_THAT(problems, HasSubstr(key));
    EXPECT_THAT(log, HasSubstr(StrCat("skipping malformed value: ", key)));
  }
  EXPECT_TRUE(cluster_->nodes()[0].agent->running());
  // Fixing a value clears its problem.
  ASSERT_OK(cluster_->PutService("web", "10.96.0.10", 80, {PodIndex("pod-2b")}, kPodPort));
  std::string backend = StrCat(pod(PodIndex("pod-2b")).ip, ":", kPodPort);
  ASSERT_OK(cluster_->WaitStatus(0, [&](const api::AgentStatus& st) {
    for (const auto& p : st.problems()) {
      if (p.find("/cninet/v1/endpoints/default/web") != std::string::npos) return false;
    }
    for (const auto& svc : st.services()) {
      if (svc.key() == "default/web") {
        return svc.backends_size() == 1 && svc.backends(0) == backend;
      }
    }
    return false;
  }));
  EXPECT_EQ(Who(pod(PodIndex("pod-1a")).ns->path(), "10.96.0.10", 80), "pod-2b");
}

TEST_F(ClusterTest, PublicIpSetWithEtcdctlBecomesTheUnderlayAddress) {
  // node-3 gets a second underlay address, and an operator publishes it as its publicIP.
  ASSERT_TRUE(cluster_->InNode(2, "ip addr add 192.168.50.113/24 dev eth0").ok());
  absl::StatusOr<api::AgentStatus> s = cluster_->AgentStatus(2);
  ASSERT_OK(s);
  std::string value;
  for (const auto& n : s->nodes()) {
    if (n.node().name() != "node-3") continue;
    v1::Node node = n.node();
    node.set_public_ip("192.168.50.113");
    value = *EncodeJson(node);
  }
  ASSERT_FALSE(value.empty());
  CommandResult put = ::cninet::testing::Run(
      {"etcdctl", "--endpoints", cluster_->etcd_url(), "put", keys::Node("node-3"), value}, {},
      {"ETCDCTL_API=3"});
  ASSERT_TRUE(put.ok()) << put.err;
  for (int n : {0, 1}) {
    ASSERT_OK(cluster_->WaitStatus(n, [](const api::AgentStatus& st) {
      for (const auto& node : st.nodes()) {
        if (node.node().name() == "node-3") {
          return node.route().rfind("vxlan via 192.168.50.113 ", 0) == 0;
        }
      }
      return false;
    }));
    std::string fdb = cluster_->InNode(n, "bridge fdb show dev cninet-vxlan").out;
    EXPECT_THAT(fdb, HasSubstr("dst 192.168.50.113"));
    EXPECT_THAT(fdb, Not(HasSubstr("dst 192.168.50.13 ")));
  }
  // Traffic to node-3's pods now goes to its public address, and still works.
  EXPECT_EQ(Who(pod(PodIndex("pod-1a")).ns->path(), pod(PodIndex("pod-3a")).ip, kPodPort),
            "pod-3a");
  EXPECT_EQ(Who(pod(PodIndex("pod-3b")).ns->path(), pod(PodIndex("pod-2b")).ip, kPodPort),
            "pod-2b");
  // The agent of node-3 kept the operator's publicIP when it re-registered at a restart.
  cluster_->nodes()[2].agent->Kill();
  ASSERT_OK(cluster_->StartAgent(2));
  absl::StatusOr<Object<v1::Node>> stored =
      GetObject<v1::Node>(cluster_->store(), keys::Node("node-3"));
  ASSERT_OK(stored);
  EXPECT_EQ(stored->value.public_ip(), "192.168.50.113");
}

TEST_F(ClusterTest, AHeartbeatLeaseRevokedFromOutsideIsRenewed) {
  auto lease_of = [&]() -> int64_t {
    absl::StatusOr<KeyValue> kv = cluster_->store().Get(keys::Heartbeat("node-1"));
    return kv.ok() ? kv->lease : 0;
  };
  int64_t lease = lease_of();
  ASSERT_NE(lease, 0);
  char hex[32];
  snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(lease));
  CommandResult revoke = ::cninet::testing::Run(
      {"etcdctl", "--endpoints", cluster_->etcd_url(), "lease", "revoke", hex}, {},
      {"ETCDCTL_API=3"});
  ASSERT_TRUE(revoke.ok()) << revoke.err;
  int64_t renewed = 0;
  for (int i = 0; i < 100 && (renewed == 0 || renewed == lease); ++i) {
    usleep(100000);
    renewed = lease_of();
  }
  EXPECT_NE(renewed, 0) << "no heartbeat after the lease was revoked";
  EXPECT_NE(renewed, lease);
  ASSERT_OK(cluster_->WaitStatus(1, [](const api::AgentStatus& st) {
    for (const auto& n : st.nodes()) {
      if (n.node().name() == "node-1") return n.alive();
    }
    return false;
  }));
  // The new lease is in the store just before the agent logs the renewal: wait for the line.
  for (int i = 0; i < 50 && cluster_->AgentLog(0).find("heartbeat renewed") == std::string::npos;
       ++i) {
    usleep(100000);
  }
  EXPECT_THAT(cluster_->AgentLog(0), HasSubstr("heartbeat renewed"));
}

TEST_F(ClusterTest, DriftMadeByHandIsRepairedByTheNextPass) {
  // Level-triggered: entries removed behind the agent's back come back without any store event.
  // The drift is made while node-1's agent is frozen (SIGSTOP), so the check that it really broke
  // pod-to-pod traffic cannot race with a resync pass (every 2 s here, shorter than a connect's
  // SYN retries); once thawed, the agent's next pass must put everything back.
  std::string mac2, mac3;
  absl::StatusOr<api::AgentStatus> s = cluster_->AgentStatus(0);
  ASSERT_OK(s);
  for (const auto& n : s->nodes()) {
    if (n.node().name() == "node-2") mac2 = n.node().vtep_mac();
    if (n.node().name() == "node-3") mac3 = n.node().vtep_mac();
  }
  ASSERT_FALSE(mac2.empty());
  ASSERT_FALSE(mac3.empty());
  // What the agent programmed towards node-2 and node-3 (route, permanent neighbour, FDB entry).
  const std::vector<std::pair<std::string, std::string>> entries = {
      {"ip -4 route show proto 73", "10.244.1.0/24 via 10.244.1.0 dev cninet-vxlan"},
      {"ip -4 route show proto 73", "10.244.2.0/24 via 10.244.2.0 dev cninet-vxlan"},
      {"ip neigh show dev cninet-vxlan nud permanent", StrCat("10.244.1.0 lladdr ", mac2)},
      {"ip neigh show dev cninet-vxlan nud permanent", StrCat("10.244.2.0 lladdr ", mac3)},
      {"bridge fdb show dev cninet-vxlan", StrCat(mac2, " dst 192.168.50.12 ")},
      {"bridge fdb show dev cninet-vxlan", StrCat(mac3, " dst 192.168.50.13 ")},
  };
  auto present = [&](const std::pair<std::string, std::string>& e) {
    return cluster_->InNode(0, e.first).out.find(e.second) != std::string::npos;
  };
  for (const auto& e : entries) ASSERT_TRUE(present(e)) << e.first << ": no " << e.second;
  const std::string pod1a = pod(PodIndex("pod-1a")).ns->path();
  const std::string pod2a_ip = pod(PodIndex("pod-2a")).ip;
  ASSERT_EQ(Who(pod1a, pod2a_ip, kPodPort), "pod-2a");
  // How often the agent has (re)programmed the route to node-2 so far.
  const std::string route_log = "route 10.244.1.0/24 via 10.244.1.0 (vxlan) for node node-2";
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  size_t route_logged = count(cluster_->AgentLog(0), route_log);

  Process& agent = *cluster_->nodes()[0].agent;
  ASSERT_OK(agent.Pause());
  {
    // Thaws the agent even when an assertion below returns early.
    struct Thaw {
      Process& p;
      ~Thaw() { p.Resume(); }
    } thaw{agent};
    // Neighbour flush needs "nud permanent": by default ip skips permanent entries.
    CommandResult drift = cluster_->InNode(
        0,
        "ip route del 10.244.1.0/24 && ip route del 10.244.2.0/24 && "
        "ip neigh flush dev cninet-vxlan nud permanent && bridge fdb flush dev cninet-vxlan");
    ASSERT_TRUE(drift.ok()) << drift.err;
    for (const auto& e : entries) EXPECT_FALSE(present(e)) << e.first << ": still " << e.second;
    // Nothing can repair it while the agent is frozen: traffic to node-2's pod really fails.
    absl::StatusOr<Sock> conn = Connect(pod1a, pod2a_ip, kPodPort, std::chrono::seconds(1));
    EXPECT_FALSE(conn.ok() && Ask(*conn, "hello").ok())
        << "pod-1a still reaches pod-2a without the route, neighbour and FDB entries";
  }
  // The next pass (no store event happened) restores every entry.
  auto repaired = [&] {
    for (const auto& e : entries) {
      if (!present(e)) return false;
    }
    return true;
  };
  for (int i = 0; i < 80 && !repaired(); ++i) usleep(100000);  // resync every 2 s here
  for (const auto& e : entries)
    EXPECT_TRUE(present(e)) << e.first << ": not restored: " << e.second;
  // The agent put the route back (not a leftover or someone else's entry).
  EXPECT_EQ(count(cluster_->AgentLog(0), route_log), route_logged + 1) << cluster_->AgentLog(0);
  EXPECT_EQ(Who(pod1a, pod2a_ip, kPodPort), "pod-2a");
  EXPECT_EQ(Who(pod1a, pod(PodIndex("pod-3a")).ip, kPodPort), "pod-3a");
}

class DirectRoutingTest : public ClusterTest {
 protected:
  ClusterOptions Options() override {
    ClusterOptions o;
    o.direct_routing = true;
    o.dual_stack = true;
    return o;
  }
};

TEST_F(DirectRoutingTest, SameSubnetNodesCarryTheSameTrafficWithoutVxlan) {
  uint64_t tx_before = VxlanTxPackets(0) + VxlanTxPackets(1) + VxlanTxPackets(2);
  ExpectAllPairs();
  ASSERT_OK(cluster_->PutService("web", "10.96.0.10", 80, {PodIndex("pod-2a"), PodIndex("pod-3a")},
                                 kPodPort, 30080));
  for (int n = 0; n < 3; ++n) {
    ASSERT_OK(cluster_->WaitStatus(
        n, [](const api::AgentStatus& s) { return HasService(s, "nodePort:30080/tcp", 2); }));
  }
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> who =
        WhoAnswers(pod(PodIndex("pod-1a")).ns->path(), "10.96.0.10", 80);
    ASSERT_TRUE(who.ok()) << who.status();
    seen.insert(*who);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"pod-2a", "pod-3a"}));
  EXPECT_OK(WhoAnswers(cluster_->external().path(), "192.168.50.11", 30080));
  // Plain routes via the peers' addresses, and not one packet through the VXLAN devices.
  CommandResult routes = cluster_->InNode(0, "ip -4 route show proto 73");
  EXPECT_THAT(routes.out, HasSubstr("10.244.1.0/24 via 192.168.50.12 dev eth0"));
  EXPECT_THAT(routes.out, HasSubstr("10.244.2.0/24 via 192.168.50.13 dev eth0"));
  EXPECT_THAT(routes.out, Not(HasSubstr("cninet-vxlan")));
  // IPv6 too: direct routes via the peers' IPv6 underlay addresses.
  ExpectAllPairsV6();
  CommandResult routes6 = cluster_->InNode(0, "ip -6 route show proto 73");
  EXPECT_THAT(routes6.out, HasSubstr("fd00:10:244:1::/64 via fd00:50::12 dev eth0"));
  EXPECT_THAT(routes6.out, HasSubstr("fd00:10:244:2::/64 via fd00:50::13 dev eth0"));
  EXPECT_THAT(routes6.out, Not(HasSubstr("cninet-vxlan")));
  EXPECT_EQ(VxlanTxPackets(0) + VxlanTxPackets(1) + VxlanTxPackets(2), tx_before);
}

class EmbeddedStoreTest : public ClusterTest {
 protected:
  ClusterOptions Options() override {
    ClusterOptions o;
    o.nodes = 1;
    o.etcd = false;
    return o;
  }
};

TEST_F(EmbeddedStoreTest, SingleNodeWithoutEtcdServesPodsClusterIpAndNodePort) {
  absl::StatusOr<api::AgentStatus> s = cluster_->AgentStatus(0);
  ASSERT_OK(s);
  EXPECT_EQ(s->store(), "embedded");
  EXPECT_TRUE(cluster_->etcd_url().empty());  // no etcd was started for this cluster
  ExpectAllPairs();
  // A client that is not a backend (the datapath does not hairpin a client to itself).
  absl::StatusOr<int> client = cluster_->AddPod(0, "client");
  ASSERT_OK(client);
  ASSERT_OK(cluster_->PutService("web", "10.96.0.10", 80, {0, 1}, kPodPort, 30080));
  ASSERT_OK(cluster_->WaitStatus(
      0, [](const api::AgentStatus& st) { return HasService(st, "10.96.0.10:80/tcp", 2); }));
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> who = WhoAnswers(pod(*client).ns->path(), "10.96.0.10", 80);
    ASSERT_TRUE(who.ok()) << who.status();
    seen.insert(*who);
  }
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_OK(WhoAnswers(cluster_->external().path(), "192.168.50.11", 30080));
  // A pod deleted through CNI leaves the store and the endpoint table.
  ASSERT_OK(cluster_->DeletePod(1));
  ASSERT_OK(cluster_->WaitStatus(0, [](const api::AgentStatus& st) {
    for (const auto& e : st.endpoints()) {
      if (e.pod() == "default/pod-1b") return false;
    }
    return st.endpoints_size() == 2;
  }));
  absl::StatusOr<ObjectList<v1::Pod>> pods = ListObjects<v1::Pod>(cluster_->store());
  ASSERT_OK(pods);
  std::set<std::string> names;
  std::string client_id;
  for (const auto& p : pods->items) {
    names.insert(p.value.name());
    if (p.value.name() == "client") client_id = p.value.container_id();
  }
  EXPECT_EQ(names, (std::set<std::string>{"pod-1a", "client"}));
  ASSERT_FALSE(client_id.empty());
  // CNI GC through the chained plugin: only the client's container is still valid.
  std::string gc =
      StrCat(R"({"cniVersion":"1.1.0","name":"cninet","type":"cninet-agent-cni","socket":")",
             cluster_->nodes()[0].socket, R"(","cni.dev/valid-attachments":[{"containerID":")",
             client_id, R"(","ifname":"eth0"}]})");
  ::cninet::testing::PluginCall call;
  call.command = "GC";
  call.ifname.clear();
  CommandResult r = ::cninet::testing::RunCniPlugin(StrCat(CNINET_PLUGIN_DIR, "/cninet-agent-cni"),
                                                    call, gc, cluster_->nodes()[0].ns->name());
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  pods = ListObjects<v1::Pod>(cluster_->store());
  ASSERT_OK(pods);
  ASSERT_EQ(pods->items.size(), 1u);
  EXPECT_EQ(pods->items[0].value.name(), "client");

  // Decommissioning the node: the agent stops (leaving everything programmed), then teardown
  // removes the programs, routes, VXLAN device, pinned maps and conflist.
  Node& node = cluster_->nodes()[0];
  node.agent->Kill(/*graceful=*/true);
  std::string pin_dir = StrCat(cluster_->bpffs(), "/cninet/node-1");
  std::string conflist = StrCat(node.conf_dir, "/10-cninet.conflist");
  ASSERT_TRUE(std::filesystem::exists(pin_dir));
  ASSERT_TRUE(std::filesystem::exists(conflist));
  EXPECT_THAT(cluster_->InNode(0, "tc filter show dev eth0 ingress").out, HasSubstr("bpf"));
  CommandResult down =
      ::cninet::testing::Run({StrCat(CNINET_TOOL_DIR, "/cninet-agent"), "teardown", "--node",
                              "node-1", "--netns", node.ns->path(), "--uplink", "eth0",
                              "--bpffs-root", cluster_->bpffs(), "--cni-conf-dir", node.conf_dir});
  ASSERT_TRUE(down.ok()) << down.out << down.err;
  EXPECT_FALSE(std::filesystem::exists(pin_dir));
  EXPECT_FALSE(std::filesystem::exists(conflist));
  // cninet-ebpf's program pins go too: the instance's programs/ directory (PinLayout) and the
  // directory of earlier releases.
  EXPECT_FALSE(
      std::filesystem::exists(datapath::PinLayout::For(cluster_->bpffs(), "node-1").ProgramDir()));
  EXPECT_FALSE(std::filesystem::exists(StrCat(cluster_->bpffs(), "/cninet-ebpf/node-1")));
  EXPECT_FALSE(cluster_->InNode(0, "ip link show cninet-vxlan").ok());
  EXPECT_THAT(cluster_->InNode(0, "tc filter show dev eth0 ingress").out, Not(HasSubstr("bpf")));
  EXPECT_THAT(cluster_->InNode(0, "tc filter show dev eth0 egress").out, Not(HasSubstr("bpf")));
  EXPECT_EQ(cluster_->InNode(0, "ip -4 route show proto 73").out, "");
  // Idempotent.
  down =
      ::cninet::testing::Run({StrCat(CNINET_TOOL_DIR, "/cninet-agent"), "teardown", "--node",
                              "node-1", "--netns", node.ns->path(), "--uplink", "eth0",
                              "--bpffs-root", cluster_->bpffs(), "--cni-conf-dir", node.conf_dir});
  EXPECT_TRUE(down.ok()) << down.out << down.err;
}

}  // namespace
}  // namespace cninet::agent::testing
