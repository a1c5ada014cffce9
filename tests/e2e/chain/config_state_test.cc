// cninet-ebpf's configuration parsing and attachment records (no kernel, no root), and the guide
// docs/chained-plugin.md quoting exactly the code the build compiles.
#include <fstream>
#include <regex>
#include <sstream>

#include "cninet/cni/cni.h"
#include "config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state.h"
#include "testing/test_util.h"

namespace cninet::ebpf_chain {
namespace {

using ::testing::HasSubstr;

cni::NetConf Conf(nlohmann::json extra) {
  nlohmann::json j = {{"cniVersion", "1.0.0"},
                      {"name", "pods.v1"},
                      {"type", "cninet-ebpf"},
                      {"clusterCIDR", "10.244.3.7/16"}};
  j.update(extra);
  auto c = cni::NetConf::FromJson(j);
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(ChainConfigTest, DefaultsAreDocumentedOnes) {
  auto c = ChainConfig::FromNetConf(Conf(nlohmann::json::object()));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cluster_cidr.ToString(), "10.244.0.0/16") << "host bits are cleared";
  EXPECT_TRUE(c->masquerade);
  EXPECT_EQ(c->uplink, "");
  EXPECT_TRUE(c->node_addresses.empty());
  EXPECT_EQ(c->bpffs_root, "/sys/fs/bpf");
  EXPECT_EQ(c->instance, "pods-v1") << "bpffs names cannot contain dots";
  EXPECT_EQ(c->InstanceStateDir(), "/var/lib/cni/cninet-ebpf/pods-v1");
  EXPECT_EQ(c->PinDir(), "/sys/fs/bpf/cninet/pods-v1");
  EXPECT_EQ(c->ProgramPinPath(), "/sys/fs/bpf/cninet/pods-v1/programs/from_pod");
  EXPECT_TRUE(c->teardown_when_idle);
  EXPECT_EQ(c->host_port_ids, 1024u);
  EXPECT_EQ(c->FirstHostPortId(), 65536u - 1024u);
  EXPECT_FALSE(c->socket_lb);
  datapath::DatapathConfig d = c->ToDatapathConfig({*cni::IPAddress::Parse("192.0.2.1")});
  EXPECT_TRUE(d.Validate().ok()) << d.Validate();
  EXPECT_EQ(d.PinDir(), c->PinDir());
}

TEST(ChainConfigTest, EveryKeyIsRead) {
  auto c = ChainConfig::FromNetConf(
      Conf({{"masquerade", false},
            {"uplink", "eth1"},
            {"nodeAddresses", {"192.0.2.1", "192.0.2.2"}},
            {"bpffsRoot", "/run/bpf"},
            {"instance", "x1"},
            {"stateDir", "/run/st"},
            {"teardownWhenIdle", false},
            {"hostPortIds", 10},
            {"socketLb", true},
            {"mapSizes",
             {{"conntrack", 1000}, {"nat", 2000}, {"serviceSlots", 100}, {"endpoints", 7}}}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->masquerade);
  EXPECT_EQ(c->uplink, "eth1");
  ASSERT_EQ(c->node_addresses.size(), 2u);
  EXPECT_EQ(c->node_addresses[1].ToString(), "192.0.2.2");
  EXPECT_EQ(c->PinDir(), "/run/bpf/cninet/x1");
  EXPECT_EQ(c->InstanceStateDir(), "/run/st/x1");
  EXPECT_FALSE(c->teardown_when_idle);
  EXPECT_EQ(c->map_sizes.conntrack, 1000u);
  EXPECT_EQ(c->map_sizes.nat, 2000u);
  EXPECT_EQ(c->map_sizes.endpoints, 7u);
  EXPECT_EQ(c->FirstHostPortId(), 90u);
  EXPECT_TRUE(c->socket_lb);
}

TEST(ChainConfigTest, InvalidValuesAreCode7NamingTheKey) {
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {{{"clusterCIDR", nullptr}}, "clusterCIDR"},
      {{{"clusterCIDR", "10.0.0.0"}}, "clusterCIDR"},
      {{{"clusterCIDR", 5}}, "clusterCIDR"},
      {{{"masquerade", 1}}, "masquerade"},
      {{{"uplink", "a/b"}}, "uplink"},
      {{{"uplink", "abcdefghijklmnop"}}, "uplink"},
      {{{"nodeAddresses", "192.0.2.1"}}, "nodeAddresses"},
      {{{"nodeAddresses", {"0.0.0.0"}}}, "nodeAddresses"},
      {{{"nodeAddresses", {"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5"}}},
       "nodeAddresses"},
      {{{"bpffsRoot", "bpf"}}, "bpffsRoot"},
      {{{"instance", "-x"}}, "instance"},
      {{{"stateDir", ""}}, "stateDir"},
      {{{"teardownWhenIdle", "no"}}, "teardownWhenIdle"},
      {{{"socketLb", "yes"}}, "socketLb"},
      {{{"hostPortIds", 0}}, "hostPortIds"},
      {{{"hostPortIds", 70000}}, "hostPortIds"},
      {{{"mapSizes", 3}}, "mapSizes"},
      {{{"mapSizes", {{"nat", 15}}}}, "nat"},
      {{{"mapSizes", {{"serviceSlots", 1}}}}, "serviceSlots"},
  };
  for (const auto& [extra, key] : cases) {
    auto c = ChainConfig::FromNetConf(Conf(extra));
    ASSERT_FALSE(c.ok()) << extra.dump();
    EXPECT_EQ(cni::GetErrorCode(c.status()), 7u) << extra.dump();
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(key)) << extra.dump();
  }
}

TEST(ChainConfigTest, PortMappingsTheDatapathCannotServe) {
  EXPECT_TRUE(ValidatePortMappings({{80, 8080, "tcp", ""}, {53, 53, "udp", "192.0.2.1"}}).ok());
  EXPECT_EQ(cni::GetErrorCode(ValidatePortMappings({{80, 80, "sctp", ""}})), 2u);
  EXPECT_EQ(cni::GetErrorCode(ValidatePortMappings({{80, 80, "icmp", ""}})), 7u);
  EXPECT_EQ(cni::GetErrorCode(ValidatePortMappings({{0, 80, "tcp", ""}})), 7u);
  EXPECT_EQ(cni::GetErrorCode(ValidatePortMappings({{80, 80, "tcp", "not-an-ip"}})), 7u);
}

AttachmentRecord Sample(std::string id, std::string ifname) {
  AttachmentRecord r;
  r.container_id = std::move(id);
  r.ifname = std::move(ifname);
  r.netns = "/run/netns/x";
  r.host_ifname = "veth1234abcd";
  r.host_ifindex = 42;
  r.mac = "02:00:00:00:00:01";
  r.addresses = {*cni::IPAddress::Parse("10.244.1.5")};
  r.service_ids = {65000, 65001};
  r.port_mappings = {{8080, 80, "tcp", ""}, {5353, 53, "udp", "192.0.2.1"}};
  if (r.ifname == "net1") r.socket_lb_netns_cookie = 0x1234567890abcdefULL;  // above 2^53
  return r;
}

TEST(StateStoreTest, RecordsRoundTripAndAreListedAndRemoved) {
  cninet::testing::TempDir tmp;
  StateStore store(tmp.Sub("inst"));
  auto lock = store.Lock();
  ASSERT_TRUE(lock.ok()) << lock.status();
  ASSERT_TRUE(store.Write(Sample("c1", "eth0")).ok());
  ASSERT_TRUE(store.Write(Sample("c1", "net1")).ok());  // Same container, second interface.
  ASSERT_TRUE(store.Write(Sample("c2", "eth0")).ok());
  auto r = store.Read("c1", "net1");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->ToJson(), Sample("c1", "net1").ToJson());
  EXPECT_EQ((*r)->port_mappings[1].host_ip, "192.0.2.1");
  EXPECT_EQ((*r)->socket_lb_netns_cookie, 0x1234567890abcdefULL);
  EXPECT_EQ((*store.Read("c1", "eth0"))->socket_lb_netns_cookie, 0u) << "absent = none";
  auto all = store.List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  ASSERT_TRUE(store.Remove("c1", "eth0").ok());
  ASSERT_TRUE(store.Remove("c1", "eth0").ok()) << "removing twice is fine";
  EXPECT_FALSE(store.Read("c1", "eth0")->has_value());
  EXPECT_EQ(store.List()->size(), 2u);

