// The rest of the plugin contract, for both plugins: idempotent DEL (also with the pod namespace
// or the interface already gone), CHECK against prevResult (and what it catches), STATUS, GC,
// VERSION, the requested MAC (runtimeConfig, CNI_ARGS) and results in every requested version.
#include <sys/socket.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin_env.h"

namespace cninet::testing {
namespace {

using ::testing::HasSubstr;

class LifecycleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    pod_ = node_.NewPod();
    ASSERT_TRUE(pod_.h);
  }
  // The reference host-local (v1.1.1) stops at CNI 1.0.0; 1.1.0 configurations use
  // cninet-host-local.
  nlohmann::json Conf(std::string_view version = "1.0.0", std::string_view ipam = {}) {
    if (ipam.empty()) ipam = version == "1.1.0" ? "cninet-host-local" : "host-local";
    nlohmann::json c = {{"cniVersion", std::string(version)},
                        {"name", "life"},
                        {"type", GetParam()},
                        {"mtu", 1420}};
    if (GetParam() == "cninet-bridge") {
      c["bridge"] = "cnlife0";
      c["isDefaultGateway"] = true;
    }
    c["ipam"] = HostLocalIpam(
        node_.data_dir(), R"([[{"subnet":"10.51.0.0/24"}],[{"subnet":"fd00:51::/64"}]])",
        GetParam() == "cninet-ptp" ? R"([{"dst":"0.0.0.0/0"},{"dst":"::/0"}])" : "[]", ipam);
    return c;
  }
  PluginRun Run(std::string_view command, const nlohmann::json& conf, std::string_view args = {},
                std::string netns = "<pod>") {
    if (netns == "<pod>") netns = pod_.path();
    return node_.Exec(OurPlugin(GetParam()), command, "life-ctr", netns, conf.dump(), "eth0", args);
  }
  nlohmann::json WithPrev(nlohmann::json conf, const PluginRun& add) {
    conf["prevResult"] = nlohmann::json::parse(add.raw.out);
    return conf;
  }

  Node node_;
  Pod pod_;
};

TEST_P(LifecycleTest, DelIsIdempotent) {
  auto conf = Conf();
  PluginRun add = Run("ADD", conf);
  ASSERT_TRUE(add.status.ok()) << add.raw.out;
  ASSERT_EQ(Leases(node_.data_dir(), "life").size(), 2u);
  auto before_links = node_.h().ListLinks()->size();
  ASSERT_TRUE(Run("DEL", conf).status.ok());
  EXPECT_FALSE(pod_.h->GetLink("eth0").ok());
  EXPECT_TRUE(Leases(node_.data_dir(), "life").empty());
  EXPECT_EQ(node_.h().ListLinks()->size(), before_links - 1) << "the host veth is gone";
  // Again, with the interface gone; without CNI_NETNS; with the namespace gone.
  PluginRun again = Run("DEL", conf);
  EXPECT_TRUE(again.status.ok()) << again.raw.out;
  PluginRun no_netns = Run("DEL", conf, {}, "");
  EXPECT_TRUE(no_netns.status.ok()) << no_netns.raw.out;
  PluginRun gone = Run("DEL", conf, {}, node_.dir().Sub("no-such-netns"));
  EXPECT_TRUE(gone.status.ok()) << gone.raw.out;
}

TEST_P(LifecycleTest, DelAfterThePodNamespaceIsGoneReleasesEverything) {
  auto conf = Conf();
  ASSERT_TRUE(Run("ADD", conf).status.ok());
  std::string path = pod_.path();
  pod_.h.reset();
  ASSERT_TRUE(pod_.ns->Remove().ok());  // The runtime tore the sandbox down first.
  pod_.ns.reset();
  PluginRun del = Run("DEL", conf, {}, path);
  EXPECT_TRUE(del.status.ok()) << del.raw.out;
  EXPECT_TRUE(Leases(node_.data_dir(), "life").empty());
  auto links = node_.h().ListLinks();  // Named: a range-for over *temporary would dangle.
  ASSERT_TRUE(links.ok());
  for (const auto& l : *links) EXPECT_NE(l.kind, "veth") << l.name;
}

