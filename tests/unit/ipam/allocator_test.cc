// The allocator against both stores (memory and disk): the same behaviour is required of each.
#include "cninet/ipam/allocator.h"

#include <memory>
#include <set>
#include <string>

#include "cninet/base/strings.h"
#include "cninet/ipam/disk_store.h"
#include "cninet/ipam/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_matchers.h"
#include "testing/test_util.h"

namespace cninet::ipam {
namespace {

using cni::IPAddress;
using testing::CniStatusIs;
using testing::IsOk;

IPAddress Ip(const char* s) { return *IPAddress::Parse(s); }

// Parameter: 0 memory store, 1 disk store (O_TMPFILE), 2 disk store with named temporary files.
class AllocatorTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (GetParam() != 0) {
      auto s = DiskStore::Open(tmp_.path(), "alloc", {.use_tmpfile = GetParam() == 1});
      ASSERT_THAT(s, IsOk());
      store_ = std::move(*s);
    } else {
      store_ = std::make_unique<MemoryStore>();
    }
  }

  // Allocates for `id` (ifname eth0) from `set`, index 0.
  absl::StatusOr<cni::IPConfig> Get(const RangeSet& set, const std::string& id,
                                    std::optional<IPAddress> want = std::nullopt, int index = 0) {
    auto lock = store_->Lock();
    if (!lock.ok()) return lock.status();
    Allocator a(set, *store_, index);
    return a.Allocate(*lock, id, "eth0", want);
  }

  absl::Status Release(const std::string& id, const std::string& ifname = "eth0") {
    auto lock = store_->Lock();
    if (!lock.ok()) return lock.status();
    return ReleaseOwner(*lock, *store_, id, ifname).status();
  }

  cninet::testing::TempDir tmp_;
  std::unique_ptr<Store> store_;
};

TEST_P(AllocatorTest, SkipsGatewayAndGoesRoundRobin) {
  RangeSet set{{*Range::Parse("10.1.0.0/29")}};  // .1 is the gateway; .2-.6 usable.
  auto a = Get(set, "a");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->address.ToString(), "10.1.0.2/29");
  EXPECT_EQ(a->gateway, Ip("10.1.0.1"));
  EXPECT_EQ(Get(set, "b")->address.address(), Ip("10.1.0.3"));
  // Releasing .2 does not hand it out next: round-robin continues after the last reserved.
  ASSERT_THAT(Release("a"), IsOk());
  EXPECT_EQ(Get(set, "c")->address.address(), Ip("10.1.0.4"));
  EXPECT_EQ(Get(set, "d")->address.address(), Ip("10.1.0.5"));
  EXPECT_EQ(Get(set, "e")->address.address(), Ip("10.1.0.6"));
  // Wraps around to the freed .2.
  EXPECT_EQ(Get(set, "f")->address.address(), Ip("10.1.0.2"));
}

TEST_P(AllocatorTest, ExhaustionIsCode100AndFreesNothing) {
  RangeSet set{{*Range::Parse("10.1.0.0/30")}};  // Only .2 is usable.
  ASSERT_THAT(Get(set, "a"), IsOk());
  EXPECT_THAT(
      Get(set, "b"),
      CniStatusIs(kNoFreeAddress, "no IP addresses available in range set: 10.1.0.1-10.1.0.2"));
  auto all = store_->List();
  ASSERT_THAT(all, IsOk());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].container_id, "a");
}

TEST_P(AllocatorTest, FillsAWholeSubnetWithDistinctAddresses) {
  RangeSet set{{*Range::Parse("10.1.0.0/26")}};  // 62 hosts - gateway = 61.
  std::set<IPAddress> seen;
  for (int i = 0; i < 61; ++i) {
    auto r = Get(set, cninet::StrCat("c", i));
    ASSERT_THAT(r, IsOk()) << i;
    EXPECT_TRUE(seen.insert(r->address.address()).second);
    EXPECT_TRUE(set.ranges[0].IsAllocatable(r->address.address()));
  }
  EXPECT_THAT(Get(set, "one-too-many"), CniStatusIs(kNoFreeAddress, "no IP addresses"));
}

