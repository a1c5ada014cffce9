// cninet-host-local next to the reference host-local (/usr/lib/cni/host-local, v1.1.1): same
// output, same dataDir, each honouring and releasing the other's leases.
#include <random>
#include <set>
#include <string>

#include "cninet/base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_e2e.h"

namespace cninet::ipam::e2e {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using InteropTest = IpamE2eTest;

// Same configuration, separate dataDirs, same sequence of calls: the two plugins must print the
// same result (same keys, same values) for every version both support.
TEST_F(InteropTest, OutputMatchesTheReferenceForEveryVersion) {
  cninet::testing::WriteFile(tmp_.Sub("resolv.conf"),
                             "nameserver 10.0.0.53\nsearch a.example\noptions ndots:2\n");
  const std::vector<std::string> bodies = {
      // Dual stack with routes and DNS.
      R"("ranges":[[{"subnet":"10.30.0.0/24"}],[{"subnet":"fd30::/64"}]],)"
      R"("routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.30.0.254"}],)"
      R"("resolvConf":")" +
          tmp_.Sub("resolv.conf") + "\"",
      // Legacy single range with an explicit window and gateway, no routes, no DNS.
      R"("subnet":"10.31.0.0/16","rangeStart":"10.31.5.10","rangeEnd":"10.31.5.20","gateway":"10.31.0.1")",
      // Two ranges in one set.
      R"("ranges":[[{"subnet":"10.32.0.0/30"},{"subnet":"10.33.0.0/24"}]])",
  };
  for (const std::string version : {"0.3.0", "0.3.1", "0.4.0", "1.0.0"}) {
    for (size_t b = 0; b < bodies.size(); ++b) {
      std::string ref_dir = tmp_.Sub(cninet::StrCat("ref-", version, "-", b));
      std::string our_dir = tmp_.Sub(cninet::StrCat("our-", version, "-", b));
      for (int i = 0; i < 3; ++i) {  // Three ADDs: the third crosses into the second range.
        std::string id = cninet::StrCat("ctr", i);
        auto ref =
            Call(kRefPlugin, "ADD", id, Conf(bodies[b], version, "cmp", "host-local", ref_dir));
        auto our =
            Call(OurPlugin(), "ADD", id, Conf(bodies[b], version, "cmp", "host-local", our_dir));
        ASSERT_TRUE(ref.ok()) << ref.out << ref.err;
        ASSERT_TRUE(our.ok()) << our.out << our.err;
        auto rj = nlohmann::json::parse(ref.out);
        auto oj = nlohmann::json::parse(our.out);
        EXPECT_EQ(oj, rj) << "version " << version << " config " << b << "\nours: " << our.out
                          << "\nref:  " << ref.out;
      }
      // Same files with the same contents on both sides.
      auto ref_snap = Snapshot(ref_dir + "/cmp");
      auto our_snap = Snapshot(our_dir + "/cmp");
      std::set<std::string> ref_names, our_names;
      for (const auto& [k, v] : ref_snap) {
        ref_names.insert(k);
        if (k != "/lock") {
          EXPECT_EQ(cninet::testing::ReadFile(our_dir + "/cmp" + k),
                    cninet::testing::ReadFile(ref_dir + "/cmp" + k))
              << k;
        }
      }
      for (const auto& [k, v] : our_snap) our_names.insert(k);
      EXPECT_EQ(our_names, ref_names);
    }
  }
}

TEST_F(InteropTest, ErrorsAreSpecErrorObjectsLikeTheReference) {
  std::string conf = Conf(R"("subnet":"10.40.0.0/30")");
  ASSERT_TRUE(Call(kRefPlugin, "ADD", "a", conf).ok());
  auto ref = Call(kRefPlugin, "ADD", "b", conf);
  auto our = Call(OurPlugin(), "ADD", "b", conf);
  ASSERT_EQ(ref.exit_code, 1);
  ASSERT_EQ(our.exit_code, 1);
  auto rj = nlohmann::json::parse(ref.out);
  auto oj = nlohmann::json::parse(our.out);
  // Both print {"code", "msg"}; the reference uses the generic 999, we the specific code 100.
  EXPECT_EQ(rj["code"], 999);
  EXPECT_EQ(oj["code"], 100);
  EXPECT_THAT(rj["msg"].get<std::string>(), ::testing::HasSubstr("no IP addresses available"));
  EXPECT_THAT(oj["msg"].get<std::string>(), ::testing::HasSubstr("no IP addresses available"));
}

