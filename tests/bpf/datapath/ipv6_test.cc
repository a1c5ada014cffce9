// IPv6 through the datapath with BPF_PROG_TEST_RUN: DNAT and reverse DNAT with valid checksums,
// ICMPv6 echo, the ICMPv6 reject, SNAT and its reverse, UDP without a checksum, extension
// headers, fragments, NDP and ICMPv6 errors. Packets are built here (the fixture table's IPv6 twins
// live in tests/bpf/fixtures); every translated packet's L4 checksum is recomputed from scratch.
#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/endpoints.h"
#include "cninet/datapath/service_table.h"
#include "cninet/datapath/tc.h"
#include "dp_test_util.h"
#include "fixtures.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

constexpr char kClient6[] = "fd00:244::10";
constexpr char kB1[] = "fd00:244::21";
constexpr char kB2[] = "fd00:244::22";
constexpr char kVip6[] = "fd00:96::10";       // svc 21: TCP 80 -> B1, B2 :8080 (Maglev)
constexpr char kVipEmpty6[] = "fd00:96::11";  // svc 22: TCP 80, no backends (reject)
constexpr char kVipPing6[] = "fd00:96::12";   // svc 23: ICMPv6 echo -> B1
constexpr char kNode6[] = "fd00:50::1";
constexpr char kOutside6[] = "2001:db8::80";
constexpr uint8_t kIcmp6 = 58, kTcpProto = 6, kUdpProto = 17;
constexpr size_t kEth = 14, kIp6 = 40;

std::array<uint8_t, 16> Addr(std::string_view s) { return cni::IPAddress::Parse(s)->bytes(); }

uint32_t Sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}

uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// The checksum of an IPv6 L4 segment over the pseudo-header (the checksum field counted as is).
uint16_t L4Checksum6(const uint8_t* src, const uint8_t* dst, uint8_t proto, const uint8_t* l4,
                     size_t len) {
  uint32_t sum = Sum16(src, 16);
  sum = Sum16(dst, 16, sum);
  sum += static_cast<uint32_t>(len >> 16) + static_cast<uint32_t>(len & 0xffff);
  sum += proto;
  return Fold(Sum16(l4, len, sum));
}

size_t CsumOffset(uint8_t proto) { return proto == kTcpProto ? 16 : proto == kUdpProto ? 6 : 2; }

// One IPv6 frame: Ethernet, the fixed header, extension headers (each 8 bytes: hop-by-hop 0,
// destination options 60, fragment 44) and an L4 segment whose checksum is filled in.
Bytes Frame6(std::string_view src, std::string_view dst, const std::vector<uint8_t>& ext,
             uint8_t proto, Bytes l4) {
  auto s = Addr(src), d = Addr(dst);
  if (proto == kTcpProto || proto == kUdpProto || proto == kIcmp6) {
    size_t off = CsumOffset(proto);
    l4[off] = l4[off + 1] = 0;
    uint16_t c = L4Checksum6(s.data(), d.data(), proto, l4.data(), l4.size());
    if (proto == kUdpProto && c == 0) c = 0xffff;
    l4[off] = static_cast<uint8_t>(c >> 8);
    l4[off + 1] = static_cast<uint8_t>(c);
  }
  Bytes out = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd};
  size_t payload = ext.size() * 8 + l4.size();
  Bytes ip(kIp6, 0);
  ip[0] = 0x60;
  ip[4] = static_cast<uint8_t>(payload >> 8);
  ip[5] = static_cast<uint8_t>(payload);
  ip[6] = ext.empty() ? proto : ext[0];
  ip[7] = 64;
  std::memcpy(&ip[8], s.data(), 16);
  std::memcpy(&ip[24], d.data(), 16);
  out.insert(out.end(), ip.begin(), ip.end());
  for (size_t i = 0; i < ext.size(); ++i) {
    uint8_t next = i + 1 < ext.size() ? ext[i + 1] : proto;
    Bytes h(8, 0);
    h[0] = next;
    if (ext[i] == 44) {
      h[3] = 0x01;  // offset 0, more fragments
      h[7] = 0x2a;  // identification
    } else {
      h[2] = 1;  // PadN option of 4 bytes
      h[3] = 4;
    }
    out.insert(out.end(), h.begin(), h.end());
  }
  out.insert(out.end(), l4.begin(), l4.end());
  return out;
}

