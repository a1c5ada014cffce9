// The agent's policy reconciler against the real kernel (root): real policy maps pinned in a
// private bpffs, the real to-pod program attached to veths in a test namespace. Checks what the
// maps hold after each pass, that a pass changes only what its input changed (unrelated
// endpoints' entries stay byte-for-byte), and that the to-pod program follows the pods'
// interfaces (attached once, again when the veth is recreated or on a full sync).
#include <map>
#include <string>
#include <vector>

#include "cninet/agent/policy.h"
#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/datapath.h"
#include "cninet/netlink/netlink.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;
namespace nl = ::cninet::netlink;
using ::cninet::testing::ScopedNetns;
using ::testing::IsEmpty;

cni::IPAddress Ip(const char* s) { return *cni::IPAddress::Parse(s); }
cni::IPAddress V4(const char* s) { return Ip(s); }

class PolicyReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    for (const char* i : {"1", "2", "3"}) AddVeth(i);
    auto ns = nl::Netns::Open(node_.path());
    ASSERT_TRUE(ns.ok()) << ns.status();
    auto h = nl::Handle::OpenIn(*ns);
    ASSERT_TRUE(h.ok()) << h.status();
    handle_.emplace(*std::move(h));
    dp::DatapathConfig c;
    c.bpffs_root = fs_.path();
    c.instance = "pol";
    c.cluster_cidr = *cni::IPPrefix::Parse("10.244.0.0/16");
    c.node_addresses = {Ip("192.168.1.11")};
    c.map_sizes = {.conntrack = 1024,
                   .nat = 1024,
                   .services = 64,
                   .service_slots = 16,
                   .backends = 256,
                   .affinity = 64,
                   .endpoints = 64};
    auto d = dp::Datapath::Create(c);
    ASSERT_TRUE(d.ok()) << d.status();
    dp_ = *std::move(d);
    reconciler_ = std::make_unique<PolicyReconciler>(
        &dp_->policy(), "node-1",
        [this](std::string_view ifname) {
          ++attach_calls_[std::string(ifname)];
          return datapath::testing::RunInNetns(node_.path(), [&]() -> absl::Status {
            auto a = dp_->Attach(dp::Hook::kToPod, ifname);
            if (!a.ok()) return a.status();
            a->Release();
            return absl::OkStatus();
          });
        },
        [this](std::string_view ifname) {
          auto l = handle_->GetLink(ifname);
          return l.ok() ? l->index : 0;
        });
  }

  void AddVeth(const char* i) {
    ASSERT_TRUE(node_
                    .Exec(StrCat("ip link add hv", i, " type veth peer name pv", i,
                                 " && ip link set hv", i, " up && ip link set pv", i, " up"))
                    .ok());
  }

  // Pod objects as the store holds them.
  void Pod(const char* ns, const char* name, const char* ip, const char* node, const char* ifname,
           std::map<std::string, std::string> labels = {}) {
    v1::Pod p;
    p.set_namespace_(ns);
    p.set_name(name);
    p.set_node(node);
    p.add_ips(ip);
    p.set_interface(ifname);
    for (const auto& [k, v] : labels) (*p.mutable_labels())[k] = v;
    pods_[StrCat(ns, "/", name)] = p;
  }
  void Namespace(const char* name, bool isolated) {
    v1::Namespace n;
    n.set_name(name);
    n.set_isolated(isolated);
    namespaces_[name] = n;
  }

  absl::StatusOr<PolicyPassResult> Pass(bool full_sync = false) {
    std::vector<const v1::Pod*> pods;
    for (const auto& [k, p] : pods_) pods.push_back(&p);
    std::vector<const v1::Namespace*> nss;
    for (const auto& [k, n] : namespaces_) nss.push_back(&n);
    std::vector<const v1::NetworkPolicy*> pols;
    for (const auto& [k, p] : policies_) pols.push_back(&p);
    warnings_.clear();
    return reconciler_->Apply(nss, pods, pols, full_sync, &warnings_);
  }

  // The maps as the datapath reads them.
  dp::PolicyState Maps() {
    auto st = dp_->policy().ReadMaps();
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? *st : dp::PolicyState{};
  }

  bool HasToPod(const char* ifname) {
    auto r = node_.Exec(StrCat("tc filter show dev ", ifname, " egress"));
    return r.ok() && r.out.find("cn_to_pod") != std::string::npos;
  }

  bool Allowed(const char* src, const char* dst, uint16_t port) {
    dp::PolicyQuery q;
    q.src = Ip(src);
    q.dst = Ip(dst);
    q.port = port;
    return dp_->policy().Evaluate(q).allowed;
  }

  datapath::testing::ScopedBpffs fs_;
  ScopedNetns node_{"polrec"};
  std::optional<nl::Handle> handle_;
  std::unique_ptr<dp::Datapath> dp_;
  std::unique_ptr<PolicyReconciler> reconciler_;
  std::map<std::string, int> attach_calls_;
  std::map<std::string, v1::Pod> pods_;
  std::map<std::string, v1::Namespace> namespaces_;
  std::map<std::string, v1::NetworkPolicy> policies_;
  std::vector<PlanWarning> warnings_;
};

