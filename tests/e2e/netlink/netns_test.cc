// Netns against the real kernel: named namespaces, the threading rule of Run, path checks.
#include "cninet/netlink/netns.h"

#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "cninet/netlink/handle.h"
#include "cninet/netlink/sysctl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::netlink {
namespace {

using ::testing::HasSubstr;

TEST(NetnsTest, CreateOpenDelete) {
  CNINET_REQUIRE_ROOT();
  std::string name = cninet::testing::UniqueName("nlns");
  auto ns = Netns::Create(name);
  ASSERT_TRUE(ns.ok()) << ns.status();
  struct stat st {};
  EXPECT_EQ(stat(Netns::PathForName(name).c_str(), &st), 0);
  EXPECT_EQ(Netns::Create(name).status().code(), absl::StatusCode::kAlreadyExists);

  auto again = Netns::OpenByName(name);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->SameAs(*ns));
  auto current = Netns::Current();
  ASSERT_TRUE(current.ok());
  EXPECT_FALSE(current->SameAs(*ns));
  EXPECT_NE(ns->inode(), current->inode());

  ASSERT_TRUE(Netns::Delete(name).ok());
  EXPECT_EQ(Netns::OpenByName(name).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Netns::Delete(name).code(), absl::StatusCode::kNotFound);
  // The open handle keeps the namespace usable after its name is gone.
  auto h = Handle::OpenIn(*ns);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->GetLink("lo").ok());
}

