// CNI_ARGS ("K=V;K=V", spec section 2 and CONVENTIONS.md): parsing, the Kubernetes keys,
// IGNORE_UNKNOWN and the error codes (4 for malformed CNI_ARGS, 2 for an unknown key).
#include <string>
#include <utility>
#include <vector>

#include "cninet/cni/conf.h"
#include "cninet/cni/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::cni {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;
using ::testing::HasSubstr;

[[maybe_unused]] absl::Status StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Matches a failed Status/StatusOr whose CNI error code is `code`.
MATCHER_P(HasCniCode, code, "fails with CNI code " + ::testing::PrintToString(code)) {
  absl::Status s = StatusOf(arg);
  *result_listener << "status: " << s << ", CNI code " << GetErrorCode(s);
  return !s.ok() && GetErrorCode(s) == static_cast<uint32_t>(code);
}

TEST(CniArgs, ParsesPairsInOrder) {
  absl::StatusOr<CniArgs> a = CniArgs::Parse("FOO=BAR;ABC=123");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->pairs(), (Pairs{{"FOO", "BAR"}, {"ABC", "123"}}));
  EXPECT_EQ(a->Get("FOO"), "BAR");
  EXPECT_EQ(a->Get("ABC"), "123");
  EXPECT_EQ(a->Get("abc"), std::nullopt);  // Keys are case-sensitive.
  EXPECT_EQ(a->Get("NOPE"), std::nullopt);
  EXPECT_EQ(a->ToString(), "FOO=BAR;ABC=123");
}

TEST(CniArgs, EmptyIsNoArguments) {
  absl::StatusOr<CniArgs> a = CniArgs::Parse("");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->pairs().empty());
  EXPECT_EQ(a->ToString(), "");
  EXPECT_FALSE(a->ignore_unknown());
  EXPECT_TRUE(a->CheckKnown({}).ok());
}

TEST(CniArgs, KubernetesKeysAreTyped) {
  // What kubelet/containerd pass (K8S_POD_UID since Kubernetes 1.21).
  absl::StatusOr<CniArgs> a = CniArgs::Parse(
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c9869d-x2x7q;"
      "K8S_POD_INFRA_CONTAINER_ID=0a1b2c3d4e5f;K8S_POD_UID=6b1e7f2a-1c9d-4e0b-9f3a-2d5c8e7b4a10");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->k8s_pod_namespace(), "kube-system");
  EXPECT_EQ(a->k8s_pod_name(), "coredns-5d78c9869d-x2x7q");
  EXPECT_EQ(a->k8s_pod_infra_container_id(), "0a1b2c3d4e5f");
  EXPECT_EQ(a->k8s_pod_uid(), "6b1e7f2a-1c9d-4e0b-9f3a-2d5c8e7b4a10");
  absl::StatusOr<CniArgs> none = CniArgs::Parse("FOO=1");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->k8s_pod_name(), std::nullopt);
  EXPECT_EQ(none->k8s_pod_namespace(), std::nullopt);
  EXPECT_EQ(none->k8s_pod_uid(), std::nullopt);
}

TEST(CniArgs, EmptyValueIsAllowedAndLastDuplicateWins) {
  absl::StatusOr<CniArgs> a = CniArgs::Parse("A=;B=1;A=2");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->pairs(), (Pairs{{"A", ""}, {"B", "1"}, {"A", "2"}}));
  EXPECT_EQ(a->Get("A"), "2");
  EXPECT_EQ(a->Get("B"), "1");
  EXPECT_EQ(a->ToString(), "A=;B=1;A=2");
}

TEST(CniArgs, MalformedIsCode4NamingCniArgs) {
  for (const char* bad : {"FOO", "=BAR", "FOO=BAR;BAZ", "FOO=BAR;=1", "A=1;B"}) {
    absl::StatusOr<CniArgs> a = CniArgs::Parse(bad);
    EXPECT_THAT(a, HasCniCode(ErrorCode::kInvalidEnvironment)) << bad;
    EXPECT_THAT(std::string(a.status().message()), HasSubstr("CNI_ARGS")) << bad;
  }
}