TEST_P(LifecycleTest, CheckVerifiesThePrevResult) {
  auto conf = Conf();
  PluginRun add = Run("ADD", conf);
  ASSERT_TRUE(add.status.ok()) << add.raw.out;
  PluginRun check = Run("CHECK", WithPrev(conf, add));
  EXPECT_TRUE(check.status.ok()) << check.raw.out << check.raw.err;

  // A prevResult naming another MAC.
  nlohmann::json wrong_mac = WithPrev(conf, add);
  for (auto& itf : wrong_mac["prevResult"]["interfaces"]) {
    if (itf.contains("sandbox")) itf["mac"] = "02:00:00:00:00:01";
  }
  PluginRun c1 = Run("CHECK", wrong_mac);
  EXPECT_EQ(c1.code(), static_cast<uint32_t>(cni::ErrorCode::kCheckMismatch)) << c1.raw.out;
  EXPECT_THAT(c1.raw.out, HasSubstr("MAC"));

  // A prevResult address the pod does not have.
  nlohmann::json wrong_ip = WithPrev(conf, add);
  wrong_ip["prevResult"]["ips"][0]["address"] = "10.51.0.77/24";
  PluginRun c2 = Run("CHECK", wrong_ip);
  EXPECT_EQ(c2.code(), static_cast<uint32_t>(cni::ErrorCode::kCheckMismatch)) << c2.raw.out;
  EXPECT_THAT(c2.raw.out, HasSubstr("10.51.0.77/24"));

  // A route removed behind the plugin's back.
  ASSERT_FALSE(add.result->routes.empty());
  const cni::Route& r = add.result->routes[0];
  auto eth0 = pod_.h->GetLink("eth0");
  ASSERT_TRUE(eth0.ok());
  ASSERT_TRUE(pod_.h->DeleteRoute({.dst = r.dst, .oif = eth0->index}).ok());
  PluginRun c3 = Run("CHECK", WithPrev(conf, add));
  EXPECT_EQ(c3.code(), static_cast<uint32_t>(cni::ErrorCode::kCheckMismatch)) << c3.raw.out;
  EXPECT_THAT(c3.raw.out, HasSubstr(r.dst.ToString()));

  // The interface gone altogether.
  ASSERT_TRUE(pod_.h->DeleteLink(eth0->index).ok());
  PluginRun c4 = Run("CHECK", WithPrev(conf, add));
  EXPECT_EQ(c4.code(), static_cast<uint32_t>(cni::ErrorCode::kCheckMismatch)) << c4.raw.out;
  ASSERT_TRUE(Run("DEL", conf).status.ok());
}

TEST_P(LifecycleTest, RequestedMacFromRuntimeConfigAndCniArgs) {
  auto conf = Conf();
  PluginRun by_args = Run("ADD", conf, "IgnoreUnknown=1;K8S_POD_NAME=p;MAC=0a:58:0a:33:00:09");
  ASSERT_TRUE(by_args.status.ok()) << by_args.raw.out;
  EXPECT_EQ(pod_.h->GetLink("eth0")->mac.ToString(), "0a:58:0a:33:00:09");
  ASSERT_TRUE(Run("DEL", conf).status.ok());

  conf["runtimeConfig"] = {{"mac", "0a:58:0a:33:00:0a"}};  // Wins over CNI_ARGS.
  PluginRun by_rc = Run("ADD", conf, "IgnoreUnknown=1;MAC=0a:58:0a:33:00:09");
  ASSERT_TRUE(by_rc.status.ok()) << by_rc.raw.out;
  EXPECT_EQ(pod_.h->GetLink("eth0")->mac.ToString(), "0a:58:0a:33:00:0a");
  bool reported = false;
  for (const auto& itf : by_rc.result->interfaces) reported |= itf.mac == "0a:58:0a:33:00:0a";
  EXPECT_TRUE(reported);
  ASSERT_TRUE(Run("DEL", conf).status.ok());
}

