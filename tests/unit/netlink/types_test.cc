// Pure-logic tests of the netlink component's value types (no kernel involved).
#include "cninet/netlink/types.h"

#include <set>

#include "cninet/netlink/sysctl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::netlink {
namespace {

using ::testing::HasSubstr;

TEST(MacAddressTest, ParsesAndFormats) {
  auto m = MacAddress::Parse("0A:58:0a:F4:01:02");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->ToString(), "0a:58:0a:f4:01:02");
  EXPECT_EQ(m->bytes()[3], 0xf4);
  auto dashed = MacAddress::Parse("0a-58-0a-f4-01-02");
  ASSERT_TRUE(dashed.ok());
  EXPECT_EQ(*dashed, *m);
  EXPECT_TRUE(m->IsUnicast());
  EXPECT_FALSE(m->IsZero());
  EXPECT_TRUE(MacAddress().IsZero());
  EXPECT_EQ(MacAddress().ToString(), "00:00:00:00:00:00");
}

TEST(MacAddressTest, RejectsMalformed) {
  for (const char* bad : {"", "0a:58:0a:f4:01", "0a:58:0a:f4:01:0g", "0a:58-0a:f4:01:02",
                          "0a:58:0a:f4:01:02:03", "0a5:8:0a:f4:01:02", "zz:zz:zz:zz:zz:zz"}) {
    auto m = MacAddress::Parse(bad);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(MacAddressTest, RandomLocalIsUnicastAndLocallyAdministered) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    MacAddress m = MacAddress::RandomLocal();
    EXPECT_TRUE(m.IsUnicast()) << m.ToString();
    EXPECT_EQ(m.bytes()[0] & 0x02, 0x02) << m.ToString();
    seen.insert(m.ToString());
  }
  EXPECT_GT(seen.size(), 60u);  // 48 random bits: collisions would point at a broken source.
}

