#include "policy_fixtures.h"

#include <map>
#include <string>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"

namespace cninet::datapath::testing {
namespace {

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }

const char kPodMac[] = "02:00:00:00:00:01";
const char kHostMac[] = "02:00:00:00:00:02";

Bytes Tcp(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport,
          uint8_t flags) {
  return PacketBuilder().Ipv4(src, dst).Tcp(sport, dport, flags).Build();
}
Bytes Udp(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport) {
  return PacketBuilder().Ipv4(src, dst).Udp(sport, dport).Payload("query").Build();
}
// SCTP common header: ports as in UDP (the IP protocol byte is patched; the programs do not
// verify the IP header checksum).
Bytes Sctp(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport) {
  Bytes b = PacketBuilder().Ipv4(src, dst).Udp(sport, dport).Payload("sctp-chunks!").Build();
  return SetByte(b, 14 + 9, 132);
}
Bytes Echo(std::string_view src, std::string_view dst, uint16_t id) {
  return PacketBuilder().Ipv4(src, dst).IcmpEcho(id, 1).Payload("ping").Build();
}
Bytes Fragment(std::string_view src, std::string_view dst, uint16_t dport) {
  return PacketBuilder().Ipv4(src, dst).FragOff(0x2000).Tcp(45000, dport, kSyn).Build();
}

Bytes Tcp6(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport,
           uint8_t flags) {
  return PacketBuilder().Ipv6(src, dst).Tcp(sport, dport, flags).Build();
}
Bytes Udp6(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport) {
  return PacketBuilder().Ipv6(src, dst).Udp(sport, dport).Payload("query").Build();
}
// SCTP over IPv6: the Next Header byte patched as for IPv4 (no header checksum to break).
Bytes Sctp6(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport) {
  Bytes b = PacketBuilder().Ipv6(src, dst).Udp(sport, dport).Payload("sctp-chunks!").Build();
  return SetByte(b, 14 + 6, 132);
}
Bytes Echo6(std::string_view src, std::string_view dst, uint16_t id) {
  return PacketBuilder().Ipv6(src, dst).Icmpv6Echo(id, 1).Payload("ping").Build();
}
// A first fragment (fragment header, M set) of a TCP SYN.
Bytes Fragment6(std::string_view src, std::string_view dst, uint16_t dport) {
  return PacketBuilder().Ipv6(src, dst).Ipv6Fragment(0, true, 0x77).Tcp(45000, dport, kSyn).Build();
}

std::string Rule(int i) { return StrCat("policy web/", ptopo::kApiPolicy, " ingress[", i, "]"); }

PodInfo Pod(std::string ns, std::string name, std::string_view ip, Labels labels, bool local) {
  PodInfo p;
  p.namespace_name = std::move(ns);
  p.name = std::move(name);
  p.addresses = {Ip(ip)};
  p.labels = std::move(labels);
  p.local = local;
  return p;
}

absl::Status SetPolicy(Datapath& dp, const NetworkPolicy& p) {
  CNINET_RETURN_IF_ERROR(dp.policy().UpsertPolicy(p));
  return dp.policy().Apply().status();
}

}  // namespace

NetworkPolicy ApiPolicy() {
  NetworkPolicy p;
  p.namespace_name = "web";
  p.name = ptopo::kApiPolicy;
  p.pod_selector.match_labels = {{"role", "api"}};
  PolicyPeer frontends;
  frontends.pod_selector = LabelSelector{{{"role", "frontend"}}, {}};
  PolicyPeer ops;
  ops.namespace_selector = LabelSelector{{{"team", "ops"}}, {}};
  PolicyPeer block;
  block.ip_block =
      IPBlock{*cni::IPPrefix::Parse("198.51.0.0/16"), {*cni::IPPrefix::Parse("198.51.100.0/24")}};
  PolicyPeer docs;
  docs.ip_block = IPBlock{*cni::IPPrefix::Parse("203.0.113.0/24"), {}};
  p.ingress = {
      IngressRule{{frontends},
                  {PolicyPort{PolicyProtocol::kTcp, 80, 0}, {PolicyProtocol::kSctp, 3868, 0}}},
      IngressRule{{ops}, {PolicyPort{PolicyProtocol::kTcp, 8000, 8100}}},
      IngressRule{{block}, {PolicyPort{PolicyProtocol::kTcp, 443, 0}}},
      IngressRule{{docs}, {PolicyPort{PolicyProtocol::kUdp, 0, 0}}},
  };
  return p;
}

