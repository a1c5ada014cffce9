// Failure injection and bad input. Each ADD step is made to fail by a real condition (IPAM
// exhaustion, a kernel-refused MTU, a name clash, the pod namespace deleted mid-ADD, a route
// clash on either side, a bridge that cannot take the gateway address), and every time the node
// and the pod must be exactly as before (links, addresses, routes) with no lease left. Bad input
// must give a clear CNI error and change nothing.
#include <sys/socket.h>

#include <functional>

#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin_env.h"

namespace cninet::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kNet[] = "fail";

class FailureTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    pod_ = node_.NewPod();
    ASSERT_TRUE(pod_.h);
  }
  bool IsBridge() const { return GetParam() == "cninet-bridge"; }
  std::string Type() const { return GetParam(); }

  nlohmann::json Conf(std::string_view ranges, std::string_view routes = "[]",
                      std::string_view ipam_type = "host-local") {
    nlohmann::json c = {{"cniVersion", "1.0.0"}, {"name", kNet}, {"type", Type()}};
    if (IsBridge()) {
      c["bridge"] = "cnfail0";
      c["isGateway"] = true;
    }
    c["ipam"] = HostLocalIpam(node_.data_dir(), ranges, routes, ipam_type);
    return c;
  }
  PluginRun Add(const nlohmann::json& conf, std::string_view cid = "ctr-1", std::string path = {},
                const std::string& netns = {}) {
    return node_.Exec(OurPlugin(Type()), "ADD", cid, netns.empty() ? pod_.path() : netns,
                      conf.dump(), "eth0", {}, std::move(path));
  }
  // Snapshot of everything a failed ADD must leave untouched.
  struct State {
    std::vector<std::string> node, pod, leases;
  };
  State Snapshot() {
    State s;
    s.node = NodeView(node_.h());
    if (auto links = pod_.h->ListLinks(); links.ok()) {
      for (const auto& l : *links) s.pod.push_back(l.name + "/" + l.kind);
      for (const auto& l : *links) {
        for (auto& f : PodView(*pod_.h, l.name)) s.pod.push_back(f);
      }
    }
    s.leases = Leases(node_.data_dir(), kNet);
    return s;
  }
  void ExpectUnchanged(const State& before) {
    State after = Snapshot();
    EXPECT_EQ(after.node, before.node) << "node changed";
    EXPECT_EQ(after.pod, before.pod) << "pod changed";
    EXPECT_EQ(after.leases, before.leases) << "leases changed";
  }

  Node node_;
  Pod pod_;
};

TEST_P(FailureTest, IpamExhaustion) {
  auto conf =
      Conf(R"([[{"subnet":"10.41.0.0/24","rangeStart":"10.41.0.10","rangeEnd":"10.41.0.10"}]])");
  Pod first = node_.NewPod();
  PluginRun ok = node_.Exec(OurPlugin(Type()), "ADD", "ctr-0", first.path(), conf.dump());
  ASSERT_TRUE(ok.status.ok()) << ok.raw.out;
  State before = Snapshot();
  ASSERT_EQ(before.leases.size(), 1u);
  PluginRun r = Add(conf);
  EXPECT_FALSE(r.status.ok());
  EXPECT_THAT(r.raw.out, HasSubstr("no IP addresses available"));  // host-local's message.
  ExpectUnchanged(before);
}

TEST_P(FailureTest, MtuTheKernelRefusesForIpv6) {
  // Valid for the veth, but below IPv6's 1280: the kernel refuses the IPv6 address after IPAM
  // and the veth succeeded, so everything must be rolled back.
  auto conf = Conf(R"([[{"subnet":"10.42.0.0/24"}],[{"subnet":"fd00:42::/64"}]])");
  conf["mtu"] = 1000;
  State before = Snapshot();
  PluginRun r = Add(conf);
  EXPECT_FALSE(r.status.ok());
  EXPECT_THAT(r.raw.out, HasSubstr("IPv6 is not available on eth0"));
  ExpectUnchanged(before);
}

TEST_P(FailureTest, MtuOutOfRangeIsRejectedUpFront) {
  for (int mtu : {70000, 10, -1}) {
    auto conf = Conf(R"([[{"subnet":"10.43.0.0/24"}]])");
    conf["mtu"] = mtu;
    State before = Snapshot();
    PluginRun r = Add(conf);
    EXPECT_EQ(r.code(), 7u) << mtu << ": " << r.raw.out;
    EXPECT_THAT(r.raw.out, HasSubstr("mtu"));
    ExpectUnchanged(before);
  }
}

TEST_P(FailureTest, HostVethNameClash) {
  // Something already holds the host-side name this attachment derives.
  std::string host_name = netlink::VethNameFor("ctr-1", "eth0");
  ASSERT_TRUE(node_.h().CreateVeth({.name = host_name, .peer_name = "clashpeer"}).ok());
  auto conf = Conf(R"([[{"subnet":"10.44.0.0/24"}]])");
  State before = Snapshot();
  PluginRun r = Add(conf);
  EXPECT_FALSE(r.status.ok());
  EXPECT_THAT(r.raw.out, HasSubstr("File exists"));
  ExpectUnchanged(before);
}