Bytes Tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  Bytes t(20, 0);
  t[0] = static_cast<uint8_t>(sport >> 8);
  t[1] = static_cast<uint8_t>(sport);
  t[2] = static_cast<uint8_t>(dport >> 8);
  t[3] = static_cast<uint8_t>(dport);
  t[7] = 1;  // seq
  t[12] = 5 << 4;
  t[13] = flags;
  t[14] = 0xff;  // window
  return t;
}

Bytes Udp(uint16_t sport, uint16_t dport, std::string_view payload) {
  Bytes u(8, 0);
  u[0] = static_cast<uint8_t>(sport >> 8);
  u[1] = static_cast<uint8_t>(sport);
  u[2] = static_cast<uint8_t>(dport >> 8);
  u[3] = static_cast<uint8_t>(dport);
  size_t len = 8 + payload.size();
  u[4] = static_cast<uint8_t>(len >> 8);
  u[5] = static_cast<uint8_t>(len);
  u.insert(u.end(), payload.begin(), payload.end());
  return u;
}

Bytes Icmp6(uint8_t type, uint8_t code, uint16_t id, uint16_t seq, const Bytes& body = {}) {
  Bytes i = {type,
             code,
             0,
             0,
             static_cast<uint8_t>(id >> 8),
             static_cast<uint8_t>(id),
             static_cast<uint8_t>(seq >> 8),
             static_cast<uint8_t>(seq)};
  i.insert(i.end(), body.begin(), body.end());
  return i;
}

// The parsed view of an output frame (no extension headers unless `l4_off` is given).
struct View {
  std::string src, dst;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;
  bool csum_ok = false;
};

View Parse(const Bytes& f, size_t l4_off = kEth + kIp6) {
  View v;
  if (f.size() < l4_off + 8) return v;
  v.src = cni::IPAddress::FromBytes(&f[kEth + 8], 16).ToString();
  v.dst = cni::IPAddress::FromBytes(&f[kEth + 24], 16).ToString();
  v.proto = l4_off == kEth + kIp6 ? f[kEth + 6] : f[l4_off - 8];
  v.sport = static_cast<uint16_t>(f[l4_off] << 8 | f[l4_off + 1]);
  v.dport = static_cast<uint16_t>(f[l4_off + 2] << 8 | f[l4_off + 3]);
  size_t payload = static_cast<size_t>(f[kEth + 4] << 8 | f[kEth + 5]);
  size_t l4_len = kEth + kIp6 + payload - l4_off;
  if (l4_off + l4_len > f.size()) return v;
  v.csum_ok = L4Checksum6(&f[kEth + 8], &f[kEth + 24], v.proto, &f[l4_off], l4_len) == 0;
  return v;
}

class Ipv6Test : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    guard_ = std::make_unique<ThreadNetnsGuard>(ns_.path());
    ASSERT_TRUE(guard_->status().ok()) << guard_->status();
    DatapathConfig c = StandardConfig();
    c.cluster_cidrs = {*cni::IPPrefix::Parse("10.244.0.0/16"),
                       *cni::IPPrefix::Parse("fd00:244::/64")};
    c.node_addresses = {*cni::IPAddress::Parse(topo::kNode), *cni::IPAddress::Parse(kNode6)};
    auto dp = Datapath::Create(c);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    auto ip = [](std::string_view s) { return *cni::IPAddress::Parse(s); };
    Service web;
    web.id = 21;
    web.frontends = {Frontend{ip(kVip6), 80, Protocol::kTcp, FrontendKind::kClusterIP}};
    web.backends = {Backend{ip(kB1), 8080}, Backend{ip(kB2), 8080}};
    ASSERT_TRUE(dp_->services().Upsert(web).ok());
    Service empty;
    empty.id = 22;
    empty.frontends = {Frontend{ip(kVipEmpty6), 80, Protocol::kTcp, FrontendKind::kClusterIP}};
    ASSERT_TRUE(dp_->services().Upsert(empty).ok());
    Service ping;
    ping.id = 23;
    ping.frontends = {Frontend{ip(kVipPing6), 0, Protocol::kIcmpV6, FrontendKind::kClusterIP}};
    ping.backends = {Backend{ip(kB1), 0}};
    ASSERT_TRUE(dp_->services().Upsert(ping).ok());
    for (const char* a : {kClient6, kB1, kB2})
      ASSERT_TRUE(dp_->endpoints().Upsert(Endpoint{ip(a), 1, {2, 0, 0, 0, 0, 1}}).ok());
  }

  TestRunResult Run(Hook hook, const Bytes& in) {
    auto r = dp_->TestRun(hook, in);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : TestRunResult{};
  }

  uint64_t Count(uint32_t reason) {
    auto n = dp_->counters().Packets(reason);
    return n.ok() ? *n : 0;
  }

  cninet::testing::ScopedNetns ns_{"dpv6"};
  std::unique_ptr<ThreadNetnsGuard> guard_;
  std::unique_ptr<Datapath> dp_;
};

