// The agent's policy conversion (pure, no root): state-model Namespaces, Pods and NetworkPolicies
// (as written with etcdctl, in canonical JSON) -> the policy compiler's input, and what the
// compiled result decides for new flows (datapath::EvaluatePolicy, the same decision the BPF
// program makes), so a JSON field that converted to the wrong meaning shows up as a wrong verdict.
#include "cninet/agent/policy.h"

#include <string>
#include <vector>

#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/policy_compiler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

cni::IPAddress Ip(const char* s) { return *cni::IPAddress::Parse(s); }

// Decodes `json` stored at `key` exactly as the agent's watch does (strict, validated).
template <typename T>
T Decode(const std::string& key, const std::string& json) {
  T out;
  absl::Status st = DecodeObject(ObjectTraits<T>::kKind, key, json, &out);
  EXPECT_TRUE(st.ok()) << key << ": " << st;
  return out;
}

TEST(PolicyConvertTest, SelectorOperatorsAndLabels) {
  v1::LabelSelector sel = Decode<v1::NetworkPolicy>("/cninet/v1/networkpolicies/ns/p",
                                                    R"({"podSelector":{"matchLabels":{"app":"web"},
                                  "matchExpressions":[
                                    {"key":"tier","operator":"IN","values":["a","b"]},
                                    {"key":"env","operator":"NOT_IN","values":["dev"]},
                                    {"key":"team","operator":"EXISTS"},
                                    {"key":"debug","operator":"DOES_NOT_EXIST"}]}})")
                              .pod_selector();
  dp::LabelSelector s = ToPolicySelector(sel);
  EXPECT_EQ(s.ToString(), "app=web,tier in (a,b),env notin (dev),team,!debug");
  EXPECT_TRUE(s.Matches({{"app", "web"}, {"tier", "a"}, {"team", "x"}}));
  EXPECT_FALSE(s.Matches({{"app", "web"}, {"tier", "c"}, {"team", "x"}}));
  EXPECT_FALSE(s.Matches({{"app", "web"}, {"tier", "a"}, {"team", "x"}, {"env", "dev"}}));
  EXPECT_FALSE(s.Matches({{"app", "web"}, {"tier", "a"}, {"team", "x"}, {"debug", "1"}}));
  EXPECT_FALSE(s.Matches({{"app", "web"}, {"tier", "a"}}));
}

TEST(PolicyConvertTest, NamespaceAndPod) {
  auto ns = ToPolicyNamespace(Decode<v1::Namespace>(
      "/cninet/v1/namespaces/iso", R"({"isolated":true,"labels":{"team":"blue"}})"));
  ASSERT_TRUE(ns.ok()) << ns.status();
  EXPECT_EQ(ns->name, "iso");
  EXPECT_TRUE(ns->isolated);
  EXPECT_EQ(ns->labels, (dp::Labels{{"team", "blue"}}));

  v1::Pod pod = Decode<v1::Pod>("/cninet/v1/pods/iso/a",
                                R"({"node":"node-1","ips":["10.244.1.5","fd00::5"],
                                    "labels":{"role":"db"}})");
  auto local = ToPolicyPod(pod, "node-1");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->Key(), "iso/a");
  EXPECT_TRUE(local->local);
  EXPECT_THAT(local->addresses, ElementsAre(Ip("10.244.1.5"), Ip("fd00::5")));
  EXPECT_EQ(local->labels, (dp::Labels{{"role", "db"}}));
  auto remote = ToPolicyPod(pod, "node-2");
  ASSERT_TRUE(remote.ok());
  EXPECT_FALSE(remote->local);

  v1::Pod bad = pod;
  bad.add_ips("not-an-ip");
  EXPECT_THAT(std::string(ToPolicyPod(bad, "node-1").status().message()), HasSubstr("not-an-ip"));
}

