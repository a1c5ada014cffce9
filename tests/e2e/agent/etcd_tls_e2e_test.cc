// etcd over mutual TLS (issue 19, "Must show" 1): a real etcd started with --client-cert-auth and
// certificates this test makes with openssl (tests/testing/test_pki.h). The etcd store, cninetctl
// and real cninet-agent processes (a 2-node cluster whose pods reach each other and a ClusterIP)
// work with the right certificates; a client without a certificate, with one of another CA, with a
// world-readable key, trusting the wrong CA, or asking for plain text is refused with a message
// that says which.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster_testing.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/etcd_server.h"
#include "testing/test_pki.h"
#include "testing/test_util.h"

namespace cninet::agent::testing {
namespace {

using ::cninet::testing::CertPair;
using ::cninet::testing::CommandResult;
using ::cninet::testing::EtcdServer;
using ::cninet::testing::EtcdServerOptions;
using ::cninet::testing::MakeTestPki;
using ::cninet::testing::TempDir;
using ::cninet::testing::TestPki;
using ::testing::HasSubstr;

constexpr uint16_t kPodPort = 8080;

std::string Ctl() { return StrCat(CNINET_TOOL_DIR, "/cninetctl"); }

// One etcd with mutual TLS for the store-level cases.
class EtcdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = MakeTestPki(dir_.Sub("pki"), {"root", "node-1"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    EtcdServerOptions eo;
    eo.data_dir = dir_.Sub("etcd");
    eo.tls = {.cert_file = pki_.server.cert,
              .key_file = pki_.server.key,
              .trusted_ca_file = pki_.ca,
              .client_cert_auth = true};
    auto server = EtcdServer::Start(eo);
    ASSERT_TRUE(server.ok()) << server.status();
    etcd_ = *std::move(server);
    ASSERT_THAT(etcd_->url(), HasSubstr("https://127.0.0.1:"));
  }

  EtcdStoreOptions Options(const CertPair& client) const {
    EtcdStoreOptions o;
    o.endpoints = {etcd_->url()};
    o.tls = {.ca_file = pki_.ca, .cert_file = client.cert, .key_file = client.key};
    o.connect_timeout = std::chrono::seconds(3);
    return o;
  }

  // The failure of opening the store with `o` (the test fails when it opens).
  std::string Refusal(const EtcdStoreOptions& o) {
    auto store = OpenEtcdStore(o);
    EXPECT_FALSE(store.ok()) << "opened with " << o.tls.cert_file;
    return store.ok() ? std::string() : store.status().ToString();
  }

  TempDir dir_;
  TestPki pki_;
  std::unique_ptr<EtcdServer> etcd_;
};

TEST_F(EtcdTlsTest, TheStoreWorksWithACertificateOfTheTrustedCa) {
  auto store = OpenEtcdStore(Options(pki_.Client("root")));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("/cninet-tls-test/a", "1").ok());
  auto got = (*store)->Get("/cninet-tls-test/a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value, "1");
  // etcdctl with the same certificate sees the key (the server really is this etcd, over TLS).
  CommandResult r =
      ::cninet::testing::Run({"etcdctl", "--endpoints", etcd_->url(), "--cacert", pki_.ca, "--cert",
                              pki_.Client("root").cert, "--key", pki_.Client("root").key, "get",
                              "/cninet-tls-test/a", "--print-value-only"},
                             {}, {"ETCDCTL_API=3", "PATH=/usr/bin:/bin"});
  EXPECT_EQ(r.out, "1\n") << r.err;
}

TEST_F(EtcdTlsTest, AClientWithoutACertificateIsRefused) {
  EtcdStoreOptions o = Options({});
  EXPECT_THAT(Refusal(o), HasSubstr("etcd requires a client certificate"));
}

TEST_F(EtcdTlsTest, ACertificateOfAnotherCaIsRefused) {
  EXPECT_THAT(Refusal(Options(pki_.other_client)),
              HasSubstr("etcd refused the client certificate " + pki_.other_client.cert));
}

TEST_F(EtcdTlsTest, AServerNotSignedByTheGivenCaIsRefused) {
  EtcdStoreOptions o = Options(pki_.Client("root"));
  o.tls.ca_file = pki_.other_ca;
  EXPECT_THAT(Refusal(o), HasSubstr("not signed by the CA file " + pki_.other_ca));
}

TEST_F(EtcdTlsTest, AServerCertificateForAnotherNameIsRefused) {
  EtcdStoreOptions o = Options(pki_.Client("root"));
  o.tls.server_name = "etcd.elsewhere.example";
  std::string why = Refusal(o);
  EXPECT_THAT(why, HasSubstr("(TLS)"));
  EXPECT_THAT(why, ::testing::AnyOf(HasSubstr("does not name"), HasSubstr("not signed")));
}

TEST_F(EtcdTlsTest, AWorldReadableKeyIsRefusedNamingTheFileBeforeAnyConnection) {
  const std::string key = dir_.Sub("loose-key.pem");
  std::filesystem::copy_file(pki_.Client("root").key, key);
  ASSERT_EQ(chmod(key.c_str(), 0644), 0);
  EtcdStoreOptions o = Options(pki_.Client("root"));
  o.tls.key_file = key;
  auto store = OpenEtcdStore(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("private key " + key));
  EXPECT_THAT(store.status().message(), HasSubstr("mode 0644"));
  EXPECT_THAT(store.status().message(), HasSubstr("chmod 600 " + key));
  // Group-readable is refused too; 0600 and 0400 are fine.
  ASSERT_EQ(chmod(key.c_str(), 0640), 0);
  EXPECT_THAT(CheckPrivateKeyFile(key).message(), HasSubstr("mode 0640"));
  ASSERT_EQ(chmod(key.c_str(), 0400), 0);
  EXPECT_TRUE(CheckPrivateKeyFile(key).ok());
  // Owned by another user (not root, not us): refused naming the owner.
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  ASSERT_EQ(chown(key.c_str(), 65534, 65534), 0);
  EXPECT_THAT(CheckPrivateKeyFile(key).message(), HasSubstr("owned by uid 65534"));
}

TEST_F(EtcdTlsTest, PlainTextIsOnlySpokenWhenAskedFor) {
  const std::string hostport = etcd_->url().substr(std::string("https://").size());
  EtcdStoreOptions o;
  o.endpoints = {hostport};
  o.connect_timeout = std::chrono::seconds(2);
  auto bare = OpenEtcdStore(o);
  ASSERT_FALSE(bare.ok());
  EXPECT_EQ(bare.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bare.status().message(), HasSubstr("http://" + hostport + " to speak plain text"));
  // Asked for, plain text is tried - and this etcd refuses it.
  o.endpoints = {"http://" + hostport};
  EXPECT_FALSE(OpenEtcdStore(o).ok());
  // Contradictions are refused before any connection.
  o.tls.ca_file = pki_.ca;
  EXPECT_THAT(OpenEtcdStore(o).status().message(), HasSubstr("plain-text endpoint"));
}

TEST_F(EtcdTlsTest, CninetctlWorksWithTheAdminCertificateAndSaysWhyWithout) {
  CertPair root = pki_.Client("root");
  CommandResult ok = ::cninet::testing::Run({Ctl(), "--etcd", etcd_->url(), "--etcd-cacert",
                                             pki_.ca, "--etcd-cert", root.cert, "--etcd-key",
                                             root.key, "namespace", "set", "shop", "--isolated"});
  ASSERT_TRUE(ok.ok()) << ok.out << ok.err;
  CommandResult got = ::cninet::testing::Run({Ctl(), "--etcd", etcd_->url(), "--etcd-cacert",
                                              pki_.ca, "--etcd-cert", root.cert, "--etcd-key",
                                              root.key, "get", "namespaces"});
  ASSERT_TRUE(got.ok()) << got.err;
  EXPECT_THAT(got.out, HasSubstr("shop"));
  CommandResult none = ::cninet::testing::Run(
      {Ctl(), "--etcd", etcd_->url(), "--etcd-cacert", pki_.ca, "get", "namespaces"});
  EXPECT_FALSE(none.ok());
  EXPECT_THAT(none.err, HasSubstr("etcd requires a client certificate"));
  // A certificate without its key is a usage error naming the flag.
  CommandResult half = ::cninet::testing::Run(
      {Ctl(), "--etcd", etcd_->url(), "--etcd-cert", root.cert, "get", "namespaces"});
  EXPECT_EQ(half.exit_code, 2) << half.err;
  EXPECT_THAT(half.err, HasSubstr("--etcd-key"));
}

// Real agents over mutual TLS, each with its own node certificate.
class EtcdTlsClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ClusterOptions o;
    o.nodes = 2;
    o.etcd_tls = true;
    cluster_ = std::make_unique<Cluster>(o);
    ASSERT_TRUE(cluster_->status().ok()) << cluster_->status();
  }
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(EtcdTlsClusterTest, AgentsOverMutualTlsRegisterRouteAndServeAClusterIp) {
  ASSERT_OK(cluster_->AddPod(0, "pod-1a"));
  ASSERT_OK(cluster_->AddPod(1, "pod-2a"));
  ASSERT_OK(cluster_->ServeEverywhere(kPodPort));
  for (int n = 0; n < 2; ++n) {
    ASSERT_OK(cluster_->WaitStatus(n, [](const api::AgentStatus& s) {
      int routed = 0;
      for (const auto& peer : s.nodes()) routed += peer.route().rfind("vxlan", 0) == 0;
      return routed == 1;
    }));
  }
  Pod& a = cluster_->pods()[0];
  Pod& b = cluster_->pods()[1];
  absl::StatusOr<std::string> who = WhoAnswers(a.ns->path(), b.ip, kPodPort);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(*who, "pod-2a");
  // A Service written by the admin through cninetctl over TLS reaches the agents.
  std::vector<std::string> ctl = {Ctl(),
                                  "--etcd",
                                  cluster_->etcd_url(),
                                  "--etcd-cacert",
                                  cluster_->pki()->ca,
                                  "--etcd-cert",
                                  cluster_->pki()->Client("root").cert,
                                  "--etcd-key",
                                  cluster_->pki()->Client("root").key};
  ASSERT_OK(cluster_->PutService("tls-web", "10.96.0.77", 80, {1}, kPodPort));
  ASSERT_OK(cluster_->WaitStatus(0, [](const api::AgentStatus& s) {
    for (const auto& svc : s.services())
      for (const auto& f : svc.frontends())
        if (f.find("10.96.0.77:80") != std::string::npos && svc.backends_size() == 1) return true;
    return false;
  }));
  EXPECT_EQ(WhoAnswers(a.ns->path(), "10.96.0.77", 80).value_or("no answer"), "pod-2a");
  std::vector<std::string> get = ctl;
  get.insert(get.end(), {"get", "nodes"});
  CommandResult nodes = ::cninet::testing::Run(get);
  ASSERT_TRUE(nodes.ok()) << nodes.err;
  EXPECT_THAT(nodes.out, HasSubstr("node-1"));
  EXPECT_THAT(nodes.out, HasSubstr("node-2"));
  // etcd saw each agent's own certificate: its log names no rejected handshakes from them.
  CommandResult log =
      ::cninet::testing::Run({"grep", "-c", "rejected connection", cluster_->etcd_log()});
  EXPECT_EQ(log.out, "0\n") << "etcd rejected connections: see " << cluster_->etcd_log();
}

}  // namespace
}  // namespace cninet::agent::testing

