// The agent e2e fixture shared by the cluster suites (agent_cluster_e2e_test,
// services_cluster_e2e_test): a dual-stack 3-node cluster on a real etcd (or what Options()
// asks for) with two pods per node ("pod-1a" ... "pod-3b") serving their names on kPodPort.
#ifndef CNINET_TESTS_E2E_AGENT_CLUSTER_FIXTURE_H_
#define CNINET_TESTS_E2E_AGENT_CLUSTER_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "cluster_testing.h"
#include "cninet/base/strings.h"
#include "dp_test_util.h"
#include "gtest/gtest.h"

namespace cninet::agent::testing {

using ::cninet::testing::CommandResult;

inline constexpr uint16_t kPodPort = 8080;

// The answering pod's name, or "ERROR: ..." (for EXPECT_EQ on the answer).
inline std::string Who(const std::string& netns, const std::string& ip, uint16_t port) {
  absl::StatusOr<std::string> who = WhoAnswers(netns, ip, port);
  return who.ok() ? *who : StrCat("ERROR: ", who.status().ToString());
}

// Number of services node i has programmed with `backends` backends behind `frontend`.
inline bool HasService(const api::AgentStatus& s, const std::string& frontend, int backends) {
  for (const auto& svc : s.services()) {
    for (const auto& f : svc.frontends()) {
      if (f == frontend && svc.backends_size() == backends) return true;
    }
  }
  return false;
}

// Every node of the cluster routes to every other node (overlay planned for all peers).
inline bool RoutesToAll(const api::AgentStatus& s, int nodes, const std::string& mode) {
  int routed = 0;
  for (const auto& n : s.nodes()) {
    if (n.route().rfind(mode, 0) == 0) ++routed;
  }
  return routed == nodes - 1;
}

class ClusterTest : public ::testing::Test {
 protected:
  virtual ClusterOptions Options() {
    ClusterOptions o;
    o.dual_stack = true;
    return o;
  }

  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    cluster_ = std::make_unique<Cluster>(Options());
    ASSERT_TRUE(cluster_->status().ok()) << cluster_->status();
    int nodes = static_cast<int>(cluster_->nodes().size());
    for (int n = 0; n < nodes; ++n) {
      for (const char* suffix : {"a", "b"}) {
        ASSERT_OK(cluster_->AddPod(n, StrCat("pod-", n + 1, suffix)));
      }
    }
    ASSERT_OK(cluster_->ServeEverywhere(kPodPort));
    std::string mode = Options().direct_routing ? "direct" : "vxlan";
    // Each pod's address of each family is an endpoint.
    int want = Options().dual_stack ? 4 : 2;
    for (int n = 0; n < nodes; ++n) {
      // Routes to every peer, and both local pods in the datapath's endpoint table.
      ASSERT_OK(cluster_->WaitStatus(n, [&](const api::AgentStatus& s) {
        int programmed = 0;
        for (const auto& e : s.endpoints()) programmed += e.programmed();
        return RoutesToAll(s, nodes, mode) && programmed == want;
      }));
    }
  }

  Pod& pod(int i) { return cluster_->pods()[i]; }
  int PodIndex(const std::string& name) {
    for (size_t i = 0; i < cluster_->pods().size(); ++i) {
      if (cluster_->pods()[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }

  // Every pod connects to every other pod over TCP and gets the right pod's answer.
  void ExpectAllPairs() {
    for (Pod& src : cluster_->pods()) {
      for (Pod& dst : cluster_->pods()) {
        if (&src == &dst) continue;
        absl::StatusOr<std::string> who = WhoAnswers(src.ns->path(), dst.ip, kPodPort);
        ASSERT_TRUE(who.ok()) << src.name << " -> " << dst.name << " (" << dst.ip
                              << "): " << who.status();
        EXPECT_EQ(*who, dst.name) << src.name << " -> " << dst.ip;
      }
    }
  }

  // Every pod connects to every other pod over IPv6 TCP and gets the right pod's answer.
  void ExpectAllPairsV6() {
    for (Pod& src : cluster_->pods()) {
      for (Pod& dst : cluster_->pods()) {
        if (&src == &dst) continue;
        ASSERT_FALSE(dst.ip6.empty()) << dst.name << " has no IPv6 address";
        absl::StatusOr<std::string> who = WhoAnswers(src.ns->path(), dst.ip6, kPodPort);
        ASSERT_TRUE(who.ok()) << src.name << " -> " << dst.name << " (" << dst.ip6
                              << "): " << who.status();
        EXPECT_EQ(*who, dst.name) << src.name << " -> " << dst.ip6;
      }
    }
  }

  // TX packets of the VXLAN device of node i.
  uint64_t VxlanTxPackets(int i) {
    CommandResult r = cluster_->InNode(i, "cat /sys/class/net/cninet-vxlan/statistics/tx_packets");
    EXPECT_TRUE(r.ok()) << r.err;
    return r.ok() ? std::stoull(r.out) : 0;
  }

  std::unique_ptr<Cluster> cluster_;
};

}  // namespace cninet::agent::testing

#endif  // CNINET_TESTS_E2E_AGENT_CLUSTER_FIXTURE_H_
