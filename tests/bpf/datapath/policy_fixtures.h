// Packet fixtures for the ingress policy (cn_to_pod) on top of the standard datapath setup
// (fixtures.h): a policy world (namespaces, pods, a NetworkPolicy, an isolated namespace, a
// service into it) and a table of packets with their expected verdict and counter reason.
// The BPF tests run the table through BPF_PROG_TEST_RUN; bench/policy reuses the world.
//
// IPv6 (issue 14): StandardIpv6PolicyFixtures() twins every IPv4 row over a dual-stack world (each
// pod has an IPv4 and an IPv6 address; the ipBlock rules list a v6 prefix beside the v4 one).
// They run with the IPv4 rows and check the same verdicts, bytes and per-rule counters.
#ifndef CNINET_TESTS_BPF_DATAPATH_POLICY_FIXTURES_H_
#define CNINET_TESTS_BPF_DATAPATH_POLICY_FIXTURES_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/policy_types.h"
#include "fixtures.h"

namespace cninet::datapath::testing {

// skb_iif of a packet forwarded to the pod (any non-zero ifindex; 1 = lo); 0 = sent by the host.
inline constexpr uint32_t kForwarded = 1;
inline constexpr uint32_t kFromHost = 0;

// The policy world (addresses from topo::).
namespace ptopo {
inline constexpr char kApi[] = "10.244.1.21";    // web/api role=api (= topo::kB1), policy
inline constexpr char kFe[] = "10.244.1.10";     // web/fe role=frontend (= topo::kClient)
inline constexpr char kOther[] = "10.244.1.11";  // other/fe role=frontend (= topo::kClient2)
inline constexpr char kIso1[] = "10.244.1.22";   // iso/db (isolated namespace, = topo::kB2)
inline constexpr char kIso2[] = "10.244.1.23";   // iso/cache (= topo::kB3)
inline constexpr char kMon[] = "10.244.2.31";    // ops/mon on another node (= topo::kRemote)
inline constexpr char kVipIso[] = "10.96.0.50";  // service 20: TCP 5432 -> iso/db:5432
inline constexpr uint32_t kSvcIso = 20;
inline constexpr char kApiPolicy[] = "api-ingress";
}  // namespace ptopo

// The IPv6 addresses of the same pods (from topo6::) and service.
namespace ptopo6 {
inline constexpr char kApi[] = "fd00:10:244:1::21";    // web/api (= topo6::kB1)
inline constexpr char kFe[] = "fd00:10:244:1::10";     // web/fe (= topo6::kClient)
inline constexpr char kOther[] = "fd00:10:244:1::11";  // other/fe (= topo6::kClient2)
inline constexpr char kIso1[] = "fd00:10:244:1::22";   // iso/db (= topo6::kB2)
inline constexpr char kIso2[] = "fd00:10:244:1::23";   // iso/cache (= topo6::kB3)
inline constexpr char kMon[] = "fd00:10:244:2::31";    // ops/mon (= topo6::kRemote)
inline constexpr char kVipIso[] = "fd00:10:96::50";    // service 120: TCP 5432 -> iso/db:5432
inline constexpr uint32_t kSvcIso = 120;
// ipBlock twins: 2001:db8:51::/48 except 2001:db8:51:100::/56 (topo6::kExternal is in the
// except), and 2001:db8:113::/48.
inline constexpr char kBlock[] = "2001:db8:51::/48";
inline constexpr char kBlockExcept[] = "2001:db8:51:100::/56";
inline constexpr char kDocs[] = "2001:db8:113::/48";
}  // namespace ptopo6

// web/api-ingress: pods role=api admit
//   ingress[0] from pods role=frontend (same namespace) to TCP 80 and SCTP 3868
//   ingress[1] from namespaces team=ops to TCP 8000-8100
//   ingress[2] from ipBlock 198.51.0.0/16 except 198.51.100.0/24 to TCP 443
//   ingress[3] from ipBlock 203.0.113.0/24 to every UDP port
NetworkPolicy ApiPolicy();
// Namespaces web, other, ops (team=ops), iso (isolated); the pods above; ApiPolicy().
PolicySnapshot StandardPolicyWorld();
// ApplyStandardSetup() + service 20 + StandardPolicyWorld() applied through dp.policy().
absl::Status ApplyStandardPolicySetup(Datapath& dp);
// ApiPolicy() whose ipBlock rules (ingress[2], ingress[3]) also list the ptopo6 prefixes.
NetworkPolicy DualStackApiPolicy();
// StandardPolicyWorld() with every pod dual-stack (ptopo6 addresses) and DualStackApiPolicy().
PolicySnapshot StandardDualStackPolicyWorld();
// ApplyStandardPolicySetup()'s steps for both families: the IPv4 setup (its error returned at
// once), then ApplyStandardIpv6Setup() and service 120 (their first error returned after all steps
// ran), the dual-stack world applied.
absl::Status ApplyStandardDualStackPolicySetup(Datapath& dp);

// One row of the policy table.
struct PolicyFixture {
  std::string name;         // unique id
  std::string description;  // what it shows
  Hook hook = Hook::kToPod;
  Bytes input;
  uint32_t ingress_ifindex = kForwarded;
  int expected_verdict = kTcOk;
  // Passes through to-pod leave the packet untouched; from-pod rows give their output here.
  std::optional<Bytes> expected_output;
  uint32_t expected_reason = 0;  // enum cn_reason the packet is counted under
  // Per-endpoint counter that must count this packet: (pod address, rule description).
  std::string counter_endpoint;
  std::string counter_rule;
  std::function<absl::Status(Datapath&)> before;  // state change applied first
  std::string twin_of;  // IPv6 rows: the IPv4 row this one twins ("" for IPv6-only rows)
};

// The table, in order (later rows depend on state earlier rows created).
std::vector<PolicyFixture> StandardPolicyFixtures();
// The IPv6 twins over ApplyStandardDualStackPolicySetup() (see the header comment), in order.
std::vector<PolicyFixture> StandardIpv6PolicyFixtures();
// Runs one row: applies `before`, runs the packet, compares the verdict, the output bytes and
// the verdict counter (which must grow by exactly one).
absl::Status RunPolicyFixture(Datapath& dp, const PolicyFixture& f);

}  // namespace cninet::datapath::testing

#endif  // CNINET_TESTS_BPF_DATAPATH_POLICY_FIXTURES_H_
