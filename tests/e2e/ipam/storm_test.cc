// Concurrency: 64 plugin processes at once on one network, as a node starting many pods does.
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cninet/base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_e2e.h"

namespace cninet::ipam::e2e {
namespace {

using ::testing::IsEmpty;

constexpr int kProcesses = 64;

class StormTest : public IpamE2eTest {
 protected:
  // Runs `command` for containers s0..s63 concurrently; returns each process's outcome.
  std::vector<cninet::testing::CommandResult> Storm(const std::string& command,
                                                    const std::string& conf) {
    std::vector<cninet::testing::CommandResult> results(kProcesses);
    std::vector<std::thread> threads;
    for (int i = 0; i < kProcesses; ++i) {
      threads.emplace_back(
          [&, i] { results[i] = Call(OurPlugin(), command, cninet::StrCat("s", i), conf); });
    }
    for (auto& t : threads) t.join();
    return results;
  }
};

TEST_F(StormTest, SixtyFourConcurrentAddsThenDels) {
  std::string conf = Conf(R"("ranges":[[{"subnet":"10.50.0.0/24"}],[{"subnet":"fd50::/64"}]])");
  auto adds = Storm("ADD", conf);
  std::set<std::string> v4, v6;
  for (int i = 0; i < kProcesses; ++i) {
    ASSERT_TRUE(adds[i].ok()) << i << ": " << adds[i].out << adds[i].err;
    auto addrs = Addresses(adds[i].out);
    ASSERT_EQ(addrs.size(), 2u) << adds[i].out;
    v4.insert(addrs[0]);
    v6.insert(addrs[1]);
  }
  EXPECT_EQ(v4.size(), static_cast<size_t>(kProcesses)) << "duplicate IPv4 addresses";
  EXPECT_EQ(v6.size(), static_cast<size_t>(kProcesses)) << "duplicate IPv6 addresses";
  EXPECT_EQ(LeaseFiles(NetDir()).size(), 2u * kProcesses);
  // Every lease file holds exactly one owner record, for the address it was reported to.
  for (int i = 0; i < kProcesses; ++i) {
    for (const std::string& a : Addresses(adds[i].out)) {
      std::string ip = a.substr(0, a.find('/'));
      EXPECT_EQ(cninet::testing::ReadFile(NetDir() + "/" + ip), cninet::StrCat("s", i, "\r\neth0"));
    }
  }

  auto dels = Storm("DEL", conf);
  for (int i = 0; i < kProcesses; ++i) ASSERT_TRUE(dels[i].ok()) << i << ": " << dels[i].out;
  EXPECT_THAT(LeaseFiles(NetDir()), IsEmpty());
  // No debris either: only the lock and the round-robin hints remain.
  for (const auto& [path, v] : Snapshot(NetDir())) {
    EXPECT_TRUE(path == "/lock" || path.rfind("/last_reserved_ip.", 0) == 0) << path;
  }
}

TEST_F(StormTest, ExhaustionOfASlash29UnderConcurrency) {
  // 10.51.0.0/29: .0 network, .1 gateway, .7 broadcast; .2-.6 free = 5 addresses.
  std::string conf = Conf(R"("subnet":"10.51.0.0/29")");
  auto adds = Storm("ADD", conf);
  std::set<std::string> got;
  int ok = 0, exhausted = 0;
  for (int i = 0; i < kProcesses; ++i) {
    if (adds[i].ok()) {
      ++ok;
      auto addrs = Addresses(adds[i].out);
      ASSERT_EQ(addrs.size(), 1u);
      EXPECT_TRUE(got.insert(addrs[0]).second) << "duplicate " << addrs[0];
    } else {
      auto err = nlohmann::json::parse(adds[i].out, nullptr, false);
      ASSERT_TRUE(err.is_object()) << adds[i].out << adds[i].err;
      EXPECT_EQ(err["code"], 100) << adds[i].out;
      EXPECT_THAT(
          err["msg"].get<std::string>(),
          ::testing::HasSubstr("no IP addresses available in range set: 10.51.0.1-10.51.0.6"));
      ++exhausted;
    }
  }
  EXPECT_EQ(ok, 5);
  EXPECT_EQ(exhausted, kProcesses - 5);
  EXPECT_EQ(got, (std::set<std::string>{"10.51.0.2/29", "10.51.0.3/29", "10.51.0.4/29",
                                        "10.51.0.5/29", "10.51.0.6/29"}));
  EXPECT_EQ(LeaseFiles(NetDir()).size(), 5u);
  // STATUS (CNI 1.1) reports the exhausted pool.
  auto status = Call(OurPlugin(), "STATUS", "", Conf(R"("subnet":"10.51.0.0/29")", "1.1.0"));
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(status.out, nullptr, false)["code"], 50) << status.out;
}

}  // namespace
}  // namespace cninet::ipam::e2e