PolicySnapshot StandardPolicyWorld() {
  using namespace ptopo;
  PolicySnapshot s;
  s.namespaces = {NamespaceInfo{"web", {{"team", "web"}}, false}, NamespaceInfo{"other", {}, false},
                  NamespaceInfo{"ops", {{"team", "ops"}}, false}, NamespaceInfo{"iso", {}, true}};
  s.pods = {Pod("web", "api", kApi, {{"role", "api"}}, true),
            Pod("web", "fe", kFe, {{"role", "frontend"}}, true),
            Pod("other", "fe", kOther, {{"role", "frontend"}}, true),
            Pod("iso", "db", kIso1, {{"app", "db"}}, true),
            Pod("iso", "cache", kIso2, {{"app", "cache"}}, true),
            Pod("ops", "mon", kMon, {{"role", "monitor"}}, false)};
  s.policies = {ApiPolicy()};
  return s;
}

absl::Status ApplyStandardPolicySetup(Datapath& dp) {
  CNINET_RETURN_IF_ERROR(ApplyStandardSetup(dp));
  Service svc;
  svc.id = ptopo::kSvcIso;
  svc.frontends = {Frontend{Ip(ptopo::kVipIso), 5432, Protocol::kTcp, FrontendKind::kClusterIP}};
  svc.backends = {Backend{Ip(ptopo::kIso1), 5432}};
  svc.maglev_size = 251;
  CNINET_RETURN_IF_ERROR(dp.services().Upsert(svc));
  CNINET_RETURN_IF_ERROR(dp.policy().Replace(StandardPolicyWorld()));
  return dp.policy().Apply().status();
}

