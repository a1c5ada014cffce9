// Restart (issue 16, must-show 3): an established TCP connection through a ClusterIP keeps
// exchanging data after the datapath's process restarts the way an operator restarts it - a new
// `cninet-dp load` re-opens the pinned maps and replaces the attached programs - for IPv4 and
// IPv6. And a pinned map whose layout differs from the code's (value size, type, layout version)
// is refused with a message naming the map and what to do, never read with the wrong layout.
//
// Topology (all namespaces created by the test, dual-stack):
//   client (10.244.1.10, fd00:244::10) --veth-- [hc  node  hb1] --veth-- b1 (.21, ::21)
//                                               [    node  hb2] --veth-- b2 (.22, ::22)
// cninet-dp runs in the node namespace with a private bpffs pin directory.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <string>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/line_server.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using ::cninet::testing::CommandResult;
using ::cninet::testing::ScopedNetns;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Tool() { return std::string(CNINET_TOOL_DIR) + "/cninet-dp"; }

struct Family {
  const char* name;
  const char* vip;
  const char* client;
  const char* b1;
  const char* b2;
  const char* frontend;  // cninet-dp's clusterip:ADDR:PORT/tcp
  const char* backend1;  // cninet-dp's ADDR:PORT
  const char* backend2;
};
const Family kV4{"v4",
                 "10.96.0.10",
                 "10.244.1.10",
                 "10.244.1.21",
                 "10.244.1.22",
                 "clusterip:10.96.0.10:80/tcp",
                 "10.244.1.21:8080",
                 "10.244.1.22:8080"};
const Family kV6{"v6",
                 "fd00:96::10",
                 "fd00:244::10",
                 "fd00:244::21",
                 "fd00:244::22",
                 "clusterip:[fd00:96::10]:80/tcp",
                 "[fd00:244::21]:8080",
                 "[fd00:244::22]:8080"};

using ::cninet::testing::LineConn;

absl::StatusOr<LineConn> Connect(const std::string& netns_path, const std::string& ip,
                                 uint16_t port) {
  return ::cninet::testing::ConnectLine(netns_path, ip, port);
}

// The ids of the BPF programs tc runs on `dev` (ingress), from `tc filter show`.
std::string TcProgramIds(const CommandResult& r) {
  std::string ids;
  std::regex id_re(" id ([0-9]+)");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), id_re), end; it != end; ++it)
    ids += (*it)[1].str() + " ";
  return ids;
}

class RestartE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    pin_dir_ = fs_.path() + "/cninet/restart";
    Must(
        node_.Exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                   "net.ipv4.conf.default.rp_filter=0 net.ipv6.conf.all.forwarding=1 "
                   "net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"));
    AddPod(client_, "hc", "10.244.1.10", "fd00:244::10");
    AddPod(b1_, "hb1", "10.244.1.21", "fd00:244::21");
    AddPod(b2_, "hb2", "10.244.1.22", "fd00:244::22");
  }

  void Must(const CommandResult& r) { ASSERT_TRUE(r.ok()) << r.out << r.err; }

  void AddPod(ScopedNetns& pod, const std::string& host_if, const std::string& ip4,
              const std::string& ip6) {
    Must(::cninet::testing::WireDualStackPod(node_, pod, host_if, ip4, ip6));
  }

  // Runs cninet-dp inside the node namespace: each call is a new process.
  CommandResult Dp(const std::string& args) {
    return node_.Exec(Tool() + " --pin-dir " + pin_dir_ + " " + args);
  }
  void MustDp(const std::string& args) {
    CommandResult r = Dp(args);
    ASSERT_TRUE(r.ok()) << "cninet-dp " << args << ": " << r.out << r.err;
  }
  // The operator's start (and restart) of the datapath.
  static constexpr char kLoad[] =
      "load --cluster-cidr 10.244.0.0/16 --cluster-cidr fd00:244::/64 --node-ip 192.168.77.1 "
      "--node-ip fd00:77::1 --from-pod hc,hb1,hb2";

  // Declaration order = reverse destruction order: the bpffs goes last.
  ScopedBpffs fs_;
  std::string pin_dir_;
  ScopedNetns node_{"rsn"}, client_{"rsc"}, b1_{"rsb"}, b2_{"rsb"};
};

class RestartFamilyTest : public RestartE2eTest,
                          public ::testing::WithParamInterface<const Family*> {};

