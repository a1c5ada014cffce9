#include "cninet/ipam/config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_matchers.h"
#include "testing/test_util.h"

namespace cninet::ipam {
namespace {

using cni::IPAddress;
using testing::CniStatusIs;
using ::testing::ElementsAre;
using testing::IsOk;

IPAddress Ip(const char* s) { return *IPAddress::Parse(s); }

std::string Conf(const std::string& ipam, const std::string& extra = "") {
  return R"({"cniVersion":"1.0.0","name":"net1","type":"bridge",)" + extra + R"("ipam":)" + ipam +
         "}";
}

TEST(IpamConfig, ParsesDualStackRanges) {
  auto c = IpamConfig::Parse(Conf(R"({"type":"host-local","dataDir":"/tmp/x",
      "ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"10.1.1.0/24","gateway":"10.1.1.254"}],
                [{"subnet":"fd00:1::/64","rangeStart":"fd00:1::10","rangeEnd":"fd00:1::20"}]],
      "routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"fd00:1::1"}]})"));
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->network, "net1");
  EXPECT_EQ(c->cni_version, "1.0.0");
  EXPECT_EQ(c->type, "host-local");
  EXPECT_EQ(c->data_dir, "/tmp/x");
  ASSERT_EQ(c->ranges.size(), 2u);
  ASSERT_EQ(c->ranges[0].ranges.size(), 2u);
  EXPECT_EQ(c->ranges[0].ranges[1].gateway, Ip("10.1.1.254"));
  EXPECT_TRUE(c->ranges[1].ranges[0].subnet.address().is_v6());
  EXPECT_EQ(c->ranges[1].ranges[0].range_end, Ip("fd00:1::20"));
  ASSERT_EQ(c->routes.size(), 2u);
  EXPECT_EQ(c->routes[0].dst.ToString(), "0.0.0.0/0");
  EXPECT_FALSE(c->routes[0].gw.has_value());
  EXPECT_EQ(c->routes[1].gw, Ip("fd00:1::1"));
}

TEST(IpamConfig, LegacySingleRangeComesFirstAndDefaultDataDir) {
  auto c = IpamConfig::Parse(Conf(R"({"type":"host-local","subnet":"10.9.0.0/16",
      "rangeStart":"10.9.1.0","rangeEnd":"10.9.1.100","gateway":"10.9.0.254",
      "ranges":[[{"subnet":"fd09::/64"}]]})"));
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->data_dir, "/var/lib/cni/networks");
  ASSERT_EQ(c->ranges.size(), 2u);
  EXPECT_EQ(c->ranges[0].ranges[0].range_start, Ip("10.9.1.0"));
  EXPECT_EQ(c->ranges[0].ranges[0].gateway, Ip("10.9.0.254"));
  EXPECT_TRUE(c->ranges[1].ranges[0].subnet.address().is_v6());
}

TEST(IpamConfig, RuntimeIpRangesArePrepended) {
  auto c = IpamConfig::Parse(Conf(R"({"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]})",
                                  R"("runtimeConfig":{"ipRanges":[[{"subnet":"10.7.0.0/24"}]]},)"));
  ASSERT_THAT(c, IsOk());
  ASSERT_EQ(c->ranges.size(), 2u);
  EXPECT_EQ(c->ranges[0].ranges[0].subnet.ToString(), "10.7.0.0/24");
}

TEST(IpamConfig, RequestedIpsFromAllSourcesInOrderDeduplicated) {
  auto c = IpamConfig::Parse(
      Conf(
          R"({"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00::/64"}]]})",
          R"("args":{"cni":{"ips":["10.1.0.9","fd00::9/64"]}},"runtimeConfig":{"ips":["10.1.0.9/24","10.1.0.11"]},)"),
      "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.1.0.5");
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->requested_ips,
              ElementsAre(Ip("10.1.0.5"), Ip("10.1.0.9"), Ip("fd00::9"), Ip("10.1.0.11")));
}

TEST(IpamConfig, CniArgsRules) {
  std::string conf = Conf(R"({"type":"host-local","subnet":"10.1.0.0/24"})");
  // Unknown keys need IgnoreUnknown, as host-local's LoadArgs demands.
  EXPECT_THAT(IpamConfig::Parse(conf, "K8S_POD_NAME=x"), CniStatusIs(2, "unknown args"));
  EXPECT_THAT(IpamConfig::Parse(conf, "K8S_POD_NAME=x;IgnoreUnknown=true"), IsOk());
  EXPECT_THAT(IpamConfig::Parse(conf, "IgnoreUnknown=maybe"), CniStatusIs(4, "IgnoreUnknown"));
  EXPECT_THAT(IpamConfig::Parse(conf, "IP"), CniStatusIs(4, "invalid pair"));
  EXPECT_THAT(IpamConfig::Parse(conf, "IP=1.2.3.4=5"), CniStatusIs(4, "invalid pair"));
  EXPECT_THAT(IpamConfig::Parse(conf, "IP=10.1.0.300"), CniStatusIs(4, "invalid IP"));
  auto two = IpamConfig::Parse(conf, "IP=10.1.0.5,fd00::5");
  ASSERT_THAT(two, IsOk());
  EXPECT_THAT(two->requested_ips, ElementsAre(Ip("10.1.0.5"), Ip("fd00::5")));
  auto empty = IpamConfig::Parse(conf, "IP=");
  ASSERT_THAT(empty, IsOk());
  EXPECT_TRUE(empty->requested_ips.empty());
}