std::vector<PolicyFixture> StandardPolicyFixtures() {
  using namespace ptopo;
  std::vector<PolicyFixture> f;
  // A packet towards a pod through cn_to_pod.
  auto to_pod = [&](std::string name, std::string desc, Bytes in, int verdict, uint32_t reason,
                    std::string ep = {}, std::string rule = {}, uint32_t iif = kForwarded,
                    std::function<absl::Status(Datapath&)> before = nullptr) {
    PolicyFixture x;
    x.name = std::move(name);
    x.description = std::move(desc);
    x.input = std::move(in);
    x.ingress_ifindex = iif;
    x.expected_verdict = verdict;
    if (verdict == kTcOk) x.expected_output = x.input;  // never rewritten
    x.expected_reason = reason;
    x.counter_endpoint = std::move(ep);
    x.counter_rule = std::move(rule);
    x.before = std::move(before);
    f.push_back(std::move(x));
  };
  auto allow = [&](std::string name, std::string desc, Bytes in, std::string ep, std::string rule,
                   uint32_t reason = CN_R_PASS) {
    to_pod(std::move(name), std::move(desc), std::move(in), kTcOk, reason, std::move(ep),
           std::move(rule));
  };
  auto pass = [&](std::string name, std::string desc, Bytes in, uint32_t reason = CN_R_PASS) {
    to_pod(std::move(name), std::move(desc), std::move(in), kTcOk, reason);
  };
  auto deny = [&](std::string name, std::string desc, Bytes in, std::string ep,
                  uint32_t reason = CN_R_DROP_POLICY) {
    to_pod(std::move(name), std::move(desc), std::move(in), kTcShot, reason, std::move(ep),
           "denied");
  };
  // A packet from a pod through cn_from_pod (sets up conntrack for the rows after it).
  auto from_pod = [&](std::string name, std::string desc, Bytes in, int verdict, Bytes out,
                      uint32_t reason) {
    PolicyFixture x;
    x.name = std::move(name);
    x.description = std::move(desc);
    x.hook = Hook::kFromPod;
    x.input = std::move(in);
    x.expected_verdict = verdict;
    x.expected_output = std::move(out);
    x.expected_reason = reason;
    f.push_back(std::move(x));
  };

  // --- NetworkPolicy: podSelector, ports, established flows.
  allow("allow_pod_selector", "role=frontend of the same namespace to TCP 80 is admitted",
        Tcp(kFe, 40001, kApi, 80, kSyn), kApi, Rule(0));
  pass("established_after_admission", "later packets of the admitted flow pass via conntrack",
       Tcp(kFe, 40001, kApi, 80, kAck));
  deny("deny_other_namespace", "role=frontend of another namespace is not selected by podSelector",
       Tcp(kOther, 40002, kApi, 80, kSyn), kApi);
  deny("deny_other_port", "the admitted source on a port no rule lists",
       Tcp(kFe, 40003, kApi, 81, kSyn), kApi);
  // --- namespaceSelector + endPort (8000-8100 = blocks 8000-8063, 8064-8095, 8096-8099, 8100).
  allow("port_range_first", "first port of an endPort range (namespaceSelector team=ops)",
        Tcp(kMon, 40010, kApi, 8000, kSyn), kApi, Rule(1));
  allow("port_range_block_end", "last port of the range's first prefix block",
        Tcp(kMon, 40011, kApi, 8063, kSyn), kApi, Rule(1));
  allow("port_range_next_block", "first port of the next block", Tcp(kMon, 40012, kApi, 8064, kSyn),
        kApi, Rule(1));
  allow("port_range_last", "last port of the range", Tcp(kMon, 40013, kApi, 8100, kSyn), kApi,
        Rule(1));
  deny("port_range_below", "one below the range", Tcp(kMon, 40014, kApi, 7999, kSyn), kApi);
  deny("port_range_above", "one above the range", Tcp(kMon, 40015, kApi, 8101, kSyn), kApi);
  // --- ipBlock with except.
  allow("ipblock_inside", "an address of the block", Tcp("198.51.7.7", 40020, kApi, 443, kSyn),
        kApi, Rule(2));
  deny("ipblock_except", "an address of the block's except",
       Tcp(topo::kExternal, 40021, kApi, 443, kSyn), kApi);
  deny("ipblock_outside", "an address outside the block", Tcp("192.0.2.1", 40022, kApi, 443, kSyn),
       kApi);
  // --- protocols.
  allow("udp_any_port", "a UDP rule without a port admits every UDP port",
        Udp("203.0.113.5", 5000, kApi, 53), kApi, Rule(3));
  deny("udp_rule_not_tcp", "the UDP rule does not admit TCP",
       Tcp("203.0.113.5", 5001, kApi, 53, kSyn), kApi);
  allow("sctp_port", "an SCTP port rule (SCTP parsed for its port only)",
        Sctp(kFe, 40030, kApi, 3868), kApi, Rule(0));
  deny("sctp_other_port", "another SCTP port", Sctp(kFe, 40031, kApi, 3869), kApi);
  deny("icmp_not_admitted", "ICMP echo: no rule admits every protocol", Echo(kFe, kApi, 0x4001),
       kApi);
  deny("fragment_not_admitted", "a fragment carries no port: only any-port rules could admit it",
       Fragment(kFe, kApi, 80), kApi);

  // --- Replies of the pod's own flows.
  from_pod("pod_opens_flow", "the policy pod opens a connection (tracked by from-pod)",
           Tcp(kApi, 5555, kMon, 9000, kSyn), kTcOk, Tcp(kApi, 5555, kMon, 9000, kSyn), CN_R_PASS);
  pass("reply_to_pod_flow", "the reply enters although no rule admits its source",
       Tcp(kMon, 9000, kApi, 5555, kSyn | kAck));

  // --- Services: the check runs after DNAT, on the backend (isolation rule e).
  from_pod("service_dnat", "web/api -> ClusterIP of iso/db is DNATed by from-pod",
           Tcp(kApi, 5556, kVipIso, 5432, kSyn), kTcOk, Tcp(kApi, 5556, kIso1, 5432, kSyn),
           CN_R_DNAT);
  allow("service_flow_admitted", "the DNATed flow enters the isolated pod (via a service)",
        Tcp(kApi, 5556, kIso1, 5432, kSyn), kIso1, "via service");
  pass("service_flow_established", "its next packet passes via conntrack",
       Tcp(kApi, 5556, kIso1, 5432, kAck));
  from_pod("service_backend_reply", "the backend's reply is reverse-DNATed by from-pod",
           Tcp(kIso1, 5432, kApi, 5556, kSyn | kAck), kTcOk,
           Tcp(kVipIso, 5432, kApi, 5556, kSyn | kAck), CN_R_REV_DNAT);
  pass("reply_after_reverse_dnat", "the reverse-DNATed reply enters the policy pod",
       Tcp(kVipIso, 5432, kApi, 5556, kSyn | kAck));

  // --- Isolated namespace.
  deny("isolated_direct", "another namespace cannot reach an isolated pod directly",
       Tcp(kApi, 5557, kIso1, 5432, kSyn), kIso1, CN_R_DROP_ISOLATED);
  allow("isolated_same_namespace", "pods of the isolated namespace reach each other",
        Tcp(kIso2, 40040, kIso1, 5432, kSyn), kIso1, "isolation of namespace iso");
  allow("isolated_icmp_same_namespace", "any protocol within the namespace",
        Echo(kIso2, kIso1, 0x4002), kIso1, "isolation of namespace iso");
  allow("isolated_fragment_same_namespace", "fragments within the namespace",
        Fragment(kIso2, kIso1, 5432), kIso1, "isolation of namespace iso", CN_R_PASS_FRAGMENT);
  deny("isolated_ack_without_admission", "a non-SYN packet of a flow never admitted is checked",
       Tcp(kFe, 40041, kIso1, 5432, kAck), kIso1, CN_R_DROP_ISOLATED);

  // --- Host-originated traffic (kubelet probes) and unmanaged pods.
  to_pod("host_to_isolated_pod", "the node itself reaches an isolated pod",
         Tcp(topo::kNode, 40050, kIso1, 8080, kSyn), kTcOk, CN_R_PASS, kIso1, "from host",
         kFromHost);
  to_pod("host_to_policy_pod", "the node itself reaches a pod under NetworkPolicy on any port",
         Tcp(topo::kNode, 40051, kApi, 9999, kSyn), kTcOk, CN_R_PASS, kApi, "from host", kFromHost);
  pass("unmanaged_pod", "a pod no policy selects in a namespace not isolated accepts everything",
       Tcp("192.0.2.1", 40052, kOther, 1234, kSyn));

  // --- The datapath's own reject reaches a default-deny client.
  {
    PacketBuilder in;
    in.Ipv4(kApi, topo::kVipEmpty).Udp(42101, 53).Payload("query");
    Bytes icmp = PacketBuilder()
                     .Eth(kHostMac, kPodMac)
                     .Ipv4(topo::kVipEmpty, kApi)
                     .IpId(0)
                     .FragOff(0)
                     .IcmpError(3, 3, in.BuildL3())
                     .Build();
    from_pod("reject_from_service", "the policy pod calls a service without backends: rejected",
             in.Build(), kTcRedirect, icmp, CN_R_REJECT);
    pass("reject_reaches_client", "the ICMP unreachable from the service address enters", icmp);
    // TCP is answered with a reset from the service address (reject.h).
    Bytes syn = PacketBuilder().Ipv4(kApi, topo::kVipEmpty).Tcp(42102, 80, kSyn, 1000).Build();
    Bytes rst = PacketBuilder()
                    .Eth(kHostMac, kPodMac)
                    .Ipv4(topo::kVipEmpty, kApi)
                    .IpId(0)
                    .FragOff(0)
                    .Tcp(80, 42102, kRst | kAck, 0, 1001)
                    .Window(0)
                    .Build();
    from_pod("reset_from_service", "the policy pod opens TCP to a service without backends: reset",
             syn, kTcRedirect, rst, CN_R_REJECT);
    pass("reset_reaches_client", "the reset from the service address enters", rst);
  }

  // --- Hairpin: an isolated pod reaches its own Service (itself the only backend); the packet
  // comes back SNATed to the node address and is admitted (a pod can block neither itself nor its
  // node).
  from_pod("hairpin_from_isolated_pod", "the isolated pod calls its own Service: DNAT + SNAT",
           Tcp(kIso1, 45200, kVipIso, 5432, kSyn), kTcRedirect,
           PacketBuilder()
               .Eth(kHostMac, kPodMac)
               .Ipv4(topo::kNode, kIso1)
               .Tcp(45200, 5432, kSyn)
               .Build(),
           CN_R_DNAT);
  to_pod("hairpin_reaches_itself", "the hairpinned SYN from the node address enters the pod",
         Tcp(topo::kNode, 45200, kIso1, 5432, kSyn), kTcOk, CN_R_PASS, kIso1, "from host");

  // --- Pass-through and malformed.
  pass("ipv6_unmanaged_passed", "IPv6 to an address without an endpoint policy passes",
       PacketBuilder().Ipv6("fd00::1", "fd00::2").Udp(1, 2).Build(), CN_R_PASS);
  pass("arp_passed", "non-IP frames pass",
       PacketBuilder().EtherType(0x0806).Payload(std::string(28, '\x01')).Build(),
       CN_R_PASS_NON_IP);
  to_pod("malformed_dropped", "a malformed IPv4 header is dropped",
         SetByte(Tcp(kFe, 40060, kApi, 80, kSyn), 14, 0x44), kTcShot, CN_R_DROP_MALFORMED);

  // --- Policy changes apply to new connections.
  NetworkPolicy tightened = ApiPolicy();
  tightened.ingress.erase(tightened.ingress.begin());
  to_pod("tightened_established_continues",
         "after removing the frontend rule, the admitted connection continues",
         Tcp(kFe, 40001, kApi, 80, kAck), kTcOk, CN_R_PASS, {}, {}, kForwarded,
         [tightened](Datapath& dp) { return SetPolicy(dp, tightened); });
  deny("tightened_new_connection", "a new connection from the frontend is denied",
       Tcp(kFe, 40070, kApi, 80, kSyn), kApi);
  deny("tightened_reused_tuple", "a SYN reusing the admitted tuple is checked again (denied)",
       Tcp(kFe, 40001, kApi, 80, kSyn), kApi);
  to_pod("restored_new_connection", "restoring the rule admits new connections again",
         Tcp(kFe, 40071, kApi, 80, kSyn), kTcOk, CN_R_PASS, kApi, Rule(0), kForwarded,
         [](Datapath& dp) { return SetPolicy(dp, ApiPolicy()); });
  to_pod("isolation_lifted", "after the namespace stops being isolated, everyone may connect",
         Tcp(kFe, 40072, kIso1, 5432, kSyn), kTcOk, CN_R_PASS, {}, {}, kForwarded,
         [](Datapath& dp) -> absl::Status {
           CNINET_RETURN_IF_ERROR(dp.policy().UpsertNamespace(NamespaceInfo{"iso", {}, false}));
           return dp.policy().Apply().status();
         });
  return f;
}