TEST_F(PolicyReconcilerTest, ProgramsIsolationAndAttachesToPodOncePerInterface) {
  Pod("iso", "a", "10.244.1.2", "node-1", "hv1");
  Pod("iso", "b", "10.244.2.2", "node-2", "remote0");  // another node: identity only
  Pod("other", "o", "10.244.1.3", "node-1", "hv2");
  Namespace("iso", true);
  auto r = Pass();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(warnings_, IsEmpty());
  EXPECT_EQ(r->hooks_attached, 2u);
  EXPECT_EQ(r->hooks_present, 2u);
  EXPECT_TRUE(HasToPod("hv1"));
  EXPECT_TRUE(HasToPod("hv2"));
  EXPECT_FALSE(HasToPod("hv3"));  // no pod on it

  dp::PolicyState maps = Maps();
  EXPECT_EQ(maps.identities.size(), 3u);  // every pod's address, local or not
  ASSERT_EQ(maps.endpoints.size(), 1u);   // only the isolated local pod is default-deny
  EXPECT_TRUE(maps.endpoints.count(V4("10.244.1.2")));
  EXPECT_TRUE(Allowed("10.244.2.2", "10.244.1.2", 8080));   // same namespace, other node
  EXPECT_FALSE(Allowed("10.244.1.3", "10.244.1.2", 8080));  // other namespace
  EXPECT_TRUE(Allowed("10.244.1.2", "10.244.1.3", 8080));   // into a pod without policy

  // The same input again: no map write, no re-attach.
  r = Pass();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->apply.total(), 0u);
  EXPECT_EQ(r->hooks_attached, 0u);
  EXPECT_EQ(attach_calls_["hv1"], 1);
  EXPECT_EQ(reconciler_->status().isolated_namespaces, 1u);
  EXPECT_EQ(reconciler_->status().hooks, 2u);
}

TEST_F(PolicyReconcilerTest, ChangesTouchOnlyTheEndpointsTheyAffect) {
  Pod("iso", "a", "10.244.1.2", "node-1", "hv1");
  Pod("iso", "b", "10.244.2.2", "node-2", "x");
  Pod("iso2", "c", "10.244.1.4", "node-1", "hv3");
  Pod("iso2", "d", "10.244.3.4", "node-3", "x");
  Namespace("iso", true);
  Namespace("iso2", true);
  ASSERT_TRUE(Pass().ok());
  dp::PolicyState before = Maps();
  ASSERT_EQ(before.endpoints.size(), 2u);

  // A label change of a remote pod of iso: a's entries change, c's stay exactly as they were.
  (*pods_["iso/b"].mutable_labels())["role"] = "db";
  auto r = Pass();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->apply.total(), 0u);
  dp::PolicyState after = Maps();
  EXPECT_EQ(after.identities.at(V4("10.244.1.4")), before.identities.at(V4("10.244.1.4")));
  EXPECT_NE(after.identities.at(V4("10.244.2.2")), before.identities.at(V4("10.244.2.2")));
  EXPECT_TRUE(after.endpoints.at(V4("10.244.1.4"))
                  .SameDatapathState(before.endpoints.at(V4("10.244.1.4"))));
  EXPECT_NE(after.endpoints.at(V4("10.244.1.2")).entries,
            before.endpoints.at(V4("10.244.1.2")).entries);
  EXPECT_TRUE(Allowed("10.244.2.2", "10.244.1.2", 80));
  EXPECT_FALSE(Allowed("10.244.2.2", "10.244.1.4", 80));

  // A new remote pod in a namespace without policy: one identity, no endpoint or rule write.
  Pod("other", "n", "10.244.2.9", "node-2", "x", {{"app", "new"}});
  r = Pass();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->apply.identities_written, 1u);
  EXPECT_EQ(r->apply.endpoints_written, 0u);
  EXPECT_EQ(r->apply.rules_written + r->apply.rules_deleted, 0u);
}