namespace cninet::agent::testing {
namespace {

// Per-node rights (issue 19, "Must show" 2): etcd with mutual TLS and authentication on, roles
// from scripts/etcd-roles.sh. The agents run with their node certificates; node-2's identity
// cannot write a NetworkPolicy, a Namespace's isolation flag, or node-3's Node and heartbeat keys
// (refused, and no node's datapath changes); the admin identity can.
class EtcdRightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ClusterOptions o;
    o.nodes = 3;
    o.etcd_tls = true;
    o.etcd_auth = true;
    cluster_ = std::make_unique<Cluster>(o);
    ASSERT_TRUE(cluster_->status().ok()) << cluster_->status();
  }

  // A store client with `who`'s certificate.
  std::unique_ptr<Store> As(const std::string& who) {
    EtcdStoreOptions o;
    o.endpoints = {cluster_->etcd_url()};
    CertPair c = cluster_->pki()->Client(who);
    o.tls = {.ca_file = cluster_->pki()->ca, .cert_file = c.cert, .key_file = c.key};
    auto s = OpenEtcdStore(o);
    EXPECT_TRUE(s.ok()) << who << ": " << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  // Policy state of every node: isolated namespaces, policies, policy hooks.
  std::vector<std::string> PolicyState() {
    std::vector<std::string> out;
    for (int n = 0; n < 3; ++n) {
      absl::StatusOr<api::AgentStatus> s = cluster_->AgentStatus(n);
      out.push_back(s.ok() ? StrCat(s->policy().isolated_namespaces(), "/", s->policy().policies(),
                                    "/", s->policy().endpoints())
                           : StrCat("error: ", s.status().message()));
    }
    return out;
  }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(EtcdRightsTest, ANodeWritesOnlyItsOwnKeysAndTheAdminWritesPolicy) {
  ASSERT_OK(cluster_->AddPod(0, "pod-1a", "shop"));
  ASSERT_OK(cluster_->AddPod(2, "pod-3a", "shop"));
  for (int n = 0; n < 3; ++n) {
    ASSERT_OK(cluster_->WaitStatus(n, [](const api::AgentStatus& s) {
      int routed = 0;
      for (const auto& peer : s.nodes()) routed += peer.route().rfind("vxlan", 0) == 0;
      return routed == 2 && s.ready();
    }));
  }
  const std::vector<std::string> before = PolicyState();
  std::unique_ptr<Store> node2 = As("node-2");
  ASSERT_NE(node2, nullptr);

  // Its own keys: allowed (the agent of node-2 writes them; a direct write works too).
  absl::StatusOr<Object<v1::Node>> own = GetObject<v1::Node>(*node2, keys::Node("node-2"));
  ASSERT_OK(own.status());
  EXPECT_OK(PutObject(*node2, own->value).status());

  // Everything below is refused with PermissionDenied.
  auto refused = [](const absl::Status& st, const std::string& what) {
    EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << what << ": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("permission denied")) << what;
  };
  v1::NetworkPolicy np;
  np.set_namespace_("shop");
  np.set_name("deny-all");
  np.add_policy_types(v1::NetworkPolicy::INGRESS);
  refused(PutObject(*node2, np).status(), "a NetworkPolicy");
  v1::Namespace ns;
  ns.set_name("shop");
  ns.set_isolated(true);
  refused(PutObject(*node2, ns).status(), "the Namespace's isolation flag");
  absl::StatusOr<Object<v1::Node>> other = GetObject<v1::Node>(*node2, keys::Node("node-3"));
  ASSERT_OK(other.status());  // reading is allowed
  v1::Node hijack = other->value;
  hijack.set_public_ip("192.168.50.99");  // would redirect node-3's traffic
  refused(PutObject(*node2, hijack).status(), "node-3's Node");
  refused(node2->Delete(keys::Node("node-3")).status(), "deleting node-3's Node");
  refused(node2->Delete(keys::Heartbeat("node-3")).status(), "node-3's heartbeat");
  refused(node2->Put(keys::ClusterConfig(), "{}").status(), "the cluster configuration");

  // No node's datapath changed: same policy state, node-3 still routed by node-1.
  std::this_thread::sleep_for(std::chrono::seconds(3));  // > 1 resync interval (2 s)
  EXPECT_EQ(PolicyState(), before);
  absl::StatusOr<api::AgentStatus> s1 = cluster_->AgentStatus(0);
  ASSERT_OK(s1.status());
  bool node3_routed = false;
  for (const auto& peer : s1->nodes())
    node3_routed |=
        peer.node().name() == "node-3" && peer.route().find("192.168.50.13") != std::string::npos;
  EXPECT_TRUE(node3_routed) << s1->DebugString();

  // The admin identity can: the namespace is isolated on every node.
  std::unique_ptr<Store> admin = As("cninet-admin");
  ASSERT_NE(admin, nullptr);
  ASSERT_OK(PutObject(*admin, ns).status());
  ASSERT_OK(PutObject(*admin, np).status());
  for (int n : {0, 2}) {
    ASSERT_OK(cluster_->WaitStatus(n, [](const api::AgentStatus& s) {
      return s.policy().isolated_namespaces() == 1 && s.policy().policies() == 1;
    }));
  }
}

}  // namespace
}  // namespace cninet::agent::testing