NetworkPolicy DualStackApiPolicy() {
  NetworkPolicy p = ApiPolicy();
  PolicyPeer block6;
  block6.ip_block =
      IPBlock{*cni::IPPrefix::Parse(ptopo6::kBlock), {*cni::IPPrefix::Parse(ptopo6::kBlockExcept)}};
  PolicyPeer docs6;
  docs6.ip_block = IPBlock{*cni::IPPrefix::Parse(ptopo6::kDocs), {}};
  p.ingress[2].from.push_back(block6);
  p.ingress[3].from.push_back(docs6);
  return p;
}

PolicySnapshot StandardDualStackPolicyWorld() {
  PolicySnapshot s = StandardPolicyWorld();
  const std::map<std::string, std::string> v6 = {
      {ptopo::kApi, ptopo6::kApi},   {ptopo::kFe, ptopo6::kFe},     {ptopo::kOther, ptopo6::kOther},
      {ptopo::kIso1, ptopo6::kIso1}, {ptopo::kIso2, ptopo6::kIso2}, {ptopo::kMon, ptopo6::kMon}};
  for (auto& pod : s.pods) pod.addresses.push_back(Ip(v6.at(pod.addresses.at(0).ToString())));
  s.policies = {DualStackApiPolicy()};
  return s;
}