TEST(IpamConfig, KeysMatchCaseInsensitivelyLikeGo) {
  auto c = IpamConfig::Parse(
      R"({"cniVersion":"0.4.0","name":"n","IPAM":{"Type":"host-local","Subnet":"10.1.0.0/24","RangeStart":"10.1.0.100"}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->ranges[0].ranges[0].range_start, Ip("10.1.0.100"));
}

TEST(IpamConfig, DecodeErrorsAreCode6) {
  EXPECT_THAT(IpamConfig::Parse("{not json"), CniStatusIs(6, "not JSON"));
  EXPECT_THAT(IpamConfig::Parse("[1,2]"), CniStatusIs(6, "JSON object"));
}

// Type errors come from cni::ConfigReader: code 7, naming the key's JSON path.
TEST(IpamConfig, TypeErrorsAreCode7NamingThePath) {
  EXPECT_THAT(IpamConfig::Parse(Conf(R"("host-local")")),
              CniStatusIs(7, "ipam: must be an object"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"ranges":{"subnet":"10.1.0.0/24"}})")),
              CniStatusIs(7, "ipam.ranges: must be a list"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"ranges":[{"subnet":"10.1.0.0/24"}]})")),
              CniStatusIs(7, "ipam.ranges[0]: must be a list of ranges"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"subnet":24})")),
              CniStatusIs(7, "ipam.subnet: must be a string"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":24}]]})")),
              CniStatusIs(7, "ipam.ranges[0][1].subnet: must be a string"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"subnet":"10.1.0.0/24","dataDir":["/x"]})")),
              CniStatusIs(7, "ipam.dataDir: must be a string"));
  EXPECT_THAT(IpamConfig::Parse(
                  Conf(R"({"subnet":"10.1.0.0/24","routes":[{"dst":"0.0.0.0/0","mtu":-1}]})")),
              CniStatusIs(7, "ipam.routes[0].mtu"));
}

TEST(IpamConfig, InvalidValuesAreCode7) {
  EXPECT_THAT(IpamConfig::Parse(R"({"cniVersion":"1.0.0","name":"n"})"),
              CniStatusIs(7, "missing 'ipam'"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"type":"host-local"})")), CniStatusIs(7, "no IP ranges"));
  EXPECT_THAT(IpamConfig::Parse(
                  Conf(R"({"ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.1.0.0/25"}]]})")),
              CniStatusIs(7, "range set 0 overlaps with 1"));
  EXPECT_THAT(
      IpamConfig::Parse(Conf(R"({"ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"fd00::/64"}]]})")),
      CniStatusIs(7, "mixed address families"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"ranges":[[{"rangeStart":"10.1.0.1"}]]})")),
              CniStatusIs(7, "missing subnet"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"ranges":[[]]})")), CniStatusIs(7, "empty range set"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"subnet":"10.1.0.0/24","dataDir":"relative/dir"})")),
              CniStatusIs(7, "absolute"));
  EXPECT_THAT(IpamConfig::Parse(Conf(R"({"subnet":"10.1.0.0/24","routes":[{"dst":"nowhere"}]})")),
              CniStatusIs(7, "invalid route dst"));
  EXPECT_THAT(IpamConfig::Parse(Conf(
                  R"({"subnet":"10.1.0.0/24","routes":[{"dst":"0.0.0.0/0","gw":"fd00::1"}]})")),
              CniStatusIs(7, "family"));
  EXPECT_THAT(IpamConfig::Parse(
                  Conf(R"({"subnet":"10.1.0.0/24"})", R"("runtimeConfig":{"ips":["10.1.0.x"]},)")),
              CniStatusIs(7, "cannot understand ip"));
}

TEST(IpamConfig, HostileNetworkNamesAreCode7) {
  for (std::string name :
       std::vector<std::string>{"../etc", "a/b", "..", ".", "", "net\\u0000x", "-lead",
                                "with space", "line\\nbreak", std::string(300, 'a')}) {
    std::string conf = R"({"cniVersion":"1.0.0","name":")" + name +
                       R"(","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}})";
    EXPECT_EQ(cni::GetErrorCode(IpamConfig::Parse(conf).status()), 7u) << name;
  }
}

TEST(IpamConfig, ResolvConf) {
  cni::DNS dns = ParseResolvConfText(
      "# comment\n; also\nnameserver 10.0.0.53\nnameserver fd00::53\n  domain example.com\n"
      "search a.example b.example\noptions ndots:5 edns0\nnameserver\nbogus line here\n");
  EXPECT_THAT(dns.nameservers, ElementsAre("10.0.0.53", "fd00::53"));
  EXPECT_EQ(dns.domain, "example.com");
  EXPECT_THAT(dns.search, ElementsAre("a.example", "b.example"));
  EXPECT_THAT(dns.options, ElementsAre("ndots:5", "edns0"));

  cninet::testing::TempDir tmp;
  cninet::testing::WriteFile(tmp.Sub("resolv.conf"), "nameserver 1.1.1.1\n");
  auto parsed = ParseResolvConf(tmp.Sub("resolv.conf"));
  ASSERT_THAT(parsed, IsOk());
  EXPECT_THAT(parsed->nameservers, ElementsAre("1.1.1.1"));
  EXPECT_THAT(ParseResolvConf(tmp.Sub("missing")), CniStatusIs(5, "resolvConf"));
}

}  // namespace
}  // namespace cninet::ipam