TEST_P(FailureTest, PodNamespaceDeletedMidAdd) {
  // An IPAM "plugin" that deletes the pod's namespace name, then allocates for real.
  std::string dir = node_.dir().Sub("killer");
  CommandResult ip = Sh("command -v ip");
  ASSERT_TRUE(ip.ok());
  std::string ip_bin(absl::StripTrailingAsciiWhitespace(ip.out));
  WriteFile(dir + "/ipam-ns-killer",
            "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && " + ip_bin +
                " netns delete \"$(basename \"$CNI_NETNS\")\"\nexec /usr/lib/cni/host-local\n");
  ASSERT_TRUE(Sh("chmod +x " + dir + "/ipam-ns-killer").ok());
  auto conf = Conf(R"([[{"subnet":"10.45.0.0/24"}]])", "[]", "ipam-ns-killer");
  State before = Snapshot();
  PluginRun r = Add(conf, "ctr-1", dir + ":" + CNINET_PLUGIN_DIR + ":/usr/lib/cni");
  EXPECT_EQ(r.code(), 3u) << r.raw.out << r.raw.err;
  EXPECT_THAT(r.raw.out, HasSubstr("was removed"));
  EXPECT_FALSE(netlink::Netns::CheckPath(pod_.path()).ok()) << "the script did delete it";
  State after = Snapshot();
  EXPECT_EQ(after.node, before.node) << "node changed";
  EXPECT_EQ(after.leases, before.leases) << "lease leaked";
}

TEST_P(FailureTest, PodRouteClash) {
  // The pod already routes 10.99.0.0/16 (a connected route), and IPAM asks for the same.
  auto x0 = pod_.h->CreateBridge({.name = "x0"});
  ASSERT_TRUE(x0.ok());
  ASSERT_TRUE(pod_.h->SetLinkUp(x0->index).ok());
  ASSERT_TRUE(pod_.h->AddAddress(x0->index, *cni::IPPrefix::Parse("10.99.0.1/16")).ok());
  auto conf = Conf(R"([[{"subnet":"10.46.0.0/24"}]])", R"([{"dst":"10.99.0.0/16"}])");
  State before = Snapshot();
  PluginRun r = Add(conf);
  EXPECT_FALSE(r.status.ok());
  EXPECT_THAT(r.raw.out, HasSubstr("10.99.0.0/16"));
  ExpectUnchanged(before);
}

TEST_P(FailureTest, HostRouteClashOrBridgeAddressConflict) {
  State before;
  nlohmann::json conf = Conf(R"([[{"subnet":"10.47.0.0/24"}]])");
  std::string expect;
  if (!IsBridge()) {
    // ptp: the node already routes the address IPAM will hand out.
    auto blk = node_.h().CreateBridge({.name = "blk0"});
    ASSERT_TRUE(blk.ok());
    ASSERT_TRUE(node_.h().SetLinkUp(blk->index).ok());
    ASSERT_TRUE(
        node_.h().AddRoute({.dst = *cni::IPPrefix::Parse("10.47.0.2/32"), .oif = blk->index}).ok());
    expect = "10.47.0.2/32";
  } else {
    // bridge: the bridge exists (down) with another IPv4 address and forceAddress is off; the
    // failed ADD must also leave it down.
    auto br = node_.h().CreateBridge({.name = "cnfail0"});
    ASSERT_TRUE(br.ok());
    ASSERT_TRUE(node_.h().AddAddress(br->index, *cni::IPPrefix::Parse("10.47.0.254/24")).ok());
    expect = "already has an IP address";
  }
  before = Snapshot();
  PluginRun r = Add(conf);
  EXPECT_FALSE(r.status.ok());
  EXPECT_THAT(r.raw.out, HasSubstr(expect));
  ExpectUnchanged(before);
}

// ---- Bad input: clear CNI errors, nothing changed ----

TEST_P(FailureTest, BadInterfaceNames) {
  auto conf = Conf(R"([[{"subnet":"10.48.0.0/24"}]])");
  State before = Snapshot();
  for (std::string ifname : {"eth0123456789abc", "et/h0", ".."}) {
    PluginRun r = node_.Exec(OurPlugin(Type()), "ADD", "ctr-1", pod_.path(), conf.dump(), ifname);
    EXPECT_EQ(r.code(), 4u) << ifname << ": " << r.raw.out;
    EXPECT_THAT(r.raw.out, HasSubstr("\"msg\""));
  }
  ExpectUnchanged(before);
}