absl::Status ApplyStandardDualStackPolicySetup(Datapath& dp) {
  CNINET_RETURN_IF_ERROR(ApplyStandardSetup(dp));
  absl::Status v6 = ApplyStandardIpv6Setup(dp);
  Service svc;
  svc.id = ptopo::kSvcIso;
  svc.frontends = {Frontend{Ip(ptopo::kVipIso), 5432, Protocol::kTcp, FrontendKind::kClusterIP}};
  svc.backends = {Backend{Ip(ptopo::kIso1), 5432}};
  svc.maglev_size = 251;
  CNINET_RETURN_IF_ERROR(dp.services().Upsert(svc));
  Service svc6 = svc;
  svc6.id = ptopo6::kSvcIso;
  svc6.frontends = {Frontend{Ip(ptopo6::kVipIso), 5432, Protocol::kTcp, FrontendKind::kClusterIP}};
  svc6.backends = {Backend{Ip(ptopo6::kIso1), 5432}};
  absl::Status s6 = Annotate(dp.services().Upsert(svc6), "IPv6 service");
  if (v6.ok()) v6 = s6;
  CNINET_RETURN_IF_ERROR(dp.policy().Replace(StandardDualStackPolicyWorld()));
  CNINET_RETURN_IF_ERROR(dp.policy().Apply().status());
  return v6;
}