TEST_P(RestartFamilyTest, EstablishedConnectionThroughAClusterIpSurvivesADatapathRestart) {
  const Family& f = *GetParam();
  MustDp(kLoad);
  MustDp(std::string("service upsert --id 1 --frontend ") + f.frontend + " --backend " +
         f.backend1 + " --backend " + f.backend2 + " --maglev-size 251");
  using ::cninet::testing::LineServer;
  using ::cninet::testing::LineServerOptions;
  LineServer s1(LineServerOptions{
      .netns_path = b1_.path(), .address = f.b1, .port = 8080, .name = "B1", .peer_port = true});
  LineServer s2(LineServerOptions{
      .netns_path = b2_.path(), .address = f.b2, .port = 8080, .name = "B2", .peer_port = true});
  ASSERT_TRUE(s1.status().ok()) << s1.status();
  ASSERT_TRUE(s2.status().ok()) << s2.status();

  auto conn = Connect(client_.path(), f.vip, 80);
  ASSERT_TRUE(conn.ok()) << conn.status();
  std::string backend;
  for (int i = 0; i < 3; ++i) {
    auto r = ::cninet::testing::AskLine(*conn, "before restart " + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_THAT(*r, HasSubstr("before restart " + std::to_string(i)));
    if (backend.empty()) backend = r->substr(0, 2);
    EXPECT_EQ(r->substr(0, 2), backend);
  }
  const FlowTuple flow{*cni::IPAddress::Parse(f.client), *cni::IPAddress::Parse(f.vip),
                       conn->LocalPort(), 80, Protocol::kTcp};
  uint64_t packets_before = 0;
  {
    auto view = Datapath::OpenPinned(pin_dir_);
    ASSERT_TRUE(view.ok()) << view.status();
    auto e = (*view)->conntrack().Lookup(flow);
    ASSERT_TRUE(e.ok() && e->has_value()) << "the connection has a conntrack entry";
    EXPECT_TRUE((*e)->established);
    packets_before = (*e)->packets;
  }
  const std::string progs_before = TcProgramIds(node_.Exec("tc filter show dev hc ingress"));
  ASSERT_FALSE(progs_before.empty()) << "from-pod is attached to hc";

  // Restart: a new process loads the programs again, re-opens the pinned maps (conntrack,
  // services, backends, ...) and replaces the programs on the interfaces.
  MustDp(kLoad);
  const std::string progs_after = TcProgramIds(node_.Exec("tc filter show dev hc ingress"));
  EXPECT_NE(progs_after, progs_before) << "the restart replaced the attached program";
  // After the restart the service loses the connection's backend: only the conntrack entry made
  // before the restart (not Maglev choosing the same backend again) keeps the connection there.
  const std::string other = backend == "B1" ? f.backend2 : f.backend1;
  MustDp(std::string("service upsert --id 1 --frontend ") + f.frontend + " --backend " + other +
         " --maglev-size 251");

  for (int i = 0; i < 3; ++i) {
    auto r = ::cninet::testing::AskLine(*conn, "after restart " + std::to_string(i));
    ASSERT_TRUE(r.ok()) << "the established connection broke: " << r.status();
    EXPECT_EQ(r->substr(0, 2), backend) << "the connection stays on its backend: " << *r;
    EXPECT_THAT(*r, HasSubstr("after restart " + std::to_string(i)));
  }
  // The same conntrack entry carried the packets after the restart (no new flow was made).
  auto view = Datapath::OpenPinned(pin_dir_);
  ASSERT_TRUE(view.ok()) << view.status();
  auto e = (*view)->conntrack().Lookup(flow);
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_GT((*e)->packets, packets_before) << (*e)->ToString();
  EXPECT_EQ((*e)->nat_address.ToString(), backend == "B1" ? f.b1 : f.b2);
  // New connections follow the service as updated after the restart.
  auto fresh = Connect(client_.path(), f.vip, 80);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  auto r = ::cninet::testing::AskLine(*fresh, "new connection");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->substr(0, 2), backend) << *r;
  EXPECT_THAT(*r, HasSubstr("new connection"));
}

INSTANTIATE_TEST_SUITE_P(Families, RestartFamilyTest, ::testing::Values(&kV4, &kV6),
                         [](const auto& p) { return std::string(p.param->name); });

// Pins `spec` (bpftool map create arguments) at the instance's map `name` (in the test's bpffs).
CommandResult PinMap(const std::string& pin_dir, const std::string& name, const std::string& spec) {
  return ::cninet::testing::Sh("mkdir -p " + pin_dir + " && bpftool map create " + pin_dir + "/" +
                               name + " " + spec + " name " + name);
}