TEST_P(AllocatorTest, MultipleRangesInASetAreWalkedInOrder) {
  RangeSet set{{*Range::Parse("10.1.0.0/24", "10.1.0.10", "10.1.0.11"),
                *Range::Parse("10.2.0.0/24", "10.2.0.20", "10.2.0.21")}};
  EXPECT_EQ(Get(set, "a")->address.address(), Ip("10.1.0.10"));
  EXPECT_EQ(Get(set, "b")->address.address(), Ip("10.1.0.11"));
  auto c = Get(set, "c");
  EXPECT_EQ(c->address.ToString(), "10.2.0.20/24");
  EXPECT_EQ(c->gateway, Ip("10.2.0.1"));
  EXPECT_EQ(Get(set, "d")->address.address(), Ip("10.2.0.21"));
  EXPECT_THAT(Get(set, "e"), CniStatusIs(kNoFreeAddress, ""));
}

TEST_P(AllocatorTest, LastReservedOutsideTheSetRestartsAtTheBeginning) {
  RangeSet old_set{{*Range::Parse("10.9.0.0/24")}};
  ASSERT_THAT(Get(old_set, "a"), IsOk());  // last_reserved_ip.0 = 10.9.0.2
  RangeSet new_set{{*Range::Parse("10.1.0.0/24")}};
  EXPECT_EQ(Get(new_set, "b")->address.address(), Ip("10.1.0.2"));
}

TEST_P(AllocatorTest, RequestedAddresses) {
  RangeSet set{{*Range::Parse("10.1.0.0/24")}};
  EXPECT_EQ(Get(set, "a", Ip("10.1.0.77"))->address.address(), Ip("10.1.0.77"));
  EXPECT_THAT(Get(set, "b", Ip("10.1.0.77")),
              CniStatusIs(kAddressUnavailable, "10.1.0.77 is not available"));
  EXPECT_THAT(Get(set, "b", Ip("10.1.0.1")), CniStatusIs(7, "gateway"));
  EXPECT_THAT(Get(set, "b", Ip("10.1.0.255")), CniStatusIs(7, "not in range set"));
  EXPECT_THAT(Get(set, "b", Ip("10.2.0.5")), CniStatusIs(7, "not in range set"));
  // A requested address does not move the round-robin cursor backwards: the next automatic
  // address follows the last reserved one.
  EXPECT_EQ(Get(set, "c")->address.address(), Ip("10.1.0.78"));
}

TEST_P(AllocatorTest, RequestedNetworkAddressInsideAnExplicitWindowIsRefused) {
  RangeSet set{{*Range::Parse("10.1.0.0/29", "10.1.0.0", "10.1.0.7", "10.1.0.6")}};
  EXPECT_THAT(Get(set, "a", Ip("10.1.0.0")), CniStatusIs(7, "network or broadcast"));
  EXPECT_THAT(Get(set, "a", Ip("10.1.0.7")), CniStatusIs(7, "network or broadcast"));
  // Automatic allocation starts at the window's start but skips the network address.
  EXPECT_EQ(Get(set, "a")->address.address(), Ip("10.1.0.1"));
}

TEST_P(AllocatorTest, DuplicateAllocationIsRefused) {
  RangeSet set{{*Range::Parse("10.1.0.0/24")}};
  ASSERT_THAT(Get(set, "a"), IsOk());
  EXPECT_THAT(Get(set, "a"), CniStatusIs(kAlreadyAllocated, "duplicate allocation is not allowed"));
  EXPECT_THAT(Get(set, "a", Ip("10.1.0.50")), CniStatusIs(kAlreadyAllocated, "duplicate"));
  // Another interface of the same container is another attachment.
  auto lock = store_->Lock();
  ASSERT_THAT(lock, IsOk());
  Allocator alloc(set, *store_, 0);
  EXPECT_THAT(alloc.Allocate(*lock, "a", "eth1"), IsOk());
}