std::vector<PolicyFixture> StandardIpv6PolicyFixtures() {
  using namespace ptopo6;
  std::vector<PolicyFixture> f;
  // The twin's reason, verdict and hook default to its IPv4 row's.
  std::map<std::string, PolicyFixture> v4;
  for (auto& r : StandardPolicyFixtures()) v4[r.name] = r;
  auto row = [&](std::string twin, std::string desc, Bytes in) -> PolicyFixture& {
    const PolicyFixture& t = v4.at(twin);
    PolicyFixture x;
    x.name = StrCat("v6_", twin);
    x.description = std::move(desc);
    x.hook = t.hook;
    x.input = std::move(in);
    x.ingress_ifindex = t.ingress_ifindex;
    x.expected_verdict = t.expected_verdict;
    if (x.expected_verdict == kTcOk && x.hook == Hook::kToPod) x.expected_output = x.input;
    x.expected_reason = t.expected_reason;
    x.counter_rule = t.counter_rule;
    x.twin_of = std::move(twin);
    f.push_back(std::move(x));
    return f.back();
  };
  // A to-pod row whose per-endpoint counter is `ep`'s (the IPv4 row names the IPv4 address).
  auto to_pod = [&](std::string twin, std::string desc, Bytes in, std::string ep = {}) {
    row(std::move(twin), std::move(desc), std::move(in)).counter_endpoint = std::move(ep);
  };
  auto from_pod = [&](std::string twin, std::string desc, Bytes in, Bytes out) {
    row(std::move(twin), std::move(desc), std::move(in)).expected_output = std::move(out);
  };

  // --- NetworkPolicy: podSelector, ports, established flows.
  to_pod("allow_pod_selector", "role=frontend of the same namespace to TCP 80 is admitted",
         Tcp6(kFe, 40001, kApi, 80, kSyn), kApi);
  to_pod("established_after_admission", "later packets of the admitted flow pass via conntrack",
         Tcp6(kFe, 40001, kApi, 80, kAck));
  to_pod("deny_other_namespace",
         "role=frontend of another namespace is not selected by podSelector",
         Tcp6(kOther, 40002, kApi, 80, kSyn), kApi);
  to_pod("deny_other_port", "the admitted source on a port no rule lists",
         Tcp6(kFe, 40003, kApi, 81, kSyn), kApi);
  // --- namespaceSelector + endPort.
  to_pod("port_range_first", "first port of an endPort range (namespaceSelector team=ops)",
         Tcp6(kMon, 40010, kApi, 8000, kSyn), kApi);
  to_pod("port_range_block_end", "last port of the range's first prefix block",
         Tcp6(kMon, 40011, kApi, 8063, kSyn), kApi);
  to_pod("port_range_next_block", "first port of the next block",
         Tcp6(kMon, 40012, kApi, 8064, kSyn), kApi);
  to_pod("port_range_last", "last port of the range", Tcp6(kMon, 40013, kApi, 8100, kSyn), kApi);
  to_pod("port_range_below", "one below the range", Tcp6(kMon, 40014, kApi, 7999, kSyn), kApi);
  to_pod("port_range_above", "one above the range", Tcp6(kMon, 40015, kApi, 8101, kSyn), kApi);
  // --- ipBlock with except (IPv6 prefixes in the LPM trie).
  to_pod("ipblock_inside", "an address of the IPv6 block",
         Tcp6("2001:db8:51:7::7", 40020, kApi, 443, kSyn), kApi);
  to_pod("ipblock_except", "an address of the IPv6 block's except",
         Tcp6(topo6::kExternal, 40021, kApi, 443, kSyn), kApi);
  to_pod("ipblock_outside", "an address outside the IPv6 block",
         Tcp6("2001:db8:2::1", 40022, kApi, 443, kSyn), kApi);
  // --- protocols.
  to_pod("udp_any_port", "a UDP rule without a port admits every UDP port",
         Udp6("2001:db8:113::5", 5000, kApi, 53), kApi);
  to_pod("udp_rule_not_tcp", "the UDP rule does not admit TCP",
         Tcp6("2001:db8:113::5", 5001, kApi, 53, kSyn), kApi);
  to_pod("sctp_port", "an SCTP port rule (SCTP parsed for its port only)",
         Sctp6(kFe, 40030, kApi, 3868), kApi);
  to_pod("sctp_other_port", "another SCTP port", Sctp6(kFe, 40031, kApi, 3869), kApi);
  to_pod("icmp_not_admitted", "ICMPv6 echo: no rule admits every protocol",
         Echo6(kFe, kApi, 0x4001), kApi);
  to_pod("fragment_not_admitted",
         "an IPv6 fragment carries no port: only any-port rules could admit it",
         Fragment6(kFe, kApi, 80), kApi);

  // --- Replies of the pod's own flows.
  from_pod("pod_opens_flow", "the policy pod opens a connection (tracked by from-pod)",
           Tcp6(kApi, 5555, kMon, 9000, kSyn), Tcp6(kApi, 5555, kMon, 9000, kSyn));
  to_pod("reply_to_pod_flow", "the reply enters although no rule admits its source",
         Tcp6(kMon, 9000, kApi, 5555, kSyn | kAck));

  // --- Services: the check runs after DNAT, on the backend.
  from_pod("service_dnat", "web/api -> IPv6 ClusterIP of iso/db is DNATed by from-pod",
           Tcp6(kApi, 5556, kVipIso, 5432, kSyn), Tcp6(kApi, 5556, kIso1, 5432, kSyn));
  to_pod("service_flow_admitted", "the DNATed flow enters the isolated pod (via a service)",
         Tcp6(kApi, 5556, kIso1, 5432, kSyn), kIso1);
  to_pod("service_flow_established", "its next packet passes via conntrack",
         Tcp6(kApi, 5556, kIso1, 5432, kAck));
  from_pod("service_backend_reply", "the backend's reply is reverse-DNATed by from-pod",
           Tcp6(kIso1, 5432, kApi, 5556, kSyn | kAck),
           Tcp6(kVipIso, 5432, kApi, 5556, kSyn | kAck));
  to_pod("reply_after_reverse_dnat", "the reverse-DNATed reply enters the policy pod",
         Tcp6(kVipIso, 5432, kApi, 5556, kSyn | kAck));

  // --- Isolated namespace.
  to_pod("isolated_direct", "another namespace cannot reach an isolated pod directly",
         Tcp6(kApi, 5557, kIso1, 5432, kSyn), kIso1);
  to_pod("isolated_same_namespace", "pods of the isolated namespace reach each other",
         Tcp6(kIso2, 40040, kIso1, 5432, kSyn), kIso1);
  to_pod("isolated_icmp_same_namespace", "any protocol within the namespace (ICMPv6)",
         Echo6(kIso2, kIso1, 0x4002), kIso1);
  to_pod("isolated_fragment_same_namespace", "IPv6 fragments within the namespace",
         Fragment6(kIso2, kIso1, 5432), kIso1);
  to_pod("isolated_ack_without_admission", "a non-SYN packet of a flow never admitted is checked",
         Tcp6(kFe, 40041, kIso1, 5432, kAck), kIso1);

  // --- Host-originated traffic and unmanaged pods.
  to_pod("host_to_isolated_pod", "the node itself (IPv6 address) reaches an isolated pod",
         Tcp6(topo6::kNode, 40050, kIso1, 8080, kSyn), kIso1);
  to_pod("host_to_policy_pod", "the node itself reaches a pod under NetworkPolicy on any port",
         Tcp6(topo6::kNode, 40051, kApi, 9999, kSyn), kApi);
  to_pod("unmanaged_pod", "a pod no policy selects in a namespace not isolated accepts everything",
         Tcp6("2001:db8:2::1", 40052, kOther, 1234, kSyn));

  // --- The datapath's own reject (ICMPv6 port unreachable) reaches a default-deny client.
  {
    PacketBuilder in;
    in.Ipv6(kApi, topo6::kVipEmpty).Udp(42101, 53).Payload("query");
    Bytes icmp = PacketBuilder()
                     .Eth(kHostMac, kPodMac)
                     .Ipv6(topo6::kVipEmpty, kApi)
                     .Icmpv6Error(1, 4, in.BuildL3())
                     .Build();
    from_pod("reject_from_service", "the policy pod calls a service without backends: rejected",
             in.Build(), icmp);
    to_pod("reject_reaches_client", "the ICMPv6 unreachable from the service address enters", icmp);
    Bytes syn = PacketBuilder().Ipv6(kApi, topo6::kVipEmpty).Tcp(42102, 80, kSyn, 1000).Build();
    Bytes rst = PacketBuilder()
                    .Eth(kHostMac, kPodMac)
                    .Ipv6(topo6::kVipEmpty, kApi)
                    .Tcp(80, 42102, kRst | kAck, 0, 1001)
                    .Window(0)
                    .Build();
    from_pod("reset_from_service", "the policy pod opens TCP to a service without backends: reset",
             syn, rst);
    to_pod("reset_reaches_client", "the reset from the service address enters", rst);
  }

  // --- Hairpin through the isolated pod's own Service.
  from_pod("hairpin_from_isolated_pod", "the isolated pod calls its own Service: DNAT + SNAT",
           Tcp6(kIso1, 45200, kVipIso, 5432, kSyn),
           PacketBuilder()
               .Eth(kHostMac, kPodMac)
               .Ipv6(topo6::kNode, kIso1)
               .Tcp(45200, 5432, kSyn)
               .Build());
  to_pod("hairpin_reaches_itself", "the hairpinned SYN from the node address enters the pod",
         Tcp6(topo6::kNode, 45200, kIso1, 5432, kSyn), kIso1);

  // --- Pass-through and malformed.
  to_pod("arp_passed", "an NDP neighbour solicitation for the pod (ARP's twin) is not filtered",
         PacketBuilder().Ipv6("fe80::1", "ff02::1:ff00:21").NdpNeighborSolicit(kApi).Build());
  f.back().expected_reason = CN_R_PASS;
  to_pod("malformed_dropped", "a malformed IPv6 header (version 4) is dropped",
         SetByte(Tcp6(kFe, 40060, kApi, 80, kSyn), 14, 0x44));

  // --- Policy changes apply to new connections.
  NetworkPolicy tightened = DualStackApiPolicy();
  tightened.ingress.erase(tightened.ingress.begin());
  to_pod("tightened_established_continues",
         "after removing the frontend rule, the admitted connection continues",
         Tcp6(kFe, 40001, kApi, 80, kAck));
  f.back().before = [tightened](Datapath& dp) { return SetPolicy(dp, tightened); };
  to_pod("tightened_new_connection", "a new connection from the frontend is denied",
         Tcp6(kFe, 40070, kApi, 80, kSyn), kApi);
  to_pod("tightened_reused_tuple", "a SYN reusing the admitted tuple is checked again (denied)",
         Tcp6(kFe, 40001, kApi, 80, kSyn), kApi);
  to_pod("restored_new_connection", "restoring the rule admits new connections again",
         Tcp6(kFe, 40071, kApi, 80, kSyn), kApi);
  f.back().before = [](Datapath& dp) { return SetPolicy(dp, DualStackApiPolicy()); };
  to_pod("isolation_lifted", "after the namespace stops being isolated, everyone may connect",
         Tcp6(kFe, 40072, kIso1, 5432, kSyn));
  f.back().before = [](Datapath& dp) -> absl::Status {
    CNINET_RETURN_IF_ERROR(dp.policy().UpsertNamespace(NamespaceInfo{"iso", {}, false}));
    return dp.policy().Apply().status();
  };
  return f;
}

