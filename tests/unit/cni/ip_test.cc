#include "cninet/cni/ip.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::cni {
namespace {

TEST(IPAddress, ParsesAndFormatsBothFamilies) {
  auto v4 = IPAddress::Parse("10.1.2.3");
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(v4->is_v4());
  EXPECT_EQ(v4->ToString(), "10.1.2.3");
  EXPECT_EQ(v4->v4_host_order(), 0x0a010203u);
  auto v6 = IPAddress::Parse("fd00:0:0::1");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->is_v6());
  EXPECT_EQ(v6->ToString(), "fd00::1");
}

TEST(IPAddress, RejectsGarbage) {
  for (const char* bad :
       {"", "10.1.2", "10.1.2.256", "1.2.3.4/24", "fd00:::1", "abc", " 1.2.3.4"}) {
    EXPECT_FALSE(IPAddress::Parse(bad).ok()) << bad;
  }
}

TEST(IPAddress, NextPrevWrapAndOrder) {
  EXPECT_EQ(IPAddress::Parse("10.0.0.255")->Next().ToString(), "10.0.1.0");
  EXPECT_EQ(IPAddress::Parse("10.0.1.0")->Prev().ToString(), "10.0.0.255");
  EXPECT_EQ(IPAddress::Parse("255.255.255.255")->Next().ToString(), "0.0.0.0");
  EXPECT_EQ(IPAddress::Parse("fd00::ffff")->Next().ToString(), "fd00::1:0");
  EXPECT_LT(*IPAddress::Parse("10.0.0.1"), *IPAddress::Parse("10.0.0.2"));
  EXPECT_LT(*IPAddress::Parse("255.0.0.1"), *IPAddress::Parse("::1"));
}

TEST(IPPrefix, KeepsHostBitsAndMasks) {
  auto p = IPPrefix::Parse("10.1.0.5/24");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ToString(), "10.1.0.5/24");
  EXPECT_EQ(p->Masked().ToString(), "10.1.0.0/24");
  EXPECT_EQ(p->LastAddress().ToString(), "10.1.0.255");
  EXPECT_TRUE(p->Contains(*IPAddress::Parse("10.1.0.200")));
  EXPECT_FALSE(p->Contains(*IPAddress::Parse("10.1.1.1")));
  EXPECT_FALSE(p->Contains(*IPAddress::Parse("::1")));
  auto v6 = IPPrefix::Parse("fd00:1::7/64");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->Masked().ToString(), "fd00:1::/64");
  EXPECT_EQ(v6->LastAddress().ToString(), "fd00:1::ffff:ffff:ffff:ffff");
}

TEST(IPPrefix, OverlapAndErrors) {
  EXPECT_TRUE(IPPrefix::Parse("10.0.0.0/8")->Overlaps(*IPPrefix::Parse("10.2.0.0/16")));
  EXPECT_FALSE(IPPrefix::Parse("10.1.0.0/16")->Overlaps(*IPPrefix::Parse("10.2.0.0/16")));
  for (const char* bad : {"10.0.0.0", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "fd00::/129",
                          "10.0.0.0/8/8", "x/8"}) {
    EXPECT_FALSE(IPPrefix::Parse(bad).ok()) << bad;
  }
  EXPECT_EQ(IPPrefix::Parse("10.0.0.1", /*allow_bare=*/true)->ToString(), "10.0.0.1/32");
}

}  // namespace
}  // namespace cninet::cni
