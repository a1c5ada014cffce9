// The commands around ADD/DEL as a runtime issues them: VERSION, CHECK, GC and STATUS (CNI 1.1),
// and that commands on a network that never allocated anything create nothing on disk.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_e2e.h"

namespace cninet::ipam::e2e {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using LifecycleTest = IpamE2eTest;

TEST_F(LifecycleTest, VersionListsTheSupportedVersions) {
  auto r = Call(OurPlugin(), "VERSION", "", R"({"cniVersion":"1.1.0"})");
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["cniVersion"], "1.1.0");
  EXPECT_EQ(j["supportedVersions"],
            nlohmann::json::array({"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}));
}

TEST_F(LifecycleTest, CommandsOnAnUntouchedNetworkCreateNothing) {
  const std::string conf = Conf(R"("subnet":"10.90.0.0/24")", "1.1.0");
  auto del = Call(OurPlugin(), "DEL", "nobody", conf);
  EXPECT_TRUE(del.ok()) << del.out;
  auto gc = Call(OurPlugin(), "GC", "", conf);
  EXPECT_TRUE(gc.ok()) << gc.out;
  auto status = Call(OurPlugin(), "STATUS", "", conf);
  EXPECT_TRUE(status.ok()) << status.out;
  auto check =
      Call(OurPlugin(), "CHECK", "nobody",
           std::string(conf).insert(1, R"("prevResult":{"cniVersion":"1.1.0","ips":[]},)"));
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(check.out, nullptr, false).value("code", 0), 103) << check.out;
  EXPECT_FALSE(std::filesystem::exists(DataDir())) << "a read-only command created the dataDir";
}

TEST_F(LifecycleTest, AddCheckGcStatusDel) {
  const std::string conf =
      Conf(R"("ranges":[[{"subnet":"10.91.0.0/30"}],[{"subnet":"fd91::/64"}]])", "1.1.0");
  auto add = Call(OurPlugin(), "ADD", "live", conf);
  ASSERT_TRUE(add.ok()) << add.out;
  EXPECT_THAT(Addresses(add.out), ElementsAre("10.91.0.2/30", "fd91::2/64"));
  // The IPv4 set is now full: STATUS says the plugin cannot serve another ADD.
  auto status = Call(OurPlugin(), "STATUS", "", conf);
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(status.out)["code"], 50);
  // CHECK with the ADD result as prevResult (what a runtime caches).
  nlohmann::json check = nlohmann::json::parse(conf);
  check["prevResult"] = nlohmann::json::parse(add.out);
  EXPECT_TRUE(Call(OurPlugin(), "CHECK", "live", check.dump()).ok());
  auto other = Call(OurPlugin(), "CHECK", "live", check.dump(), "", "eth1");
  EXPECT_EQ(other.exit_code, 1) << "another interface of the container holds no lease";
  // GC keeping the attachment keeps the leases; GC without it frees them and STATUS recovers.
  nlohmann::json gc = nlohmann::json::parse(conf);
  gc["cni.dev/valid-attachments"] =
      nlohmann::json::array({{{"containerID", "live"}, {"ifname", "eth0"}}});
  ASSERT_TRUE(Call(OurPlugin(), "GC", "", gc.dump()).ok());
  EXPECT_EQ(LeaseFiles(NetDir()).size(), 2u);
  gc["cni.dev/valid-attachments"] = nlohmann::json::array();
  ASSERT_TRUE(Call(OurPlugin(), "GC", "", gc.dump()).ok());
  EXPECT_THAT(LeaseFiles(NetDir()), IsEmpty());
  EXPECT_TRUE(Call(OurPlugin(), "STATUS", "", conf).ok());
  // GC and STATUS need CNI 1.1.
  auto old = Call(OurPlugin(), "GC", "", Conf(R"("subnet":"10.91.0.0/30")", "1.0.0"));
  EXPECT_EQ(nlohmann::json::parse(old.out, nullptr, false).value("code", 0), 1) << old.out;
  EXPECT_TRUE(Call(OurPlugin(), "DEL", "live", conf).ok());
}

}  // namespace
}  // namespace cninet::ipam::e2e