TEST_P(AllocatorTest, ReleaseByOwnerIsExactAndIdempotent) {
  RangeSet set{{*Range::Parse("10.1.0.0/24")}};
  {
    auto lock = store_->Lock();
    ASSERT_THAT(lock, IsOk());
    Allocator alloc(set, *store_, 0);
    ASSERT_THAT(alloc.Allocate(*lock, "a", "eth0"), IsOk());
    ASSERT_THAT(alloc.Allocate(*lock, "a", "eth1"), IsOk());
    ASSERT_THAT(alloc.Allocate(*lock, "b", "eth0"), IsOk());
  }
  ASSERT_THAT(Release("a", "eth1"), IsOk());
  auto all = store_->List();
  ASSERT_THAT(all, IsOk());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].ifname, "eth0");
  EXPECT_EQ((*all)[1].container_id, "b");
  ASSERT_THAT(Release("a", "eth1"), IsOk());  // Again: nothing left, still OK.
  ASSERT_THAT(Release("never-existed"), IsOk());
  EXPECT_EQ(store_->List()->size(), 2u);
}

TEST_P(AllocatorTest, LegacyLeasesMatchByContainerId) {
  // Old host-local wrote only the container ID; such leases count for duplicate detection and
  // are released by (id, any ifname) when no exact match exists.
  ASSERT_THAT(store_->Reserve(Lease{Ip("10.1.0.9"), "old", ""}, "0"), IsOk());
  RangeSet set{{*Range::Parse("10.1.0.0/24")}};
  EXPECT_THAT(Get(set, "old"), CniStatusIs(kAlreadyAllocated, "10.1.0.9"));
  ASSERT_THAT(Release("old", "eth7"), IsOk());
  EXPECT_TRUE(store_->List()->empty());
}

TEST_P(AllocatorTest, IPv6) {
  RangeSet set{{*Range::Parse("fd00:10::/64", "fd00:10::ffff:fffe")}};
  EXPECT_EQ(Get(set, "a")->address.ToString(), "fd00:10::ffff:fffe/64");
  EXPECT_EQ(Get(set, "b")->address.ToString(), "fd00:10::ffff:ffff/64");
  EXPECT_EQ(Get(set, "c")->address.ToString(), "fd00:10::1:0:0/64");
  EXPECT_THAT(Get(set, "c"), CniStatusIs(kAlreadyAllocated, "fd00:10::1:0:0"));
}

TEST_P(AllocatorTest, HasFree) {
  RangeSet set{{*Range::Parse("10.1.0.0/30")}};
  auto lock = store_->Lock();
  ASSERT_THAT(lock, IsOk());
  Allocator alloc(set, *store_, 0);
  EXPECT_TRUE(*alloc.HasFree(*lock));
  ASSERT_THAT(alloc.Allocate(*lock, "a", "eth0"), IsOk());
  EXPECT_FALSE(*alloc.HasFree(*lock));
}

TEST_P(AllocatorTest, RequiresTheLockAndValidNames) {
  RangeSet set{{*Range::Parse("10.1.0.0/24")}};
  Allocator alloc(set, *store_, 0);
  StoreLock not_held;
  EXPECT_EQ(alloc.Allocate(not_held, "a", "eth0").status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto lock = store_->Lock();
  ASSERT_THAT(lock, IsOk());
  EXPECT_THAT(alloc.Allocate(*lock, "a\r\nforged", "eth0"), CniStatusIs(4, "CNI_CONTAINERID"));
  EXPECT_THAT(alloc.Allocate(*lock, "a", "eth0/x"), CniStatusIs(4, "CNI_IFNAME"));
  EXPECT_THAT(alloc.Allocate(*lock, "a", "this-name-is-too-long"), CniStatusIs(4, "CNI_IFNAME"));
  EXPECT_TRUE(store_->List()->empty());
}

INSTANTIATE_TEST_SUITE_P(Stores, AllocatorTest, ::testing::Values(0, 1, 2),
                         [](const auto& param_info) {
                           return std::string(param_info.param == 0   ? "Memory"
                                              : param_info.param == 1 ? "Disk"
                                                                      : "DiskNamedTemp");
                         });

}  // namespace
}  // namespace cninet::ipam