TEST_P(FailureTest, NetnsThatIsNotANamespace) {
  auto conf = Conf(R"([[{"subnet":"10.48.0.0/24"}]])");
  std::string file = node_.dir().Sub("not-a-netns");
  WriteFile(file, "x");
  State before = Snapshot();
  PluginRun r = Add(conf, "ctr-1", {}, file);
  EXPECT_EQ(r.code(), 8u) << r.raw.out;
  EXPECT_THAT(r.raw.out, HasSubstr("not a network namespace"));
  PluginRun missing = Add(conf, "ctr-1", {}, node_.dir().Sub("missing-netns"));
  EXPECT_EQ(missing.code(), 3u) << missing.raw.out;
  ExpectUnchanged(before);
}

TEST_P(FailureTest, ConflictingExistingInterface) {
  auto existing = pod_.h->CreateBridge({.name = "eth0"});
  ASSERT_TRUE(existing.ok());
  auto conf = Conf(R"([[{"subnet":"10.48.0.0/24"}]])");
  State before = Snapshot();
  PluginRun r = Add(conf);
  EXPECT_EQ(r.code(), 4u) << r.raw.out;
  EXPECT_THAT(r.raw.out, HasSubstr("already exists"));
  ExpectUnchanged(before);
  EXPECT_EQ(pod_.h->GetLink("eth0")->kind, "bridge");  // Untouched.
}

TEST_P(FailureTest, InvalidConfigurations) {
  State before = Snapshot();
  struct Bad {
    std::string what;
    std::function<void(nlohmann::json&)> edit;
    uint32_t code;
    std::string args;
  };
  std::vector<Bad> bad = {
      {"runtimeConfig.mac",
       [](nlohmann::json& c) {
         c["runtimeConfig"] = {{"mac", "zz:zz"}};
       },
       7, ""},
      {"multicast CNI_ARGS MAC", [](nlohmann::json&) {}, 7, "MAC=01:00:5e:00:00:01"},
      {"mtu type", [](nlohmann::json& c) { c["mtu"] = "1400"; }, 7, ""},
      {"ipMasq", [](nlohmann::json& c) { c["ipMasq"] = true; }, 2, ""},
      {"no cniVersion support", [](nlohmann::json& c) { c["cniVersion"] = "9.9.9"; }, 1, ""},
  };
  if (IsBridge()) {
    bad.push_back({"hairpin+promisc",
                   [](nlohmann::json& c) {
                     c["hairpinMode"] = true;
                     c["promiscMode"] = true;
                   },
                   7, ""});
    bad.push_back({"vlan", [](nlohmann::json& c) { c["vlan"] = 5; }, 2, ""});
    bad.push_back(
        {"bridge name", [](nlohmann::json& c) { c["bridge"] = "this-name-is-too-long"; }, 7, ""});
  } else {
    bad.push_back({"no ipam", [](nlohmann::json& c) { c.erase("ipam"); }, 7, ""});
  }
  for (const auto& b : bad) {
    auto conf = Conf(R"([[{"subnet":"10.48.0.0/24"}]])");
    b.edit(conf);
    PluginRun r =
        node_.Exec(OurPlugin(Type()), "ADD", "ctr-1", pod_.path(), conf.dump(), "eth0", b.args);
    EXPECT_EQ(r.code(), b.code) << b.what << ": " << r.raw.out;
  }
  PluginRun junk = node_.Exec(OurPlugin(Type()), "ADD", "ctr-1", pod_.path(), "{not json");
  EXPECT_EQ(junk.code(), 6u) << junk.raw.out;
  ExpectUnchanged(before);
}

INSTANTIATE_TEST_SUITE_P(Plugins, FailureTest, ::testing::Values("cninet-ptp", "cninet-bridge"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param == "cninet-ptp" ? std::string("ptp")
                                                          : std::string("bridge");
                         });

// cninet-bridge only: a link with the bridge's name that is not a bridge is refused up front.
TEST(BridgeFailureTest, ExistingNonBridgeWithTheBridgeName) {
  CNINET_REQUIRE_ROOT();
  Node node;
  Pod pod = node.NewPod();
  ASSERT_TRUE(node.h().CreateVeth({.name = "cnfail0", .peer_name = "cnfail0p"}).ok());
  nlohmann::json conf = {
      {"cniVersion", "1.0.0"},
      {"name", kNet},
      {"type", "cninet-bridge"},
      {"bridge", "cnfail0"},
      {"ipam", HostLocalIpam(node.data_dir(), R"([[{"subnet":"10.49.0.0/24"}]])")}};
  auto before = NodeView(node.h());
  PluginRun r = node.Exec(OurPlugin("cninet-bridge"), "ADD", "ctr-1", pod.path(), conf.dump());
  EXPECT_EQ(r.code(), 7u) << r.raw.out;
  EXPECT_THAT(r.raw.out, HasSubstr("not a bridge"));
  EXPECT_EQ(NodeView(node.h()), before);
  EXPECT_TRUE(Leases(node.data_dir(), kNet).empty());
  EXPECT_FALSE(pod.h->GetLink("eth0").ok());
}

}  // namespace
}  // namespace cninet::testing