// IPAM never enters the pod's namespace: like the reference, ADD succeeds when CNI_NETNS names
// a namespace that does not exist (a runtime may call IPAM before or after the netns exists).
TEST_F(InteropTest, AddWithANonexistentNetnsSucceedsLikeTheReference) {
  std::string conf = Conf(R"("subnet":"10.42.0.0/24")");
  for (const std::string& plugin : {std::string(kRefPlugin), OurPlugin()}) {
    cninet::testing::PluginCall call;
    call.command = "ADD";
    call.container_id = "nonetns-" + std::to_string(plugin == kRefPlugin);
    call.netns = tmp_.Sub("no-such-netns");
    call.path = "/usr/lib/cni";
    auto r = cninet::testing::RunCniPlugin(plugin, call, conf, node_.name());
    EXPECT_EQ(r.exit_code, 0) << plugin << "\n" << r.out << r.err;
    EXPECT_EQ(Addresses(r.out).size(), 1u) << plugin << "\n" << r.out;
  }
}

TEST_F(InteropTest, ReferenceLeasesAreSkippedAndReleasedByUs) {
  std::string conf = Conf(R"("subnet":"10.41.0.0/24")");
  auto ref = Call(kRefPlugin, "ADD", "ref-a", conf);
  ASSERT_TRUE(ref.ok()) << ref.out;
  EXPECT_THAT(Addresses(ref.out), ElementsAre("10.41.0.2/24"));
  // Even without the round-robin hint, we must not hand out the reference's lease.
  std::filesystem::remove(NetDir() + "/last_reserved_ip.0");
  auto our = Call(OurPlugin(), "ADD", "our-a", conf);
  ASSERT_TRUE(our.ok()) << our.out;
  EXPECT_THAT(Addresses(our.out), ElementsAre("10.41.0.3/24"));
  // Requesting the reference's address fails; the reference refuses ours too.
  auto taken = Call(OurPlugin(), "ADD", "our-b", conf, "IP=10.41.0.2");
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(taken.out)["code"], 101);
  EXPECT_FALSE(Call(kRefPlugin, "ADD", "ref-b", conf, "IP=10.41.0.3").ok());
  // CHECK across plugins.
  std::string check_conf =
      Conf(R"("subnet":"10.41.0.0/24")", "1.0.0")
          .insert(1, R"("prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.41.0.2/24"}]},)");
  EXPECT_TRUE(Call(OurPlugin(), "CHECK", "ref-a", check_conf).ok());
  // Each releases the other's lease.
  ASSERT_TRUE(Call(OurPlugin(), "DEL", "ref-a", conf).ok());
  ASSERT_TRUE(Call(kRefPlugin, "DEL", "our-a", conf).ok());
  EXPECT_THAT(LeaseFiles(NetDir()), IsEmpty());
}

TEST_F(InteropTest, TwoHundredMixedAllocationsWithoutDuplicates) {
  std::string conf = Conf(R"("ranges":[[{"subnet":"10.42.0.0/24"}]])");
  std::mt19937 rng(42);
  std::set<std::string> addresses;
  std::vector<bool> by_ref(200);
  for (int i = 0; i < 200; ++i) {
    by_ref[i] = rng() % 2 == 0;
    // Occasionally drop the shared hint so each plugin has to skip the other's leases.
    if (rng() % 7 == 0) std::filesystem::remove(NetDir() + "/last_reserved_ip.0");
    auto r =
        Call(by_ref[i] ? kRefPlugin : OurPlugin().c_str(), "ADD", cninet::StrCat("c", i), conf);
    ASSERT_TRUE(r.ok()) << i << (by_ref[i] ? " ref: " : " ours: ") << r.out << r.err;
    auto addrs = Addresses(r.out);
    ASSERT_EQ(addrs.size(), 1u);
    EXPECT_TRUE(addresses.insert(addrs[0]).second) << "duplicate " << addrs[0] << " at " << i;
  }
  EXPECT_EQ(addresses.size(), 200u);
  EXPECT_EQ(LeaseFiles(NetDir()).size(), 200u);
  // Every lease is released by the plugin that did not create it.
  for (int i = 0; i < 200; ++i) {
    auto r =
        Call(by_ref[i] ? OurPlugin().c_str() : kRefPlugin, "DEL", cninet::StrCat("c", i), conf);
    ASSERT_TRUE(r.ok()) << i << r.out;
  }
  EXPECT_THAT(LeaseFiles(NetDir()), IsEmpty());
}

}  // namespace
}  // namespace cninet::ipam::e2e