TEST(CniArgs, IgnoreUnknown) {
  for (const char* on : {"IGNORE_UNKNOWN=1", "IGNORE_UNKNOWN=true", "X=1;IGNORE_UNKNOWN=1"}) {
    absl::StatusOr<CniArgs> a = CniArgs::Parse(on);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(a->ignore_unknown()) << on;
  }
  for (const char* off : {"IGNORE_UNKNOWN=0", "IGNORE_UNKNOWN=false", "IGNORE_UNKNOWN=", "X=1"}) {
    absl::StatusOr<CniArgs> a = CniArgs::Parse(off);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_FALSE(a->ignore_unknown()) << off;
  }
}

// kubelet/dockershim, CRI-O and containerd send "IgnoreUnknown=1" (libcni's CommonArgs field,
// pkg/types/args.go, value "1" or "true" in any case); a plugin that honours only
// IGNORE_UNKNOWN would reject every Kubernetes invocation carrying K8S_* keys it does not know.
TEST(CniArgs, IgnoreUnknownAsRuntimesSendIt) {
  for (const char* on : {"IgnoreUnknown=1;K8S_POD_NAME=p", "IgnoreUnknown=True;K8S_POD_NAME=p"}) {
    absl::StatusOr<CniArgs> a = CniArgs::Parse(on);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(a->ignore_unknown()) << on;
    EXPECT_TRUE(a->CheckKnown({"K8S_POD_NAMESPACE"}).ok()) << on;
  }
  absl::StatusOr<CniArgs> off = CniArgs::Parse("IgnoreUnknown=0;K8S_POD_NAME=p");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->ignore_unknown());
}

TEST(CniArgs, CheckKnownReportsTheUnknownKeyWithCode2) {
  const std::vector<std::string_view> known = {"K8S_POD_NAMESPACE", "K8S_POD_NAME"};
  absl::StatusOr<CniArgs> ok = CniArgs::Parse("K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns");
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->CheckKnown(known).ok());

  absl::StatusOr<CniArgs> bad = CniArgs::Parse("K8S_POD_NAME=p;MYSTERY=42");
  ASSERT_TRUE(bad.ok());
  absl::Status s = bad->CheckKnown(known);
  EXPECT_THAT(s, HasCniCode(ErrorCode::kUnsupportedField));
  // Spec: "The error message must contain the key and value of the unsupported field."
  EXPECT_THAT(std::string(s.message()) + " " + GetErrorDetails(s), HasSubstr("MYSTERY"));

  // IGNORE_UNKNOWN is itself a known key; set, it suppresses the error.
  absl::StatusOr<CniArgs> ignored = CniArgs::Parse("IGNORE_UNKNOWN=1;MYSTERY=42");
  ASSERT_TRUE(ignored.ok());
  EXPECT_TRUE(ignored->CheckKnown(known).ok());
  absl::StatusOr<CniArgs> not_ignored = CniArgs::Parse("IGNORE_UNKNOWN=0;MYSTERY=42");
  ASSERT_TRUE(not_ignored.ok());
  absl::Status s2 = not_ignored->CheckKnown(known);
  EXPECT_THAT(s2, HasCniCode(ErrorCode::kUnsupportedField));
  EXPECT_THAT(std::string(s2.message()) + " " + GetErrorDetails(s2), HasSubstr("MYSTERY"));
}

TEST(CniArgs, ToStringParsesBackToTheSamePairs) {
  for (const char* text : {"A=1", "K8S_POD_NAME=x;K8S_POD_NAMESPACE=y", "A=;B=",
                           "LONG="
                           "a.b-c_d:e/f"}) {
    absl::StatusOr<CniArgs> a = CniArgs::Parse(text);
    ASSERT_TRUE(a.ok()) << text << ": " << a.status();
    absl::StatusOr<CniArgs> b = CniArgs::Parse(a->ToString());
    ASSERT_TRUE(b.ok()) << a->ToString();
    EXPECT_EQ(a->pairs(), b->pairs()) << text;
    EXPECT_EQ(a->ToString(), text);
  }
}

}  // namespace
}  // namespace cninet::cni
