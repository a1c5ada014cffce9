#include "cninet/ipam/range.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_matchers.h"

namespace cninet::ipam {
namespace {

using cni::IPAddress;
using testing::CniStatusIs;
using testing::IsOk;

IPAddress Ip(const char* s) { return *IPAddress::Parse(s); }

TEST(Range, DefaultsLikeHostLocalV4) {
  auto r = Range::Parse("10.1.0.0/24");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->range_start, Ip("10.1.0.1"));
  EXPECT_EQ(r->range_end, Ip("10.1.0.254"));  // The broadcast address is excluded.
  EXPECT_EQ(r->gateway, Ip("10.1.0.1"));
  EXPECT_EQ(r->ToString(), "10.1.0.1-10.1.0.254");
  EXPECT_EQ(r->AllocatableCount(), 253u);  // .2 .. .254
}

TEST(Range, DefaultsLikeHostLocalV6) {
  auto r = Range::Parse("fd00:1::/120");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->range_start, Ip("fd00:1::1"));
  EXPECT_EQ(r->range_end, Ip("fd00:1::ff"));  // IPv6 has no broadcast address.
  EXPECT_EQ(r->gateway, Ip("fd00:1::1"));
  EXPECT_EQ(r->AllocatableCount(), 254u);
  EXPECT_TRUE(r->IsAllocatable(Ip("fd00:1::ff")));
  EXPECT_FALSE(r->IsAllocatable(Ip("fd00:1::")));
}

TEST(Range, ExplicitWindowAndGateway) {
  auto r = Range::Parse("10.1.0.0/16", "10.1.2.10", "10.1.2.20", "10.1.0.254");
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->Contains(Ip("10.1.2.10")));
  EXPECT_TRUE(r->Contains(Ip("10.1.2.20")));
  EXPECT_FALSE(r->Contains(Ip("10.1.2.9")));
  EXPECT_FALSE(r->Contains(Ip("10.1.2.21")));
  EXPECT_FALSE(r->Contains(Ip("fd00::1")));
  EXPECT_EQ(r->AllocatableCount(), 11u);
}

TEST(Range, NeverHandsOutNetworkBroadcastOrGateway) {
  // A window that explicitly includes the network and broadcast addresses.
  auto r = Range::Parse("10.2.0.0/29", "10.2.0.0", "10.2.0.7", "10.2.0.3");
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(r->IsAllocatable(Ip("10.2.0.0")));
  EXPECT_FALSE(r->IsAllocatable(Ip("10.2.0.7")));
  EXPECT_FALSE(r->IsAllocatable(Ip("10.2.0.3")));
  EXPECT_TRUE(r->IsAllocatable(Ip("10.2.0.1")));
  EXPECT_EQ(r->AllocatableCount(), 5u);  // .1 .2 .4 .5 .6
}

TEST(Range, RejectsBadSubnets) {
  EXPECT_THAT(Range::Parse("10.1.0.5/24"), CniStatusIs(7, "host bits set"));
  EXPECT_THAT(Range::Parse("10.1.0.0/31"), CniStatusIs(7, "too small"));
  EXPECT_THAT(Range::Parse("10.1.0.0/32"), CniStatusIs(7, "too small"));
  EXPECT_THAT(Range::Parse("fd00::/127"), CniStatusIs(7, "too small"));
  EXPECT_THAT(Range::Parse("10.1.0.0"), CniStatusIs(7, "invalid subnet"));
  EXPECT_THAT(Range::Parse("10.1.0.0/33"), CniStatusIs(7, "invalid subnet"));
  EXPECT_THAT(Range::Parse("banana/24"), CniStatusIs(7, "invalid subnet"));
  EXPECT_THAT(Range::Parse("10.1.0.0/30"), IsOk());
  EXPECT_THAT(Range::Parse("fd00::/126"), IsOk());
}

TEST(Range, RejectsBadWindows) {
  EXPECT_THAT(Range::Parse("10.1.0.0/24", "10.1.1.1"),
              CniStatusIs(7, "rangeStart 10.1.1.1 not in"));
  EXPECT_THAT(Range::Parse("10.1.0.0/24", "", "10.2.0.1"),
              CniStatusIs(7, "rangeEnd 10.2.0.1 not in"));
  EXPECT_THAT(Range::Parse("10.1.0.0/24", "10.1.0.50", "10.1.0.40"), CniStatusIs(7, "is after"));
  EXPECT_THAT(Range::Parse("10.1.0.0/24", "", "", "fd00::1"), CniStatusIs(7, "family"));
  EXPECT_THAT(Range::Parse("10.1.0.0/24", "fd00::5"), CniStatusIs(7, "not in network"));
  EXPECT_THAT(Range::Parse("10.1.0.0/24", "10.1.0.x"), CniStatusIs(7, "invalid rangeStart"));
}

TEST(Range, OverlapIsWindowIntersection) {
  Range a = *Range::Parse("10.1.0.0/24", "10.1.0.10", "10.1.0.20");
  Range b = *Range::Parse("10.1.0.0/24", "10.1.0.20", "10.1.0.30");
  Range c = *Range::Parse("10.1.0.0/24", "10.1.0.21", "10.1.0.30");
  Range wide = *Range::Parse("10.0.0.0/8");
  Range v6 = *Range::Parse("fd00::/64");
  EXPECT_TRUE(a.Overlaps(b));
  EXPECT_TRUE(b.Overlaps(a));
  EXPECT_FALSE(a.Overlaps(c));
  EXPECT_TRUE(wide.Overlaps(a));  // One containing the other.
  EXPECT_TRUE(a.Overlaps(wide));
  EXPECT_FALSE(a.Overlaps(v6));
}

TEST(RangeSet, ValidatesFamilyAndOverlap) {
  RangeSet ok{{*Range::Parse("10.1.0.0/24"), *Range::Parse("10.2.0.0/24")}};
  EXPECT_THAT(ok.Validate(), IsOk());
  EXPECT_EQ(ok.ToString(), "10.1.0.1-10.1.0.254,10.2.0.1-10.2.0.254");
  EXPECT_EQ(ok.AllocatableCount(), 506u);
  RangeSet mixed{{*Range::Parse("10.1.0.0/24"), *Range::Parse("fd00::/64")}};
  EXPECT_THAT(mixed.Validate(), CniStatusIs(7, "mixed address families"));
  RangeSet overlapping{{*Range::Parse("10.1.0.0/24"), *Range::Parse("10.1.0.0/25")}};
  EXPECT_THAT(overlapping.Validate(), CniStatusIs(7, "overlap"));
  EXPECT_THAT(RangeSet{}.Validate(), CniStatusIs(7, "empty range set"));
}

TEST(RangeSet, RangeForFindsTheRightRange) {
  RangeSet s{{*Range::Parse("10.1.0.0/24"), *Range::Parse("10.2.0.0/24", "", "", "10.2.0.254")}};
  ASSERT_NE(s.RangeFor(Ip("10.2.0.7")), nullptr);
  EXPECT_EQ(s.RangeFor(Ip("10.2.0.7"))->gateway, Ip("10.2.0.254"));
  EXPECT_EQ(s.RangeFor(Ip("10.3.0.7")), nullptr);
  EXPECT_TRUE(s.Contains(Ip("10.1.0.254")));
  EXPECT_FALSE(s.Contains(Ip("10.1.0.255")));
}

TEST(RangeSet, HugeIPv6CountSaturates) {
  RangeSet s{{*Range::Parse("fd00::/8")}};
  EXPECT_EQ(s.AllocatableCount(), uint64_t{1} << 63);
}

}  // namespace
}  // namespace cninet::ipam