absl::Status RunPolicyFixture(Datapath& dp, const PolicyFixture& f) {
  if (f.before) CNINET_RETURN_IF_ERROR(Annotate(f.before(dp), StrCat(f.name, ": before")));
  CNINET_ASSIGN_OR_RETURN(std::vector<CounterValue> c0, dp.counters().Read());
  CNINET_ASSIGN_OR_RETURN(TestRunResult r, dp.TestRun(f.hook, f.input, 1, 0, f.ingress_ifindex));
  CNINET_ASSIGN_OR_RETURN(std::vector<CounterValue> c1, dp.counters().Read());
  const std::string what = StrCat(f.name, " (", f.description, ")");
  if (r.retval != f.expected_verdict)
    return absl::InternalError(StrCat(what, ": verdict ", r.retval, ", want ", f.expected_verdict));
  if (f.expected_output && r.packet != *f.expected_output) {
    return absl::InternalError(
        StrCat(what, ": output differs\n", HexDiff(r.packet, *f.expected_output)));
  }
  uint64_t verdicts = 0;
  std::string grew, wrong;
  for (size_t i = 0; i < c1.size(); ++i) {
    uint64_t d = c1[i].packets - c0[i].packets;
    if (d != 0) grew += StrCat(" ", c1[i].name, "+", d);
    if (c1[i].is_event) continue;
    verdicts += d;
    if (c1[i].reason == f.expected_reason && d != 1 && wrong.empty())
      wrong = StrCat(what, ": counter ", c1[i].name, " grew by ", d, ", want 1");
  }
  // (All counters are read first, so the message names the counter that did grow.)
  if (!wrong.empty()) return absl::InternalError(StrCat(wrong, "; counters:", grew));
  if (verdicts != 1)
    return absl::InternalError(StrCat(what, ": ", verdicts, " verdicts counted:", grew));
  return absl::OkStatus();
}

}  // namespace cninet::datapath::testing