TEST_F(RestartE2eTest, PinnedNatMapWithAnotherValueSizeIsRefusedByName) {
  // cn_nat with 32-byte values (this datapath's cn_nat_entry has 28).
  Must(PinMap(pin_dir_, CN_MAP_NAT, "type hash key 40 value 32 entries 1024"));
  CommandResult r = Dp(kLoad);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.out + r.err, AllOf(HasSubstr(pin_dir_ + "/cn_nat"), HasSubstr("value size 32"),
                                   HasSubstr("expected 28"), HasSubstr("unpin")));
  // Refused, not replaced or read: the pinned map is still the one pinned above.
  CommandResult show =
      ::cninet::testing::Sh("bpftool map show pinned " + pin_dir_ + "/" + CN_MAP_NAT);
  EXPECT_THAT(show.out, HasSubstr("value 32B"));
  // No program was attached.
  EXPECT_THAT(node_.Exec("tc filter show dev hc ingress").out, ::testing::Not(HasSubstr("bpf")));
}

TEST_F(RestartE2eTest, PinnedNatMapOfTheNoPreallocLayoutIsMigratedWithItsMappings) {
  // cn_nat as pinned before issue 16 (BPF_F_NO_PREALLOC), holding one egress mapping:
  // 10.244.1.10:45000 -> 198.51.100.80:443/tcp => src 192.168.77.1:45000.
  Must(PinMap(pin_dir_, CN_MAP_NAT, "type hash key 40 value 28 entries 1024 flags 1"));
  const std::string mapped = "00 00 00 00 00 00 00 00 00 00 ff ff ";
  Must(::cninet::testing::Sh("bpftool map update pinned " + pin_dir_ + "/" + CN_MAP_NAT +
                             " key hex " + mapped + "0a f4 01 0a " + mapped +
                             "c6 33 64 50 af c8 01 bb 06 01 00 00 value hex " + mapped +
                             "c0 a8 4d 01 af c8 00 00 ff ff ff 7f 00 00 00 00"));
  MustDp(std::string(kLoad) + " --nat-size 1024");
  // The map at the pin is the preallocated one, with the mapping copied.
  CommandResult show =
      ::cninet::testing::Sh("bpftool map show pinned " + pin_dir_ + "/" + CN_MAP_NAT);
  EXPECT_THAT(show.out, ::testing::Not(HasSubstr("flags 0x1"))) << show.out;
  auto view = Datapath::OpenPinned(pin_dir_);
  ASSERT_TRUE(view.ok()) << view.status();
  auto all = (*view)->nat().Dump();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_TRUE((*all)[0].egress);
  EXPECT_EQ((*all)[0].tuple.src.ToString(), "10.244.1.10");
  EXPECT_EQ((*all)[0].to_address.ToString(), "192.168.77.1");
  EXPECT_EQ((*all)[0].to_port, 45000);
  // A second load finds the new layout: nothing to migrate, the mapping still there.
  MustDp(std::string(kLoad) + " --nat-size 1024");
  auto again = Datapath::OpenPinned(pin_dir_);
  ASSERT_TRUE(again.ok());
  auto n = (*again)->nat().Stats();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->egress, 1u);
}

TEST_F(RestartE2eTest, PinnedConntrackMapOfAnotherTypeIsRefusedByName) {
  Must(PinMap(pin_dir_, CN_MAP_CT, "type array key 4 value 56 entries 1024"));
  CommandResult r = Dp(kLoad);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.out + r.err, AllOf(HasSubstr(pin_dir_ + "/cn_ct"), HasSubstr("type array"),
                                   HasSubstr("expected lru_hash"), HasSubstr("key size 4")));
}

TEST_F(RestartE2eTest, PinnedMapsOfOtherSizesAreRefusedWithTheSizesToUse) {
  MustDp(kLoad);
  CommandResult r = Dp(std::string(kLoad) + " --ct-size 4096");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.out + r.err, AllOf(HasSubstr(pin_dir_ + "/cn_ct"), HasSubstr("max_entries"),
                                   HasSubstr("expected 4096"), HasSubstr("sizes it was created")));
}

TEST_F(RestartE2eTest, PinnedMapsOfAnotherLayoutVersionAreRefused) {
  MustDp(kLoad);
  {
    auto view = Datapath::OpenPinned(pin_dir_);
    ASSERT_TRUE(view.ok()) << view.status();
    auto cfg = (*view)->maps()->config.Lookup(0);
    ASSERT_TRUE(cfg.ok());
    cfg->abi_version = CN_ABI_VERSION + 1;  // written by a newer version
    ASSERT_TRUE((*view)->maps()->config.Update(0, *cfg).ok());
  }
  CommandResult r = Dp(kLoad);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.out + r.err,
              AllOf(HasSubstr("map layout version " + std::to_string(CN_ABI_VERSION + 1)),
                    HasSubstr("unpin")));
  // The tools that only read refuse as well.
  EXPECT_FALSE(Datapath::OpenPinned(pin_dir_).ok());
}

}  // namespace
}  // namespace cninet::datapath::testing
