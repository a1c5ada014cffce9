// Malformed configurations and hostile names: each gets the right CNI error code and nothing on
// disk changes (an existing network's leases stay byte-identical, no directory is created).
#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_e2e.h"

namespace cninet::ipam::e2e {
namespace {

struct BadCase {
  std::string what;
  std::string conf;  // Complete network configuration.
  uint32_t code;     // Expected CNI error code.
  std::string container_id = "ctr-bad";
  std::string ifname = "eth0";
  std::string cni_args;
};

using BadInputTest = IpamE2eTest;

TEST_F(BadInputTest, EveryCaseFailsWithItsCodeAndChangesNothing) {
  const std::string dd = DataDir();
  auto conf = [&](const std::string& ipam_body, const std::string& name = "e2enet",
                  const std::string& version = "1.0.0") {
    return "{\"cniVersion\":\"" + version + "\",\"name\":\"" + name +
           R"(","type":"mock","ipam":{"type":"cninet-host-local","dataDir":")" + dd + "\"," +
           ipam_body + "}}";
  };
  const std::string good = R"("subnet":"10.70.0.0/24")";
  // A symlinked network directory pointing outside dataDir.
  std::filesystem::create_directories(tmp_.Sub("outside"));
  std::filesystem::create_directories(dd);
  std::filesystem::create_directory_symlink(tmp_.Sub("outside"), dd + "/linked");

  std::vector<BadCase> cases = {
      {"not JSON", "{\"cniVersion\":\"1.0.0\",", 6},
      {"ranges not a list", conf(R"("ranges":"10.70.0.0/24")"), 7},
      {"subnet not a string", conf(R"("subnet":24)"), 7},
      {"no ipam section", R"({"cniVersion":"1.0.0","name":"e2enet","type":"mock"})", 7},
      {"no ranges", conf(R"("routes":[])"), 7},
      {"overlapping range sets",
       conf(R"("ranges":[[{"subnet":"10.70.0.0/24"}],[{"subnet":"10.70.0.128/25"}]])"), 7},
      {"host bits in subnet", conf(R"("subnet":"10.70.0.5/24")"), 7},
      {"subnet too small", conf(R"("subnet":"10.70.0.0/31")"), 7},
      {"rangeStart outside subnet", conf(R"("subnet":"10.70.0.0/24","rangeStart":"10.71.0.1")"), 7},
      {"rangeStart after rangeEnd",
       conf(R"("subnet":"10.70.0.0/24","rangeStart":"10.70.0.9","rangeEnd":"10.70.0.3")"), 7},
      {"mixed families in a set",
       conf(R"("ranges":[[{"subnet":"10.70.0.0/24"},{"subnet":"fd70::/64"}]])"), 7},
      {"gateway of the other family", conf(R"("subnet":"10.70.0.0/24","gateway":"fd70::1")"), 7},
      {"bad route", conf(good + R"(,"routes":[{"dst":"default"}])"), 7},
      {"relative dataDir",
       R"({"cniVersion":"1.0.0","name":"e2enet","ipam":{"type":"x","dataDir":"rel/dir",)" + good +
           "}}",
       7},
      {"dataDir with a newline",
       R"({"cniVersion":"1.0.0","name":"e2enet","ipam":{"type":"x","dataDir":")" + dd + R"(\nx",)" +
           good + "}}",
       7},
      {"network name escaping dataDir", conf(good, "../escape"), 7},
      {"network name with a slash", conf(good, "a/b"), 7},
      {"symlinked network directory", conf(good, "linked"), 5},
      {"container ID with a slash", conf(good), 4, "../../etc"},
      {"container ID with CRLF", conf(good), 4, "a\r\nb"},
      {"over-long container ID", conf(good), 4, std::string(600, 'a')},
      {"ifname with a slash", conf(good), 4, "ctr-bad", "eth/0"},
      {"over-long ifname", conf(good), 4, "ctr-bad", "eth0123456789abcdef"},
      {"ifname ..", conf(good), 4, "ctr-bad", ".."},
      {"unknown CNI_ARGS key", conf(good), 2, "ctr-bad", "eth0", "FOO=bar"},
      {"bad IP in CNI_ARGS", conf(good), 4, "ctr-bad", "eth0", "IP=10.70.0.999"},
      {"requested IP outside the ranges", conf(good), 7, "ctr-bad", "eth0", "IP=10.99.0.5"},
      {"requested gateway", conf(good), 7, "ctr-bad", "eth0", "IP=10.70.0.1"},
      {"unsupported cniVersion", conf(good, "e2enet", "9.9.9"), 1},
      {"missing resolvConf file", conf(good + R"(,"resolvConf":"/nonexistent/resolv.conf")"), 5},
  };
  ASSERT_GE(cases.size(), 15u);

  // An existing network with a lease, which no failing call may touch.
  ASSERT_TRUE(Call(OurPlugin(), "ADD", "existing", conf(good)).ok());
  const auto before = Snapshot(tmp_.path());

  for (const BadCase& c : cases) {
    auto r = Call(OurPlugin(), "ADD", c.container_id, c.conf, c.cni_args, c.ifname);
    EXPECT_EQ(r.exit_code, 1) << c.what << ": " << r.out;
    auto err = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_TRUE(err.is_object() && err.contains("code") && err.contains("msg"))
        << c.what << ": not a CNI error object: " << r.out << r.err;
    EXPECT_EQ(err["code"], c.code) << c.what << ": " << r.out;
    EXPECT_EQ(Snapshot(tmp_.path()), before) << c.what << " changed the disk";
  }
  // DEL with the same hostile names is refused too, and also changes nothing.
  for (const BadCase& c : cases) {
    if (c.code != 4) continue;
    auto r = Call(OurPlugin(), "DEL", c.container_id, c.conf, c.cni_args, c.ifname);
    EXPECT_EQ(r.exit_code, 1) << "DEL " << c.what;
    EXPECT_EQ(nlohmann::json::parse(r.out, nullptr, false).value("code", 0), 4) << r.out;
  }
  EXPECT_EQ(Snapshot(tmp_.path()), before);
  EXPECT_FALSE(std::filesystem::exists(tmp_.Sub("escape")));
  EXPECT_TRUE(std::filesystem::is_empty(tmp_.Sub("outside")));
}

}  // namespace
}  // namespace cninet::ipam::e2e