TEST(PolicyConvertTest, EveryNetworkPolicyFeature) {
  v1::NetworkPolicy in = Decode<v1::NetworkPolicy>("/cninet/v1/networkpolicies/web/p", R"({
      "podSelector":{"matchLabels":{"role":"api"}},
      "policyTypes":["INGRESS"],
      "ingress":[
        {"from":[{"podSelector":{"matchLabels":{"role":"frontend"}}}],
         "ports":[{"port":80},{"protocol":"UDP","port":53},{"protocol":"SCTP","port":9000,
                   "endPort":9010}]},
        {"from":[{"namespaceSelector":{"matchLabels":{"team":"ops"}}},
                 {"namespaceSelector":{"matchLabels":{"team":"dev"}},
                  "podSelector":{"matchLabels":{"role":"ci"}}},
                 {"ipBlock":{"cidr":"192.168.0.0/16","except":["192.168.7.0/24"]}}]},
        {}]})");
  auto p = ToPolicy(in);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->Key(), "web/p");
  EXPECT_EQ(p->pod_selector.ToString(), "role=api");
  EXPECT_THAT(p->policy_types, ElementsAre(dp::PolicyType::kIngress));
  ASSERT_THAT(p->ingress, SizeIs(3));
  const dp::IngressRule& r0 = p->ingress[0];
  ASSERT_THAT(r0.from, SizeIs(1));
  ASSERT_TRUE(r0.from[0].pod_selector.has_value());
  EXPECT_FALSE(r0.from[0].namespace_selector.has_value());
  EXPECT_EQ(r0.from[0].pod_selector->ToString(), "role=frontend");
  EXPECT_THAT(r0.ports, ElementsAre(dp::PolicyPort{dp::PolicyProtocol::kTcp, 80, 0},
                                    dp::PolicyPort{dp::PolicyProtocol::kUdp, 53, 0},
                                    dp::PolicyPort{dp::PolicyProtocol::kSctp, 9000, 9010}));
  const dp::IngressRule& r1 = p->ingress[1];
  ASSERT_THAT(r1.from, SizeIs(3));
  EXPECT_FALSE(r1.from[0].pod_selector.has_value());
  EXPECT_EQ(r1.from[0].namespace_selector->ToString(), "team=ops");
  EXPECT_EQ(r1.from[1].pod_selector->ToString(), "role=ci");
  EXPECT_EQ(r1.from[1].namespace_selector->ToString(), "team=dev");
  ASSERT_TRUE(r1.from[2].ip_block.has_value());
  EXPECT_EQ(r1.from[2].ip_block->cidr.ToString(), "192.168.0.0/16");
  ASSERT_THAT(r1.from[2].ip_block->except, SizeIs(1));
  EXPECT_EQ(r1.from[2].ip_block->except[0].ToString(), "192.168.7.0/24");
  EXPECT_THAT(r1.ports, IsEmpty());
  EXPECT_THAT(p->ingress[2].from, IsEmpty());  // {}: every source, every port
  EXPECT_TRUE(p->AffectsIngress());
}

TEST(PolicyConvertTest, PolicyTypesAndAbsentPodSelector) {
  auto egress_only = ToPolicy(
      Decode<v1::NetworkPolicy>("/cninet/v1/networkpolicies/a/p", R"({"policyTypes":["EGRESS"]})"));
  ASSERT_TRUE(egress_only.ok());
  EXPECT_FALSE(egress_only->AffectsIngress());
  auto deny_all = ToPolicy(Decode<v1::NetworkPolicy>("/cninet/v1/networkpolicies/a/deny", "{}"));
  ASSERT_TRUE(deny_all.ok());
  EXPECT_TRUE(deny_all->AffectsIngress());
  EXPECT_TRUE(deny_all->pod_selector.empty());  // every pod of the namespace
  EXPECT_THAT(deny_all->ingress, IsEmpty());    // no rule: deny all ingress
}

// The snapshot keeps every valid object and reports the others; egress rules are reported as
// not enforced.
TEST(PolicyConvertTest, SnapshotSkipsWhatDoesNotConvert) {
  v1::Pod good = Decode<v1::Pod>("/cninet/v1/pods/a/good", R"({"node":"n1","ips":["10.0.0.1"]})");
  v1::Pod bad = good;
  bad.set_name("bad");
  bad.add_ips("garbage");  // the store would refuse it; a cache could still hold it
  v1::Namespace ns = Decode<v1::Namespace>("/cninet/v1/namespaces/a", R"({"isolated":true})");
  v1::Namespace bad_ns;  // no name
  v1::NetworkPolicy with_egress = Decode<v1::NetworkPolicy>(
      "/cninet/v1/networkpolicies/a/e",
      R"({"egress":[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}]}],"ingress":[{}]})");
  std::vector<const v1::Pod*> pods = {&good, &bad};
  std::vector<const v1::Namespace*> nss = {&ns, &bad_ns};
  std::vector<const v1::NetworkPolicy*> pols = {&with_egress};
  std::vector<PlanWarning> warns;
  dp::PolicySnapshot snap = BuildPolicySnapshot(nss, pods, pols, "n1", &warns);
  ASSERT_THAT(snap.pods, SizeIs(1));
  EXPECT_EQ(snap.pods[0].Key(), "a/good");
  EXPECT_TRUE(snap.pods[0].local);
  ASSERT_THAT(snap.namespaces, SizeIs(1));
  EXPECT_TRUE(snap.namespaces[0].isolated);
  ASSERT_THAT(snap.policies, SizeIs(1));
  ASSERT_THAT(warns, SizeIs(3));
  EXPECT_EQ(warns[0].object, "namespace ");
  EXPECT_EQ(warns[1].object, "a/bad");
  EXPECT_THAT(warns[1].message, HasSubstr("garbage"));
  EXPECT_EQ(warns[2].object, "networkpolicy a/e");
  EXPECT_THAT(warns[2].message, HasSubstr("egress rules are not enforced"));
}