  EXPECT_EQ(*store.ReadUplink(), "");
  ASSERT_TRUE(store.WriteUplink("up0").ok());
  EXPECT_EQ(*store.ReadUplink(), "up0");
  ASSERT_TRUE(store.WriteUplink("").ok());
  EXPECT_EQ(*store.ReadUplink(), "");
}

TEST(StateStoreTest, CorruptRecordsAreSkippedNotFatal) {
  cninet::testing::TempDir tmp;
  StateStore store(tmp.Sub("inst"));
  ASSERT_TRUE(store.Write(Sample("good", "eth0")).ok());
  cninet::testing::WriteFile(tmp.Sub("inst/bad:eth0.json"), "{not json");
  cninet::testing::WriteFile(tmp.Sub("inst/half:eth0.json"), R"({"containerID":"half"})");
  auto all = store.List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].container_id, "good");
  auto bad = store.Read("bad", "eth0");
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->has_value());
  EXPECT_EQ(cni::GetErrorCode(AttachmentRecord::FromJson({{"containerID", 1}}).status()), 6u);
}

// Every ```cpp block of the guide is a [doc:...] block of examples/guide-chain/main.cc.
TEST(ChainedPluginGuideTest, QuotesExactlyTheCompiledExample) {
  std::string guide =
      cninet::testing::ReadFile(std::string(CNINET_SOURCE_DIR) + "/docs/chained-plugin.md");
  std::string code =
      cninet::testing::ReadFile(std::string(CNINET_SOURCE_DIR) + "/examples/guide-chain/main.cc");
  ASSERT_FALSE(guide.empty());
  ASSERT_FALSE(code.empty());
  std::vector<std::string> blocks;
  std::regex block("```cpp\n([\\s\\S]*?)```");
  for (std::sregex_iterator it(guide.begin(), guide.end(), block), end; it != end; ++it)
    blocks.push_back((*it)[1]);
  std::vector<std::string> snippets;
  std::regex doc("// \\[doc:[a-z-]+\\]\n([\\s\\S]*?)// \\[/doc\\]\n");
  for (std::sregex_iterator it(code.begin(), code.end(), doc), end; it != end; ++it)
    snippets.push_back((*it)[1]);
  ASSERT_GE(snippets.size(), 4u);
  EXPECT_EQ(blocks, snippets)
      << "docs/chained-plugin.md and doc_example.cc disagree; copy the [doc:] blocks over";
}

}  // namespace
}  // namespace cninet::ebpf_chain
