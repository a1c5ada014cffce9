// cni::ConfigReader: typed reads of a plugin's configuration, type errors as CNI code 7 naming
// the key's JSON path.
#include "cninet/cni/config_reader.h"

#include <string>
#include <vector>

#include "cninet/cni/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::cni {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// Matches a failed Status/StatusOr with CNI code 7 whose message contains `text`.
MATCHER_P(InvalidConfigNaming, text, "") {
  absl::Status s = arg.status();
  *result_listener << "status: " << s;
  return !s.ok() && GetErrorCode(s) == 7 &&
         std::string(s.message()).find(text) != std::string::npos;
}

const json kConf = json::parse(R"({
  "name": "n", "mtu": 1400, "hairpin": true, "tags": ["a", "b"], "neg": -3, "ratio": 0.5,
  "ipam": {"type": "host-local",
           "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": 24}]]},
  "nothing": null
})");

TEST(ConfigReader, ReadsTypedValues) {
  ConfigReader r(kConf);
  EXPECT_EQ(*r.Get<std::string>("name"), "n");
  EXPECT_EQ(*r.Get<uint32_t>("mtu"), 1400u);
  EXPECT_EQ(*r.Get<int>("neg"), -3);
  EXPECT_TRUE(*r.Get<bool>("hairpin"));
  EXPECT_DOUBLE_EQ(*r.Get<double>("ratio"), 0.5);
  EXPECT_EQ(*r.Get<std::vector<std::string>>("tags"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.Get<json>("ipam")->at("type"), "host-local");
}

TEST(ConfigReader, OptionalAndMaybeUseTheDefaultForAbsentAndNull) {
  ConfigReader r(kConf);
  EXPECT_EQ(*r.Optional<std::string>("bridge", "cni0"), "cni0");
  EXPECT_EQ(*r.Optional<std::string>("nothing", "dflt"), "dflt");
  EXPECT_EQ(*r.Optional<uint32_t>("mtu", 0), 1400u);
  EXPECT_FALSE(r.Maybe<bool>("absent")->has_value());
  EXPECT_EQ(**r.Maybe<bool>("hairpin"), true);
  EXPECT_FALSE(r.Has("nothing"));
  EXPECT_TRUE(r.Has("ipam"));
}

TEST(ConfigReader, TypeErrorsAreCode7WithTheKeyPath) {
  ConfigReader r(kConf);
  EXPECT_THAT(r.Get<bool>("mtu"), InvalidConfigNaming("mtu: must be a boolean, not 1400"));
  EXPECT_THAT(r.Optional<std::string>("mtu", ""), InvalidConfigNaming("mtu: must be a string"));
  EXPECT_THAT(r.Get<uint32_t>("neg"), InvalidConfigNaming("neg: must be an unsigned 32-bit"));
  EXPECT_THAT(r.Get<uint8_t>("mtu"), InvalidConfigNaming("mtu: must be an integer from 0 to 255"));
  EXPECT_THAT(r.Get<std::string>("missing"), InvalidConfigNaming("missing: required"));
  EXPECT_THAT(ConfigReader(json::parse(R"({"l": ["a", 1]})")).Get<std::vector<std::string>>("l"),
              InvalidConfigNaming("l[1]: must be a string"));
}

TEST(ConfigReader, NestedObjectsAndListsExtendThePath) {
  ConfigReader r(kConf);
  absl::StatusOr<ConfigReader> ipam = r.Object("ipam");
  ASSERT_TRUE(ipam.ok()) << ipam.status();
  EXPECT_EQ(ipam->path(), "ipam");
  absl::StatusOr<std::vector<ConfigReader>> sets = ipam->List("ranges");
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->size(), 1u);
  absl::StatusOr<std::vector<ConfigReader>> ranges = (*sets)[0].Elements();
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  ASSERT_EQ(ranges->size(), 2u);
  EXPECT_EQ(*(*ranges)[0].Get<std::string>("subnet"), "10.0.0.0/24");
  EXPECT_THAT((*ranges)[1].Get<std::string>("subnet"),
              InvalidConfigNaming("ipam.ranges[0][1].subnet: must be a string, not 24"));
  EXPECT_THAT(r.Object("name"), InvalidConfigNaming("name: must be an object"));
  EXPECT_THAT(r.List("name"), InvalidConfigNaming("name: must be a list"));
  EXPECT_TRUE(r.List("absent")->empty());
  EXPECT_FALSE(r.OptionalObject("absent")->has_value());
  EXPECT_THAT(r.Object("absent"), InvalidConfigNaming("absent: required"));
}

TEST(ConfigReader, GoJsonMatchFindsKeysCaseInsensitively) {
  json j = json::parse(R"({"DataDir": "/x"})");
  EXPECT_FALSE(ConfigReader(j).Has("dataDir"));
  EXPECT_EQ(*ConfigReader(j, "", KeyMatch::kGoJson).Get<std::string>("dataDir"), "/x");
}

TEST(ConfigReader, OwnChecksUseThePath) {
  ConfigReader r(kConf);
  absl::Status s = r.At("mtu").Error("too small");
  EXPECT_EQ(GetErrorCode(s), 7u);
  EXPECT_THAT(std::string(s.message()), HasSubstr("mtu: too small"));
  EXPECT_EQ(ConfigReader(kConf, "conf").PathOf("ipam"), "conf.ipam");
}

}  // namespace
}  // namespace cninet::cni