// What the converted objects mean once compiled: the scenario of the e2e test, decided by the
// compiler's model of the datapath check.
class PolicySemanticsTest : public ::testing::Test {
 protected:
  void AddPod(const char* ns, const char* name, const char* ip, const char* labels_json,
              const char* node = "n1") {
    pods_.push_back(Decode<v1::Pod>(
        StrCat("/cninet/v1/pods/", ns, "/", name),
        StrCat(R"({"node":")", node, R"(","ips":[")", ip, R"("],"labels":)", labels_json, "}")));
  }
  dp::PolicyState Compile() {
    std::vector<const v1::Pod*> pods;
    for (const auto& p : pods_) pods.push_back(&p);
    std::vector<const v1::Namespace*> nss;
    for (const auto& n : namespaces_) nss.push_back(&n);
    std::vector<const v1::NetworkPolicy*> pols;
    for (const auto& p : policies_) pols.push_back(&p);
    std::vector<PlanWarning> warns;
    dp::PolicySnapshot snap = BuildPolicySnapshot(nss, pods, pols, "n1", &warns);
    EXPECT_THAT(warns, IsEmpty());
    EXPECT_TRUE(compiler_.Replace(snap).ok());
    compiler_.Compile();
    return compiler_.state();
  }
  static bool Allowed(const dp::PolicyState& st, const char* src, const char* dst, uint16_t port,
                      bool via_service = false) {
    dp::PolicyQuery q;
    q.src = Ip(src);
    q.dst = Ip(dst);
    q.port = port;
    q.via_service = via_service;
    return dp::EvaluatePolicy(st, q).allowed;
  }

  std::vector<v1::Pod> pods_;
  std::vector<v1::Namespace> namespaces_;
  std::vector<v1::NetworkPolicy> policies_;
  dp::PolicyCompiler compiler_;
};

TEST_F(PolicySemanticsTest, FrontendOnPort80Only) {
  AddPod("web", "api", "10.244.1.2", R"({"role":"api"})");
  AddPod("web", "fe", "10.244.2.2", R"({"role":"frontend"})", "n2");
  AddPod("web", "be", "10.244.3.2", R"({"role":"backend"})", "n3");
  AddPod("other", "fe2", "10.244.2.3", R"({"role":"frontend"})", "n2");
  dp::PolicyState open = Compile();
  EXPECT_TRUE(Allowed(open, "10.244.3.2", "10.244.1.2", 80));  // no policy: all allowed

  policies_.push_back(Decode<v1::NetworkPolicy>("/cninet/v1/networkpolicies/web/api-frontend", R"({
      "podSelector":{"matchLabels":{"role":"api"}},
      "ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"frontend"}}}],
                  "ports":[{"protocol":"TCP","port":80}]}]})"));
  dp::PolicyState st = Compile();
  EXPECT_TRUE(Allowed(st, "10.244.2.2", "10.244.1.2", 80));
  EXPECT_FALSE(Allowed(st, "10.244.2.2", "10.244.1.2", 8080));
  EXPECT_FALSE(Allowed(st, "10.244.3.2", "10.244.1.2", 80));
  // podSelector alone: frontends of the policy's namespace only.
  EXPECT_FALSE(Allowed(st, "10.244.2.3", "10.244.1.2", 80));
  // A label change on the backend pod (as written to the store) admits it.
  pods_[2].mutable_labels()->at("role") = "frontend";
  st = Compile();
  EXPECT_TRUE(Allowed(st, "10.244.3.2", "10.244.1.2", 80));
}

TEST_F(PolicySemanticsTest, IsolatedNamespaceRules) {
  AddPod("iso", "a", "10.244.1.2", "{}");
  AddPod("iso", "b", "10.244.2.2", "{}", "n2");
  AddPod("other", "o", "10.244.1.3", "{}");
  namespaces_.push_back(Decode<v1::Namespace>("/cninet/v1/namespaces/iso", R"({"isolated":true})"));
  dp::PolicyState st = Compile();
  EXPECT_TRUE(Allowed(st, "10.244.2.2", "10.244.1.2", 8080));   // (a) same namespace
  EXPECT_FALSE(Allowed(st, "10.244.1.3", "10.244.1.2", 8080));  // (b) other namespace
  EXPECT_TRUE(Allowed(st, "10.244.1.2", "10.244.1.3", 8080));   // (c) other pod not isolated
  EXPECT_TRUE(Allowed(st, "10.244.1.3", "10.244.1.2", 8080, /*via_service=*/true));  // (e)
  // Turning isolation off (the flag written to the store) opens the pod again.
  namespaces_[0].set_isolated(false);
  st = Compile();
  EXPECT_TRUE(Allowed(st, "10.244.1.3", "10.244.1.2", 8080));
}

}  // namespace
}  // namespace cninet::agent