TEST_F(PolicyReconcilerTest, NetworkPolicyAddedAndRemoved) {
  Pod("web", "api", "10.244.1.2", "node-1", "hv1", {{"role", "api"}});
  Pod("web", "fe", "10.244.2.2", "node-2", "x", {{"role", "frontend"}});
  Pod("web", "be", "10.244.3.2", "node-3", "x", {{"role", "backend"}});
  ASSERT_TRUE(Pass().ok());
  EXPECT_THAT(Maps().endpoints, IsEmpty());
  EXPECT_TRUE(Allowed("10.244.3.2", "10.244.1.2", 80));

  v1::NetworkPolicy p;
  ASSERT_TRUE(DecodeObject(ObjectKind::kNetworkPolicy, "/cninet/v1/networkpolicies/web/fe80",
                           R"({"podSelector":{"matchLabels":{"role":"api"}},
                               "ingress":[{"from":[{"podSelector":{"matchLabels":
                                 {"role":"frontend"}}}],"ports":[{"port":80}]}]})",
                           &p)
                  .ok());
  policies_["web/fe80"] = p;
  auto r = Pass();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->apply.endpoints_written, 1u);
  EXPECT_TRUE(Maps().endpoints.count(V4("10.244.1.2")));
  EXPECT_TRUE(Allowed("10.244.2.2", "10.244.1.2", 80));
  EXPECT_FALSE(Allowed("10.244.2.2", "10.244.1.2", 81));
  EXPECT_FALSE(Allowed("10.244.3.2", "10.244.1.2", 80));
  EXPECT_EQ(reconciler_->status().policies, 1u);

  policies_.clear();
  r = Pass();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->apply.endpoints_deleted, 1u);
  EXPECT_THAT(Maps().endpoints, IsEmpty());
  EXPECT_TRUE(Allowed("10.244.3.2", "10.244.1.2", 80));
}

TEST_F(PolicyReconcilerTest, ToPodFollowsTheInterface) {
  Pod("a", "p1", "10.244.1.2", "node-1", "hv1");
  Pod("a", "p2", "10.244.1.3", "node-1", "hv2");
  Pod("a", "gone", "10.244.1.5", "node-1", "hv9");  // interface does not exist: skipped
  ASSERT_TRUE(Pass().ok());
  EXPECT_EQ(reconciler_->hooks().size(), 2u);
  EXPECT_EQ(attach_calls_.count("hv9"), 0u);

  // The pod's veth recreated (new ifindex): attached again on the next pass.
  ASSERT_TRUE(node_.Exec("ip link del hv1").ok());
  AddVeth("1");
  EXPECT_FALSE(HasToPod("hv1"));
  auto r = Pass();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->hooks_attached, 1u);
  EXPECT_TRUE(HasToPod("hv1"));

  // Removed by hand: a full sync (the agent's periodic resync) puts it back.
  ASSERT_TRUE(node_.Exec("tc filter del dev hv2 egress").ok());
  EXPECT_FALSE(HasToPod("hv2"));
  r = Pass();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(HasToPod("hv2"));  // an ordinary pass trusts what it attached
  r = Pass(/*full_sync=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(HasToPod("hv2"));
  EXPECT_TRUE(r->apply.full_sync);

  // A pod deleted from the store is no longer tracked.
  pods_.erase("a/p2");
  ASSERT_TRUE(Pass().ok());
  EXPECT_EQ(reconciler_->hooks().count("hv2"), 0u);
  EXPECT_EQ(reconciler_->status().hooks, 1u);
}

}  // namespace
}  // namespace cninet::agent