TEST(NetnsTest, RunEntersTheNamespaceAndAlwaysRestoresTheCaller) {
  CNINET_REQUIRE_ROOT();
  auto ns = NamedNetns::Create(cninet::testing::UniqueName("nlrun"));
  ASSERT_TRUE(ns.ok()) << ns.status();
  auto before = Netns::Current();
  ASSERT_TRUE(before.ok());

  bool inside_is_target = false;
  absl::Status st = ns->ns().Run([&]() -> absl::Status {
    auto cur = Netns::Current();
    if (!cur.ok()) return cur.status();
    inside_is_target = cur->SameAs(ns->ns());
    return absl::OkStatus();
  });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(inside_is_target);
  auto after = Netns::Current();
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->SameAs(*before));

  // Errors from the callable come back unchanged, and the caller still has not moved.
  absl::Status err = ns->ns().Run([] { return absl::DataLossError("from inside"); });
  EXPECT_EQ(err.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(err.message(), "from inside");
  EXPECT_TRUE(Netns::Current()->SameAs(*before));

  auto value = ns->ns().Call<int>([]() -> absl::StatusOr<int> { return 42; });
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 42);

  // RunInThread: the callable runs on another thread, in the namespace.
  bool thread_inside = false;
  ASSERT_TRUE(ns->ns()
                  .RunInThread([&]() -> absl::Status {
                    thread_inside = Netns::Current()->SameAs(ns->ns());
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_TRUE(thread_inside);
  EXPECT_TRUE(Netns::Current()->SameAs(*before));

  // Nested Run: the inner one restores the outer namespace, the outer one ours.
  auto inner = NamedNetns::Create(cninet::testing::UniqueName("nlrun"));
  ASSERT_TRUE(inner.ok()) << inner.status();
  bool nested_ok = false;
  ASSERT_TRUE(ns->ns()
                  .Run([&]() -> absl::Status {
                    absl::Status inner_st = inner->ns().Run([&]() -> absl::Status {
                      nested_ok = Netns::Current()->SameAs(inner->ns());
                      return absl::OkStatus();
                    });
                    nested_ok = nested_ok && inner_st.ok() && Netns::Current()->SameAs(ns->ns());
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_TRUE(nested_ok);
  EXPECT_TRUE(Netns::Current()->SameAs(*before));

  // Concurrent Run calls from several threads each land in the right namespace.
  auto other = NamedNetns::Create(cninet::testing::UniqueName("nlrun"));
  ASSERT_TRUE(other.ok()) << other.status();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      const Netns& target = (i % 2 == 0) ? ns->ns() : other->ns();
      for (int j = 0; j < 10; ++j) {
        absl::Status s = target.Run([&]() -> absl::Status {
          if (!Netns::Current()->SameAs(target)) ++wrong;
          return absl::OkStatus();
        });
        if (!s.ok()) ++wrong;
        if (!Netns::Current()->SameAs(*before)) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(NetnsTest, CheckPathRejectsWhatIsNotANetworkNamespace) {
  CNINET_REQUIRE_ROOT();
  cninet::testing::TempDir dir;
  std::string file = dir.Sub("plain");
  cninet::testing::WriteFile(file, "x");
  EXPECT_EQ(Netns::CheckPath(file).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Netns::CheckPath(file).message(), HasSubstr("not a namespace"));
  EXPECT_EQ(Netns::CheckPath(dir.Sub("missing")).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Netns::CheckPath("/proc/self/ns/uts").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Netns::CheckPath("/proc/self/ns/uts").message(),
              HasSubstr("not a network namespace"));
  EXPECT_TRUE(Netns::CheckPath("/proc/self/ns/net").ok());
  EXPECT_EQ(Netns::Create("a/b").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NetnsTest, NamedNetnsRemovesItsNameAndBringsLoopbackUp) {
  CNINET_REQUIRE_ROOT();
  std::string name = cninet::testing::UniqueName("nlnam");
  {
    auto ns = NamedNetns::Create(name);
    ASSERT_TRUE(ns.ok()) << ns.status();
    auto h = Handle::OpenIn(ns->ns());
    ASSERT_TRUE(h.ok());
    auto lo = h->GetLink("lo");
    ASSERT_TRUE(lo.ok()) << lo.status();
    EXPECT_TRUE(lo->admin_up);
  }
  EXPECT_EQ(Netns::OpenByName(name).status().code(), absl::StatusCode::kNotFound);
}

TEST(SysctlTest, PerNamespaceValues) {
  CNINET_REQUIRE_ROOT();
  auto ns = NamedNetns::Create(cninet::testing::UniqueName("nlsys"));
  ASSERT_TRUE(ns.ok()) << ns.status();
  auto root_before = GetSysctl("net.ipv4.ip_forward");
  ASSERT_TRUE(root_before.ok()) << root_before.status();

  std::string want = *root_before == "1" ? "0" : "1";
  ASSERT_TRUE(SetSysctl(ns->ns(), "net.ipv4.ip_forward", want).ok());
  EXPECT_EQ(*GetSysctl(ns->ns(), "net.ipv4.ip_forward"), want);
  EXPECT_EQ(*GetSysctl("net.ipv4.ip_forward"), *root_before);  // Ours is untouched.

  ASSERT_TRUE(SetIpForward(ns->ns(), /*ipv6=*/true, true).ok());
  EXPECT_EQ(*GetSysctl(ns->ns(), "net.ipv6.conf.all.forwarding"), "1");
  ASSERT_TRUE(SetRpFilter(ns->ns(), "all", 2).ok());
  EXPECT_EQ(*GetSysctl(ns->ns(), "net.ipv4.conf.all.rp_filter"), "2");
  ASSERT_TRUE(SetProxyArp(ns->ns(), "lo", true).ok());
  EXPECT_EQ(*GetSysctl(ns->ns(), "net/ipv4/conf/lo/proxy_arp"), "1");
  ASSERT_TRUE(SetArpNotify(ns->ns(), "default", true).ok());
  EXPECT_EQ(*GetSysctl(ns->ns(), "net.ipv4.conf.default.arp_notify"), "1");
  ASSERT_TRUE(SetAcceptDad(ns->ns(), "default", 0).ok());
  EXPECT_EQ(*GetSysctl(ns->ns(), "net.ipv6.conf.default.accept_dad"), "0");

  EXPECT_EQ(GetSysctl(ns->ns(), "net.ipv4.conf.nosuchdev.proxy_arp").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(SetSysctl(ns->ns(), "net.ipv4.ip_forward", "banana").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cninet::netlink