TEST_P(LifecycleTest, ResultsInTheRequestedVersion) {
  std::vector<std::string> versions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
#ifdef CNINET_HAVE_HOST_LOCAL
  versions.push_back("1.1.0");
#endif
  for (const std::string& v : versions) {
    auto conf = Conf(v);
    PluginRun add = Run("ADD", conf);
    ASSERT_TRUE(add.status.ok()) << v << ": " << add.raw.out;
    nlohmann::json j = nlohmann::json::parse(add.raw.out);
    EXPECT_EQ(j["cniVersion"], v);
    bool old = v.rfind("0.", 0) == 0;
    EXPECT_EQ(j["ips"][0].contains("version"), old) << v;
    if (old) {
      EXPECT_EQ(j["ips"][0]["version"], "4");
    }
    bool has_mtu = false;
    for (const auto& itf : j["interfaces"]) has_mtu |= itf.contains("mtu");
    EXPECT_EQ(has_mtu, v == "1.1.0") << v << ": " << add.raw.out;
    if (v != "0.3.0" && v != "0.3.1") {
      PluginRun check = Run("CHECK", WithPrev(conf, add));
      EXPECT_TRUE(check.status.ok()) << v << ": " << check.raw.out;
    }
    ASSERT_TRUE(Run("DEL", conf).status.ok()) << v;
  }
}

TEST_P(LifecycleTest, VersionAndStatusWithAPre11Ipam) {
  // The reference host-local predates STATUS/GC: ready because it is installed, GC is ours only.
  auto conf = Conf("1.1.0", "host-local");
  PluginRun status = Run("STATUS", conf);
  EXPECT_TRUE(status.status.ok()) << status.raw.out;
  nlohmann::json gc = conf;
  gc["cni.dev/valid-attachments"] = nlohmann::json::array();
  PluginRun g = Run("GC", gc);
  EXPECT_TRUE(g.status.ok()) << g.raw.out;
}

#ifdef CNINET_HAVE_HOST_LOCAL
// Needs an IPAM plugin that speaks CNI 1.1 (STATUS, GC): built only with cninet-host-local.
TEST_P(LifecycleTest, VersionStatusAndGc) {
  auto conf = Conf("1.1.0");
  PluginRun version = Run("VERSION", conf);
  ASSERT_TRUE(version.status.ok()) << version.raw.out;
  auto v = nlohmann::json::parse(version.raw.out);
  EXPECT_THAT(v["supportedVersions"].dump(), HasSubstr("1.1.0"));
  EXPECT_THAT(v["supportedVersions"].dump(), HasSubstr("0.3.1"));

  PluginRun status = Run("STATUS", conf);
  EXPECT_TRUE(status.status.ok()) << status.raw.out;
  auto missing = conf;
  missing["ipam"]["type"] = "no-such-ipam";
  PluginRun not_ready = Run("STATUS", missing);
  EXPECT_EQ(not_ready.code(), 50u) << not_ready.raw.out;

  ASSERT_TRUE(Run("ADD", conf).status.ok());
  nlohmann::json gc = conf;
  gc["cni.dev/valid-attachments"] = {{{"containerID", "life-ctr"}, {"ifname", "eth0"}}};
  PluginRun g = Run("GC", gc);
  EXPECT_TRUE(g.status.ok()) << g.raw.out;
  EXPECT_EQ(Leases(node_.data_dir(), "life").size(), 2u) << "a valid attachment keeps its lease";
  // GC reaches the IPAM plugin: with no valid attachment, the leases go.
  gc["cni.dev/valid-attachments"] = nlohmann::json::array();
  g = Run("GC", gc);
  EXPECT_TRUE(g.status.ok()) << g.raw.out;
  EXPECT_TRUE(Leases(node_.data_dir(), "life").empty()) << "GC was delegated to cninet-host-local";
  ASSERT_TRUE(Run("DEL", conf).status.ok());
}

TEST_P(LifecycleTest, WithCninetHostLocal) {
  auto conf = Conf("1.1.0", "cninet-host-local");
  PluginRun add = Run("ADD", conf);
  ASSERT_TRUE(add.status.ok()) << add.raw.out;
  EXPECT_EQ(Leases(node_.data_dir(), "life").size(), 2u);
  EXPECT_TRUE(Run("CHECK", WithPrev(conf, add)).status.ok());
  EXPECT_TRUE(Run("STATUS", conf).status.ok());
  ASSERT_TRUE(Run("DEL", conf).status.ok());
  EXPECT_TRUE(Leases(node_.data_dir(), "life").empty());
}
#endif  // CNINET_HAVE_HOST_LOCAL

INSTANTIATE_TEST_SUITE_P(Plugins, LifecycleTest, ::testing::Values("cninet-ptp", "cninet-bridge"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param == "cninet-ptp" ? std::string("ptp")
                                                          : std::string("bridge");
                         });

}  // namespace
}  // namespace cninet::testing
