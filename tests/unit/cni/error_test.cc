#include "cninet/cni/error.h"

#include "cninet/base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::cni {
namespace {

TEST(Error, CodeSurvivesAnnotate) {
  absl::Status s = CniError(ErrorCode::kInvalidConfig, "bad subnet", "10.0.0.0/33");
  absl::Status a = Annotate(s, "ipam");
  EXPECT_EQ(GetErrorCode(a), 7u);
  EXPECT_EQ(a.message(), "ipam: bad subnet");
  EXPECT_EQ(GetErrorDetails(a), "10.0.0.0/33");
}

TEST(Error, JsonShapeFollowsSpec) {
  nlohmann::json j = ErrorToJson(CniError(ErrorCode::kTryAgainLater, "busy"), "1.1.0");
  EXPECT_EQ(j, nlohmann::json::parse(R"({"cniVersion":"1.1.0","code":11,"msg":"busy"})"));
  EXPECT_EQ(ErrorToJson(CniError(ErrorCode::kIoFailure, "read", "stdin"), "1.0.0")["details"],
            "stdin");
}

TEST(Error, PlainStatusesMapToSensibleCodes) {
  EXPECT_EQ(GetErrorCode(absl::OkStatus()), 0u);
  EXPECT_EQ(GetErrorCode(absl::InvalidArgumentError("x")), 7u);
  EXPECT_EQ(GetErrorCode(absl::UnavailableError("x")), 11u);
  EXPECT_EQ(GetErrorCode(absl::InternalError("x")), 999u);
  EXPECT_EQ(GetErrorCode(CniError(123u, "mine")), 123u);
}

TEST(Error, ParsesPluginOutput) {
  absl::Status s = ErrorFromJson(R"({"cniVersion":"1.0.0","code":7,"msg":"m","details":"d"})");
  EXPECT_EQ(GetErrorCode(s), 7u);
  EXPECT_EQ(s.message(), "m");
  EXPECT_EQ(GetErrorDetails(s), "d");
  absl::Status t = ErrorFromJson("panic: something\n");
  EXPECT_EQ(GetErrorCode(t), 999u);
  EXPECT_EQ(t.message(), "panic: something");
}

}  // namespace
}  // namespace cninet::cni
