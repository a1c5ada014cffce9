#include "cninet/ipam/subnet_pool.h"

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

using cni::IPPrefix;
using testing::CniStatusIs;
using ::testing::ElementsAre;
using testing::IsOk;

IPPrefix P(const char* s) { return *IPPrefix::Parse(s); }

TEST(SubnetPool, CarvesLowestFreeSubnetsV4) {
  MemoryStore store;
  auto pool = SubnetPool::Create(P("10.244.0.0/16"), 24, &store);
  ASSERT_THAT(pool, IsOk());
  EXPECT_EQ(pool->Capacity(), 256u);
  EXPECT_EQ(pool->Allocate("node-a")->ToString(), "10.244.0.0/24");
  EXPECT_EQ(pool->Allocate("node-b")->ToString(), "10.244.1.0/24");
  EXPECT_EQ(pool->Allocate("node-c")->ToString(), "10.244.2.0/24");
  // Idempotent per node.
  EXPECT_EQ(pool->Allocate("node-b")->ToString(), "10.244.1.0/24");
  // A released subnet is the next one handed out (lowest free).
  ASSERT_THAT(pool->Release("node-b"), IsOk());
  ASSERT_THAT(pool->Release("node-b"), IsOk());
  EXPECT_FALSE(pool->Get("node-b")->has_value());
  EXPECT_EQ(pool->Allocate("node-d")->ToString(), "10.244.1.0/24");
  auto list = pool->List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, ElementsAre(NodeSubnet{"node-a", P("10.244.0.0/24")},
                                 NodeSubnet{"node-d", P("10.244.1.0/24")},
                                 NodeSubnet{"node-c", P("10.244.2.0/24")}));
}

TEST(SubnetPool, IPv6AndLargeIndexes) {
  MemoryStore store;
  auto pool = SubnetPool::Create(P("fd00:10::/48"), 64, &store);
  ASSERT_THAT(pool, IsOk());
  EXPECT_EQ(pool->Capacity(), 65536u);
  EXPECT_EQ(pool->Allocate("n1")->ToString(), "fd00:10::/64");
  EXPECT_EQ(pool->Allocate("n2")->ToString(), "fd00:10:0:1::/64");
  ASSERT_THAT(pool->Claim("n3", P("fd00:10:0:ffff::/64")), IsOk());
  EXPECT_EQ(pool->Allocate("n4")->ToString(), "fd00:10:0:2::/64");
  auto huge = SubnetPool::Create(P("fd00::/8"), 112, &store);
  ASSERT_THAT(huge, IsOk());
  EXPECT_EQ(huge->Capacity(), uint64_t{1} << 63);
}

TEST(SubnetPool, DeterministicAcrossInstances) {
  // Two pools fed the same requests in the same order agree, whatever store they use.
  cninet::testing::TempDir tmp;
  auto disk = DiskStore::Open(tmp.path(), "pool");
  ASSERT_THAT(disk, IsOk());
  MemoryStore mem;
  auto a = SubnetPool::Create(P("10.0.0.0/8"), 26, disk->get());
  auto b = SubnetPool::Create(P("10.0.0.0/8"), 26, &mem);
  for (const char* node : {"x", "y", "z"}) EXPECT_EQ(*a->Allocate(node), *b->Allocate(node));
  ASSERT_THAT(a->Release("y"), IsOk());
  ASSERT_THAT(b->Release("y"), IsOk());
  EXPECT_EQ(*a->Allocate("w"), *b->Allocate("w"));
  EXPECT_EQ(*a->List(), *b->List());
}

TEST(SubnetPool, PersistsInADiskStore) {
  cninet::testing::TempDir tmp;
  {
    auto disk = DiskStore::Open(tmp.path(), "pool");
    auto pool = SubnetPool::Create(P("10.244.0.0/16"), 24, disk->get());
    ASSERT_EQ(pool->Allocate("node-a")->ToString(), "10.244.0.0/24");
    ASSERT_EQ(pool->Allocate("node-b")->ToString(), "10.244.1.0/24");
  }
  EXPECT_EQ(cninet::testing::ReadFile(tmp.Sub("pool/10.244.1.0")), "node-b");
  auto disk = DiskStore::Open(tmp.path(), "pool");
  auto pool = SubnetPool::Create(P("10.244.0.0/16"), 24, disk->get());
  EXPECT_EQ(pool->Get("node-b")->value().ToString(), "10.244.1.0/24");
  EXPECT_EQ(pool->Allocate("node-a")->ToString(), "10.244.0.0/24");
  EXPECT_EQ(pool->Allocate("node-c")->ToString(), "10.244.2.0/24");
}

TEST(SubnetPool, Exhaustion) {
  MemoryStore store;
  auto pool = SubnetPool::Create(P("10.0.0.0/24"), 26, &store);
  for (int i = 0; i < 4; ++i) ASSERT_THAT(pool->Allocate(cninet::StrCat("n", i)), IsOk());
  EXPECT_THAT(pool->Allocate("n4"), CniStatusIs(kNoFreeAddress, "no free /26 subnet"));
}

TEST(SubnetPool, ClaimRules) {
  MemoryStore store;
  auto pool = SubnetPool::Create(P("10.244.0.0/16"), 24, &store);
  ASSERT_THAT(pool->Claim("a", P("10.244.7.0/24")), IsOk());
  EXPECT_THAT(pool->Claim("a", P("10.244.7.0/24")), IsOk());
  EXPECT_THAT(pool->Claim("a", P("10.244.8.0/24")), CniStatusIs(kAlreadyAllocated, "already has"));
  EXPECT_THAT(pool->Claim("b", P("10.244.7.0/24")),
              CniStatusIs(kAddressUnavailable, "belongs to node a"));
  EXPECT_THAT(pool->Claim("b", P("10.244.7.128/25")), CniStatusIs(7, "not a /24 subnet"));
  EXPECT_THAT(pool->Claim("b", P("10.244.7.1/24")), CniStatusIs(7, "not a /24 subnet"));
  EXPECT_THAT(pool->Claim("b", P("10.245.0.0/24")), CniStatusIs(7, "not a /24 subnet"));
}

TEST(SubnetPool, InvalidOptionsAndNames) {
  MemoryStore store;
  EXPECT_THAT(SubnetPool::Create(P("10.0.0.0/16"), 8, &store),
              CniStatusIs(7, "node prefix length"));
  EXPECT_THAT(SubnetPool::Create(P("10.0.0.0/16"), 31, &store),
              CniStatusIs(7, "node prefix length"));
  EXPECT_EQ(SubnetPool::Create(P("10.0.0.0/16"), 24, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto pool = SubnetPool::Create(P("10.0.5.0/16"), 24, &store);  // Host bits are masked.
  ASSERT_THAT(pool, IsOk());
  EXPECT_EQ(pool->cluster_cidr().ToString(), "10.0.0.0/16");
  EXPECT_THAT(pool->Allocate("../x"), CniStatusIs(7, "invalid node name"));
  EXPECT_THAT(pool->Allocate(""), CniStatusIs(7, "invalid node name"));
  EXPECT_TRUE(store.List()->empty());
}

}  // namespace
}  // namespace cninet::ipam
