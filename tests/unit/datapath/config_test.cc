// DatapathConfig::Validate and the flow hash shared by BPF and C++.
#include "cninet/datapath/config.h"

#include "cninet/datapath/abi.h"
#include "cninet/datapath/types.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::datapath {
namespace {

DatapathConfig Good() {
  DatapathConfig c;
  c.cluster_cidr = *cni::IPPrefix::Parse("10.244.0.0/16");
  c.node_addresses = {*cni::IPAddress::Parse("192.168.1.10")};
  return c;
}

TEST(DatapathConfig, DefaultsWithAddressingAreValid) {
  EXPECT_TRUE(Good().Validate().ok()) << Good().Validate();
  EXPECT_EQ(Good().PinDir(), "/sys/fs/bpf/cninet/default");
}

TEST(DatapathConfig, RejectsEachBadField) {
  struct Bad {
    const char* field;
    void (*mutate)(DatapathConfig&);
  };
  const Bad cases[] = {
      {"cluster_cidrs",
       [](DatapathConfig& c) {
         c.cluster_cidrs = {*cni::IPPrefix::Parse("10.0.0.0/8"),
                            *cni::IPPrefix::Parse("11.0.0.0/8")};
       }},
      {"node_addresses", [](DatapathConfig& c) { c.node_addresses.clear(); }},
      {"node_addresses",
       [](DatapathConfig& c) { c.node_addresses = {*cni::IPAddress::Parse("::")}; }},
      {"node_addresses",
       [](DatapathConfig& c) { c.node_addresses.assign(5, *cni::IPAddress::Parse("10.0.0.1")); }},
      {"nat_port_min", [](DatapathConfig& c) { c.nat_port_min = 40000, c.nat_port_max = 30000; }},
      {"nat_retries", [](DatapathConfig& c) { c.nat_retries = 64; }},
      {"timeouts.tcp_established",
       [](DatapathConfig& c) { c.timeouts.tcp_established = std::chrono::seconds(0); }},
      {"map_sizes", [](DatapathConfig& c) { c.map_sizes.conntrack = 8; }},
      {"map_sizes.service_slots", [](DatapathConfig& c) { c.map_sizes.service_slots = 1; }},
      {"instance", [](DatapathConfig& c) { c.instance = "a/b"; }},
      {"bpffs_root", [](DatapathConfig& c) { c.bpffs_root = "relative"; }},
  };
  for (const auto& bad : cases) {
    DatapathConfig c = Good();
    bad.mutate(c);
    absl::Status s = c.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad.field;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(bad.field));
  }
}

TEST(FlowHash, DependsOnEveryTupleField) {
  auto a = [](uint8_t last, bool v6 = false) {
    cn_addr x{};
    if (!v6)
      x.a8[10] = x.a8[11] = 0xff;
    else
      x.a8[0] = 0xfd;
    x.a8[15] = last;
    return x;
  };
  const uint32_t base = cn_flow_hash(a(1), a(2), 3, 4, 6);
  EXPECT_NE(base, cn_flow_hash(a(9), a(2), 3, 4, 6));
  EXPECT_NE(base, cn_flow_hash(a(1), a(9), 3, 4, 6));
  EXPECT_NE(base, cn_flow_hash(a(1), a(2), 9, 4, 6));
  EXPECT_NE(base, cn_flow_hash(a(1), a(2), 3, 9, 6));
  EXPECT_NE(base, cn_flow_hash(a(1), a(2), 3, 4, 17));
  EXPECT_NE(base, cn_flow_hash(a(1, true), a(2, true), 3, 4, 6));
  cn_addr hi = a(1, true);
  hi.a8[1] = 7;  // a difference in the upper words of an IPv6 address counts too
  EXPECT_NE(cn_flow_hash(a(1, true), a(2, true), 3, 4, 6), cn_flow_hash(hi, a(2, true), 3, 4, 6));
  EXPECT_EQ(base, cn_flow_hash(a(1), a(2), 3, 4, 6));
}

TEST(AbiAddr, RoundTripsBothFamilies) {
  namespace dp = cninet::datapath;
  for (const char* text : {"10.244.1.2", "fd00:10:244::7", "::"}) {
    auto ip = *cninet::cni::IPAddress::Parse(text);
    cn_addr a = dp::ToAbiAddr(ip);
    EXPECT_EQ(dp::FromAbiAddr(a), ip) << text;
  }
  cn_addr v4 = dp::ToAbiAddr(*cninet::cni::IPAddress::Parse("10.0.0.1"));
  EXPECT_EQ(v4.a8[10], 0xff);
  EXPECT_EQ(v4.a8[11], 0xff);
  EXPECT_EQ(v4.a8[12], 10);
}

}  // namespace
}  // namespace cninet::datapath