TEST(LinkNameTest, Validates) {
  EXPECT_TRUE(ValidateLinkName("eth0").ok());
  EXPECT_TRUE(ValidateLinkName("abcdefghijklmno").ok());  // 15 bytes.
  EXPECT_THAT(ValidateLinkName("abcdefghijklmnop").message(), HasSubstr("15"));
  EXPECT_EQ(ValidateLinkName("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateLinkName("a/b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateLinkName("a:b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateLinkName("a b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateLinkName("..").code(), absl::StatusCode::kInvalidArgument);
}

TEST(VethNameTest, StableDistinctAndValid) {
  std::string a = VethNameFor("0123456789abcdef", "eth0");
  EXPECT_EQ(a, VethNameFor("0123456789abcdef", "eth0"));
  EXPECT_NE(a, VethNameFor("0123456789abcdef", "eth1"));
  EXPECT_NE(a, VethNameFor("0123456789abcdee", "eth0"));
  EXPECT_EQ(a.size(), 12u);
  EXPECT_EQ(a.substr(0, 4), "veth");
  EXPECT_TRUE(ValidateLinkName(a).ok());
  // A long prefix is cut so the name still fits IFNAMSIZ.
  std::string b = VethNameFor("c", "eth0", "averylongprefix");
  EXPECT_EQ(b.size(), 15u);
  EXPECT_TRUE(ValidateLinkName(b).ok());
}

TEST(SpecTest, VethValidation) {
  VethSpec s{.name = "veth1", .peer_name = "eth0"};
  EXPECT_TRUE(s.Validate().ok());
  s.mtu = 67;
  EXPECT_THAT(s.Validate().message(), HasSubstr("MTU 67"));
  s.mtu = 65536;
  EXPECT_FALSE(s.Validate().ok());
  s.mtu = 9000;
  s.mac = *MacAddress::Parse("01:00:5e:00:00:01");  // Multicast.
  EXPECT_THAT(s.Validate().message(), HasSubstr("unicast"));
  s.mac.reset();
  s.peer_name = "veth1";  // Same namespace, same name.
  EXPECT_FALSE(s.Validate().ok());
}

TEST(SpecTest, VxlanValidation) {
  VxlanSpec v{.name = "vx0", .vni = 1};
  EXPECT_TRUE(v.Validate().ok());
  v.vni = 0;
  EXPECT_FALSE(v.Validate().ok());
  v.vni = 0x1000000;
  EXPECT_FALSE(v.Validate().ok());
  v.vni = 0xffffff;
  v.port = 0;
  EXPECT_FALSE(v.Validate().ok());
}

TEST(RouteTest, EffectiveScopeFollowsIproute2) {
  Route r;
  r.dst = *cni::IPPrefix::Parse("10.0.0.0/24");
  EXPECT_EQ(r.EffectiveScope(), kScopeLink);
  r.gateway = *cni::IPAddress::Parse("10.0.1.1");
  EXPECT_EQ(r.EffectiveScope(), kScopeUniverse);
  r.scope = kScopeHost;
  EXPECT_EQ(r.EffectiveScope(), kScopeHost);
  r.scope.reset();
  r.gateway.reset();
  r.type = 2;  // RTN_LOCAL
  EXPECT_EQ(r.EffectiveScope(), kScopeHost);
}

TEST(RouteTest, ToStringNamesTheFields) {
  Route r;
  r.dst = *cni::IPPrefix::Parse("0.0.0.0/0");
  r.gateway = *cni::IPAddress::Parse("169.254.1.1");
  r.oif = 7;
  r.onlink = true;
  r.metric = 100;
  r.mtu = 1400;
  std::string s = r.ToString();
  EXPECT_THAT(s, HasSubstr("0.0.0.0/0 via 169.254.1.1"));
  EXPECT_THAT(s, HasSubstr("onlink"));
  EXPECT_THAT(s, HasSubstr("metric 100"));
  EXPECT_THAT(s, HasSubstr("mtu 1400"));
}

TEST(SysctlTest, PathMapping) {
  EXPECT_EQ(*SysctlPath("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
  EXPECT_EQ(*SysctlPath("net/ipv4/conf/eth0.100/rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
  EXPECT_FALSE(SysctlPath("").ok());
  EXPECT_FALSE(SysctlPath("net/../../etc/passwd").ok());
  EXPECT_FALSE(SysctlPath("/etc/passwd").ok());
}

TEST(RouteConversion, CniRouteToKernelRouteCarriesEveryField) {
  cni::Route r;
  r.dst = *cni::IPPrefix::Parse("10.8.0.0/16");
  r.gw = *cni::IPAddress::Parse("10.0.0.1");
  r.mtu = 1400;
  r.advmss = 1360;
  r.priority = 50;
  r.table = 100;
  r.scope = 0;
  Route k = RouteFromCni(r, 7);
  EXPECT_EQ(k.dst, r.dst);
  EXPECT_EQ(k.gateway, r.gw);
  EXPECT_EQ(k.oif, 7);
  EXPECT_EQ(k.mtu, 1400u);
  EXPECT_EQ(k.metric, 50u);
  EXPECT_EQ(k.table, 100u);
  EXPECT_EQ(k.scope, std::optional<uint8_t>(0));
}

TEST(RouteConversion, UnsetCniFieldsKeepTheKernelDefaults) {
  cni::Route r;
  r.dst = *cni::IPPrefix::Parse("::/0");
  Route k = RouteFromCni(r);
  EXPECT_FALSE(k.gateway.has_value());
  EXPECT_EQ(k.oif, 0);
  EXPECT_EQ(k.table, kTableMain);
  EXPECT_EQ(k.metric, 0u);
  EXPECT_EQ(k.mtu, 0u);
  EXPECT_FALSE(k.scope.has_value());
}

TEST(RouteConversion, KernelRouteToCniRouteAndBack) {
  Route k{.dst = *cni::IPPrefix::Parse("192.168.0.0/24"),
          .gateway = *cni::IPAddress::Parse("10.0.0.254"),
          .oif = 3,
          .table = kTableMain,
          .metric = 10};
  cni::Route r = RouteToCni(k);
  EXPECT_EQ(r.dst, k.dst);
  EXPECT_EQ(r.gw, k.gateway);
  EXPECT_EQ(r.priority, std::optional<uint32_t>(10));
  EXPECT_FALSE(r.table.has_value()) << "the main table is the CNI default";
  EXPECT_FALSE(r.mtu.has_value());
  EXPECT_FALSE(r.scope.has_value());
  Route back = RouteFromCni(r, 3);
  EXPECT_EQ(back.dst, k.dst);
  EXPECT_EQ(back.gateway, k.gateway);
  EXPECT_EQ(back.metric, k.metric);
  EXPECT_EQ(back.table, k.table);
}

}  // namespace
}  // namespace cninet::netlink