TEST_F(Ipv6Test, ClusterIpDnatAndReverseWithValidChecksums) {
  Bytes syn = Frame6(kClient6, kVip6, {}, kTcpProto, Tcp(40000, 80, kSyn));
  TestRunResult r = Run(Hook::kFromPod, syn);
  EXPECT_EQ(r.retval, kTcOk);
  View v = Parse(r.packet);
  FlowTuple t{*cni::IPAddress::Parse(kClient6), *cni::IPAddress::Parse(kVip6), 40000, 80,
              Protocol::kTcp};
  auto want = dp_->services().PredictBackend(21, t);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(v.src, kClient6);
  EXPECT_EQ(v.dst, want->address.ToString());
  EXPECT_EQ(v.dport, 8080);
  EXPECT_TRUE(v.csum_ok) << HexDiff(r.packet, syn);
  EXPECT_EQ(Count(CN_R_DNAT), 1u);

  // The backend's reply leaves with the service address and port, checksum intact.
  Bytes reply =
      Frame6(want->address.ToString(), kClient6, {}, kTcpProto, Tcp(8080, 40000, kSyn | kAck));
  r = Run(Hook::kFromPod, reply);
  EXPECT_EQ(r.retval, kTcOk);
  v = Parse(r.packet);
  EXPECT_EQ(v.src, kVip6);
  EXPECT_EQ(v.sport, 80);
  EXPECT_EQ(v.dst, kClient6);
  EXPECT_TRUE(v.csum_ok);
  EXPECT_EQ(Count(CN_R_REV_DNAT), 1u);

  // The conntrack table lists the flow with IPv6 addresses.
  auto ct = dp_->conntrack().Dump();
  ASSERT_TRUE(ct.ok());
  bool found = false;
  for (const auto& e : *ct)
    found |= !e.reply && e.tuple.dst.ToString() == kVip6 && e.nat_address == want->address;
  EXPECT_TRUE(found);
}

TEST_F(Ipv6Test, Icmpv6EchoIsTrackedById) {
  Bytes req = Frame6(kClient6, kVipPing6, {}, kIcmp6, Icmp6(128, 0, 0x1234, 1));
  TestRunResult r = Run(Hook::kFromPod, req);
  View v = Parse(r.packet);
  EXPECT_EQ(v.dst, kB1);
  EXPECT_TRUE(v.csum_ok);
  Bytes rep = Frame6(kB1, kClient6, {}, kIcmp6, Icmp6(129, 0, 0x1234, 1));
  r = Run(Hook::kFromPod, rep);
  v = Parse(r.packet);
  EXPECT_EQ(v.src, kVipPing6);
  EXPECT_TRUE(v.csum_ok);
  EXPECT_EQ(Count(CN_R_DNAT), 1u);
  EXPECT_EQ(Count(CN_R_REV_DNAT), 1u);
}

TEST_F(Ipv6Test, NoBackendResetsTcpFromTheServiceAddress) {
  Bytes syn = Frame6(kClient6, kVipEmpty6, {}, kTcpProto, Tcp(40001, 80, kSyn));
  TestRunResult r = Run(Hook::kFromPod, syn);
  EXPECT_EQ(r.retval, kTcRedirect);
  // A bare reset (IPv6 + 20 bytes of TCP) from the service port to the client's.
  ASSERT_EQ(r.packet.size(), kEth + kIp6 + 20);
  View v = Parse(r.packet);
  EXPECT_EQ(v.src, kVipEmpty6);
  EXPECT_EQ(v.dst, kClient6);
  EXPECT_EQ(v.proto, kTcpProto);
  EXPECT_EQ(v.sport, 80);
  EXPECT_EQ(v.dport, 40001);
  EXPECT_EQ(r.packet[kEth + kIp6 + 13], kRst | kAck);
  EXPECT_TRUE(v.csum_ok);
  EXPECT_EQ(Count(CN_R_REJECT), 1u);
}

