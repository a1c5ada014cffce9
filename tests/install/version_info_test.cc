// cninet's own version query (cninet/base/version_info.h): the library, the headers and CMake's
// project(VERSION) agree, and the compatibility rule follows SemVer with 0.y minors breaking.
#include "cninet/base/version_info.h"

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet {
namespace {

TEST(VersionInfoTest, LibraryReportsTheProjectVersion) {
  EXPECT_EQ(Version(), CNINET_EXPECTED_VERSION);  // project(cninet VERSION ...) at configure time.
  EXPECT_EQ(GetLibraryVersion().ToString(), Version());
  EXPECT_EQ(kHeaderVersion, GetLibraryVersion());
  EXPECT_STREQ(CNINET_VERSION_STRING, CNINET_EXPECTED_VERSION);
  EXPECT_TRUE(
      std::regex_match(std::string(Version()), std::regex(R"((0|[1-9]\d*)(\.(0|[1-9]\d*)){2})")));
}

TEST(VersionInfoTest, CompatibilityFollowsSemVerWithBreakingZeroMinors) {
  LibraryVersion lib = GetLibraryVersion();
  EXPECT_TRUE(IsCompatibleWithLibrary());
  EXPECT_TRUE(IsCompatibleWithLibrary({lib.major, lib.minor, lib.patch + 1}));
  EXPECT_FALSE(IsCompatibleWithLibrary({lib.major + 1, lib.minor, lib.patch}));
  if (lib.major == 0) {
    EXPECT_FALSE(IsCompatibleWithLibrary({0, lib.minor + 1, 0}));
    if (lib.minor > 0) {
      EXPECT_FALSE(IsCompatibleWithLibrary({0, lib.minor - 1, 0}));
    }
  } else {
    EXPECT_FALSE(IsCompatibleWithLibrary({lib.major, lib.minor + 1, 0}));
    if (lib.minor > 0) {
      EXPECT_TRUE(IsCompatibleWithLibrary({lib.major, lib.minor - 1, 0}));
    }
  }
}

TEST(VersionInfoTest, OrderingAndText) {
  EXPECT_LT((LibraryVersion{0, 1, 9}), (LibraryVersion{0, 2, 0}));
  EXPECT_LT((LibraryVersion{0, 9, 9}), (LibraryVersion{1, 0, 0}));
  EXPECT_EQ((LibraryVersion{1, 22, 333}).ToString(), "1.22.333");
}

// Every release has a CHANGELOG.md section "## [X.Y.Z] - date" (or "Unreleased" above it).
TEST(VersionInfoTest, ChangelogHasASectionForThisVersion) {
  std::ifstream in(std::string(CNINET_SOURCE_DIR) + "/CHANGELOG.md");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), testing::HasSubstr("## [" + std::string(Version()) + "]"));
}

}  // namespace
}  // namespace cninet
