// The pure-logic parts of attach.h: the requested MAC (precedence and validation) and the "mtu"
// configuration key. CNI error codes are what a runtime sees.
#include "cninet/netlink/attach.h"

#include "cninet/cni/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::netlink {
namespace {

cni::CmdArgs ArgsWith(const nlohmann::json& conf, std::string_view cni_args = {}) {
  cni::CmdArgs a;
  auto parsed = cni::NetConf::FromJson(conf);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (parsed.ok()) a.conf = *parsed;
  auto args = cni::CniArgs::Parse(cni_args);
  EXPECT_TRUE(args.ok());
  if (args.ok()) a.args = *args;
  return a;
}

nlohmann::json Base() { return {{"cniVersion", "1.0.0"}, {"name", "n"}, {"type", "cninet-ptp"}}; }

TEST(RequestedMacTest, NoneByDefault) {
  auto mac = RequestedMac(ArgsWith(Base()));
  ASSERT_TRUE(mac.ok()) << mac.status();
  EXPECT_FALSE(mac->has_value());
}

TEST(RequestedMacTest, PrecedenceRuntimeConfigThenArgsThenCniArgs) {
  nlohmann::json c = Base();
  auto from_env = RequestedMac(ArgsWith(c, "K8S_POD_NAME=x;MAC=0a:00:00:00:00:01"));
  ASSERT_TRUE(from_env.ok());
  EXPECT_EQ((*from_env)->ToString(), "0a:00:00:00:00:01");

  c["args"] = {{"cni", {{"mac", "0a:00:00:00:00:02"}}}};
  auto from_args = RequestedMac(ArgsWith(c, "MAC=0a:00:00:00:00:01"));
  ASSERT_TRUE(from_args.ok());
  EXPECT_EQ((*from_args)->ToString(), "0a:00:00:00:00:02");

  c["runtimeConfig"] = {{"mac", "0A:00:00:00:00:03"}};
  auto from_rc = RequestedMac(ArgsWith(c, "MAC=0a:00:00:00:00:01"));
  ASSERT_TRUE(from_rc.ok());
  EXPECT_EQ((*from_rc)->ToString(), "0a:00:00:00:00:03");
}

TEST(RequestedMacTest, InvalidOnesAreConfigErrorsNamingTheSource) {
  nlohmann::json c = Base();
  c["runtimeConfig"] = {{"mac", "not-a-mac"}};
  auto bad = RequestedMac(ArgsWith(c));
  EXPECT_EQ(cni::GetErrorCode(bad.status()), 7u);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("runtimeConfig.mac"));

  auto multicast = RequestedMac(ArgsWith(Base(), "MAC=01:00:5e:00:00:01"));
  EXPECT_EQ(cni::GetErrorCode(multicast.status()), 7u);
  EXPECT_THAT(std::string(multicast.status().message()), ::testing::HasSubstr("CNI_ARGS MAC"));

  auto zero = RequestedMac(ArgsWith(Base(), "MAC=00:00:00:00:00:00"));
  EXPECT_EQ(cni::GetErrorCode(zero.status()), 7u);

  c = Base();
  c["runtimeConfig"] = {{"mac", 5}};
  EXPECT_EQ(cni::GetErrorCode(RequestedMac(ArgsWith(c)).status()), 7u);
}

TEST(ConfigMtuTest, RangeAndType) {
  EXPECT_EQ(*ConfigMtu(nlohmann::json::object()), 0u);
  EXPECT_EQ(*ConfigMtu({{"mtu", 1400}}), 1400u);
  EXPECT_EQ(*ConfigMtu({{"mtu", 0}}), 0u);
  EXPECT_EQ(*ConfigMtu({{"mtu", 65535}}), 65535u);
  for (const nlohmann::json& bad : {nlohmann::json(67), nlohmann::json(65536), nlohmann::json(-1),
                                    nlohmann::json("1400"), nlohmann::json(1400.5)}) {
    auto m = ConfigMtu({{"mtu", bad}});
    EXPECT_EQ(cni::GetErrorCode(m.status()), 7u) << bad.dump();
  }
}

}  // namespace
}  // namespace cninet::netlink