TEST_F(Ipv6Test, MasqueradeAndReverseSnat) {
  Bytes out = Frame6(kClient6, kOutside6, {}, kUdpProto, Udp(5000, 53, "query"));
  TestRunResult r = Run(Hook::kToWorld, out);
  EXPECT_EQ(r.retval, kTcOk);
  View v = Parse(r.packet);
  EXPECT_EQ(v.src, kNode6);
  EXPECT_EQ(v.dst, kOutside6);
  EXPECT_TRUE(v.csum_ok);
  EXPECT_EQ(Count(CN_R_SNAT), 1u);

  Bytes back = Frame6(kOutside6, kNode6, {}, kUdpProto, Udp(53, v.sport, "answer"));
  r = Run(Hook::kFromWorld, back);
  EXPECT_EQ(r.retval, kTcOk);
  View b = Parse(r.packet);
  EXPECT_EQ(b.dst, kClient6);
  EXPECT_EQ(b.dport, 5000);
  EXPECT_TRUE(b.csum_ok);
  EXPECT_EQ(Count(CN_R_REV_SNAT), 1u);

  // Traffic inside the IPv6 cluster CIDR is not masqueraded.
  Bytes inside = Frame6(kClient6, kB1, {}, kUdpProto, Udp(5001, 53, "x"));
  r = Run(Hook::kToWorld, inside);
  EXPECT_EQ(r.packet, inside);
}

// UDP with checksum 0 is invalid over IPv6 (RFC 8200 8.1): the translation paths drop it (no
// mapping is created), while untranslated UDP passes untouched (RFC 6935 tunnels on the uplink).
TEST_F(Ipv6Test, UdpWithoutChecksumIsDroppedOnlyWhereTranslated) {
  const size_t csum = kEth + kIp6 + 6;
  auto no_csum = [&](Bytes b) {
    b[csum] = 0;
    b[csum + 1] = 0;
    return b;
  };
  TestRunResult r =
      Run(Hook::kToWorld, no_csum(Frame6(kClient6, kOutside6, {}, kUdpProto, Udp(5003, 53, "q"))));
  EXPECT_EQ(r.retval, kTcShot) << "masquerade";
  EXPECT_EQ(Count(CN_R_DROP_MALFORMED), 1u);
  EXPECT_EQ(Count(CN_R_SNAT), 0u);

  // A masqueraded flow whose reply comes back without a checksum: not reverse-translated.
  Bytes out = Frame6(kClient6, kOutside6, {}, kUdpProto, Udp(5004, 53, "query"));
  r = Run(Hook::kToWorld, out);
  View v = Parse(r.packet);
  ASSERT_EQ(v.src, kNode6);
  r = Run(Hook::kFromWorld,
          no_csum(Frame6(kOutside6, kNode6, {}, kUdpProto, Udp(53, v.sport, "answer"))));
  EXPECT_EQ(r.retval, kTcShot) << "reverse SNAT";
  EXPECT_EQ(Count(CN_R_DROP_MALFORMED), 2u);
  EXPECT_EQ(Count(CN_R_REV_SNAT), 0u);

  // A VXLAN datagram to the node without a checksum passes untouched.
  Bytes vxlan = no_csum(Frame6(kOutside6, kNode6, {}, kUdpProto, Udp(40000, 4789, "vxlan")));
  r = Run(Hook::kFromWorld, vxlan);
  EXPECT_EQ(r.retval, kTcOk);
  EXPECT_EQ(r.packet, vxlan);
  EXPECT_EQ(Count(CN_R_DROP_MALFORMED), 2u);
}

TEST_F(Ipv6Test, ExtensionHeadersAreWalkedToTheL4Header) {
  // Hop-by-hop + destination options before TCP: translated like a plain packet.
  Bytes syn = Frame6(kClient6, kVip6, {0, 60}, kTcpProto, Tcp(40002, 80, kSyn));
  TestRunResult r = Run(Hook::kFromPod, syn);
  EXPECT_EQ(r.retval, kTcOk);
  View v = Parse(r.packet, kEth + kIp6 + 16);
  EXPECT_EQ(v.dport, 8080);
  EXPECT_TRUE(v.dst == kB1 || v.dst == kB2) << v.dst;
  EXPECT_TRUE(v.csum_ok);

  // Five extension headers are more than the parser walks: passed untranslated, counted.
  Bytes deep = Frame6(kClient6, kVip6, {0, 60, 60, 60, 60}, kTcpProto, Tcp(40003, 80, kSyn));
  r = Run(Hook::kFromPod, deep);
  EXPECT_EQ(r.retval, kTcOk);
  EXPECT_EQ(r.packet, deep);
  EXPECT_EQ(Count(CN_R_PASS_IPV6), 1u);
}

TEST_F(Ipv6Test, FragmentsAndNdpPassUntouched) {
  Bytes frag = Frame6(kClient6, kVip6, {44}, kUdpProto, Udp(5002, 80, "fragment"));
  TestRunResult r = Run(Hook::kFromPod, frag);
  EXPECT_EQ(r.retval, kTcOk);
  EXPECT_EQ(r.packet, frag);
  EXPECT_EQ(Count(CN_R_PASS_FRAGMENT), 1u);

  // Neighbour solicitation (135): NDP is never translated.
  Bytes body(20, 0);
  auto target = Addr(kVip6);
  std::memcpy(&body[4], target.data(), 16);
  Bytes ns = Frame6(kClient6, "ff02::1:ff00:10", {}, kIcmp6, Icmp6(135, 0, 0, 0, body));
  r = Run(Hook::kFromPod, ns);
  EXPECT_EQ(r.retval, kTcOk);
  EXPECT_EQ(r.packet, ns);
  EXPECT_EQ(Count(CN_R_ICMP6_CONTROL), 1u);
  r = Run(Hook::kToPod, ns);
  EXPECT_EQ(r.packet, ns);
  EXPECT_EQ(Count(CN_R_ICMP6_CONTROL), 2u);
}

TEST_F(Ipv6Test, Icmpv6ErrorFromBackendIsTranslatedForItsFlow) {
  Bytes syn = Frame6(kClient6, kVip6, {}, kTcpProto, Tcp(40004, 80, kSyn));
  TestRunResult r = Run(Hook::kFromPod, syn);
  View v = Parse(r.packet);
  ASSERT_EQ(v.dport, 8080);
  // The backend answers with "packet too big" quoting the client's packet as it arrived there.
  Bytes quoted(r.packet.begin() + kEth, r.packet.begin() + kEth + kIp6 + 8);
  Bytes body = {0, 0, 0x05, 0x00};  // MTU 1280 (the 4 bytes after the ICMPv6 header's first 4)
  Bytes icmp = Icmp6(2, 0, 0, 0x0500);
  icmp.insert(icmp.end(), quoted.begin(), quoted.end());
  Bytes err = Frame6(v.dst, kClient6, {}, kIcmp6, icmp);
  r = Run(Hook::kFromPod, err);
  EXPECT_EQ(r.retval, kTcOk);
  View e = Parse(r.packet);
  EXPECT_EQ(e.src, kVip6) << "the error comes from the service address";
  EXPECT_TRUE(e.csum_ok);
  // The quoted destination is the service again.
  EXPECT_EQ(cni::IPAddress::FromBytes(&r.packet[kEth + kIp6 + 8 + 24], 16).ToString(), kVip6);
  EXPECT_EQ(r.packet[kEth + kIp6 + 8 + kIp6 + 2], 0);
  EXPECT_EQ(r.packet[kEth + kIp6 + 8 + kIp6 + 3], 80);
  EXPECT_EQ(Count(CN_R_ICMP_ERROR_XLATED), 1u);
}

TEST_F(Ipv6Test, ServiceTableRefusesMixedFamilies) {
  Service bad;
  bad.id = 30;
  bad.frontends = {
      Frontend{*cni::IPAddress::Parse(kVip6), 80, Protocol::kTcp, FrontendKind::kClusterIP}};
  bad.backends = {Backend{*cni::IPAddress::Parse("10.244.1.21"), 8080}};
  EXPECT_EQ(dp_->services().Upsert(bad).code(), absl::StatusCode::kInvalidArgument);
  auto got = dp_->services().Get(21);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->frontends[0].address.ToString(), kVip6);
  EXPECT_EQ(got->backends[0].ToString().front(), '[') << "IPv6 backends print as [addr]:port";
}

// Both families in one program each stay far below the verifier's limit; the counts are the
// ones bpf/README.md reports.
TEST_F(Ipv6Test, ProgramsStayFarBelowTheVerifierLimit) {
  for (Hook h : {Hook::kFromPod, Hook::kFromWorld, Hook::kToWorld, Hook::kToPod}) {
    auto st = dp_->Stats(h);
    ASSERT_TRUE(st.ok()) << st.status();
    std::printf("verified instructions %s: %u\n", std::string(HookName(h)).c_str(),
                st->verified_insns);
    EXPECT_LT(st->verified_insns, 200000u);
  }
}

}  // namespace
}  // namespace cninet::datapath::testing
