// HostLocal over a real DiskStore: ADD/DEL/CHECK/GC/STATUS/Leases semantics.
#include "cninet/ipam/host_local.h"

#include <filesystem>
#include <string>

#include "cninet/ipam/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_matchers.h"
#include "testing/test_util.h"

namespace cninet::ipam {
namespace {

namespace fs = std::filesystem;
using cni::IPAddress;
using cninet::testing::TempDir;
using testing::CniStatusIs;
using ::testing::ElementsAre;
using testing::IsOk;

IPAddress Ip(const char* s) { return *IPAddress::Parse(s); }

class HostLocalTest : public ::testing::Test {
 protected:
  // Parses `ipam` (the ipam object) for network "net" in the temp dataDir and opens its store.
  void Load(const std::string& ipam_ranges, const std::string& cni_args = "",
            const std::string& extra = "") {
    std::string conf = R"({"cniVersion":"1.0.0","name":"net",)" + extra +
                       R"("ipam":{"type":"host-local","dataDir":")" + tmp_.path() + R"(",)" +
                       ipam_ranges + "}}";
    auto c = IpamConfig::Parse(conf, cni_args);
    ASSERT_THAT(c, IsOk());
    config_ = *c;
    auto s = OpenStore(config_);
    ASSERT_THAT(s, IsOk());
    store_ = std::move(*s);
    hl_ = std::make_unique<HostLocal>(config_, *store_);
  }

  std::vector<std::string> LeaseFiles() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(tmp_.Sub("net"))) {
      std::string n = e.path().filename().string();
      if (n != "lock" && n.rfind("last_reserved_ip.", 0) != 0) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  TempDir tmp_;
  IpamConfig config_;
  std::unique_ptr<DiskStore> store_;
  std::unique_ptr<HostLocal> hl_;
};

TEST_F(HostLocalTest, AddDualStackWithRoutesAndDns) {
  cninet::testing::WriteFile(tmp_.Sub("resolv.conf"), "nameserver 10.0.0.53\nsearch svc\n");
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]],
          "routes":[{"dst":"0.0.0.0/0"}],"resolvConf":")" +
       tmp_.Sub("resolv.conf") + "\"");
  auto r = hl_->Add("ctr", "eth0");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->cni_version, "1.0.0");
  ASSERT_EQ(r->ips.size(), 2u);
  EXPECT_EQ(r->ips[0].address.ToString(), "10.1.0.2/24");
  EXPECT_EQ(r->ips[0].gateway, Ip("10.1.0.1"));
  EXPECT_FALSE(r->ips[0].interface.has_value());
  EXPECT_EQ(r->ips[1].address.ToString(), "fd00:1::2/64");
  ASSERT_EQ(r->routes.size(), 1u);
  EXPECT_EQ(r->routes[0].dst.ToString(), "0.0.0.0/0");
  EXPECT_THAT(r->dns.nameservers, ElementsAre("10.0.0.53"));
  EXPECT_THAT(r->dns.search, ElementsAre("svc"));
  EXPECT_THAT(LeaseFiles(), ElementsAre("10.1.0.2", "fd00:1::2"));
}

TEST_F(HostLocalTest, AddIsAllOrNothing) {
  // The IPv6 set has a single address; once taken, a second ADD must not keep its IPv4 lease.
  Load(
      R"("ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/126","rangeEnd":"fd00:1::2"}]])");
  ASSERT_THAT(hl_->Add("a", "eth0"), IsOk());
  EXPECT_THAT(hl_->Add("b", "eth0"), CniStatusIs(kNoFreeAddress, "failed to allocate for range 1"));
  EXPECT_THAT(LeaseFiles(), ElementsAre("10.1.0.2", "fd00:1::2"));
}

TEST_F(HostLocalTest, RequestedAddressesAndLeftovers) {
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]])",
       "IP=10.1.0.50,fd00:1::50");
  auto r = hl_->Add("a", "eth0");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->ips[0].address.ToString(), "10.1.0.50/24");
  EXPECT_EQ(r->ips[1].address.ToString(), "fd00:1::50/64");

  // A requested address outside every set: nothing stays allocated.
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}]])", "IP=10.9.9.9");
  EXPECT_THAT(hl_->Add("b", "eth0"),
              CniStatusIs(7, "failed to allocate all requested IPs: 10.9.9.9"));
  // Two requests for one set: the second one is left over.
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}]])", "",
       R"("runtimeConfig":{"ips":["10.1.0.60","10.1.0.61"]},)");
  EXPECT_THAT(hl_->Add("c", "eth0"), CniStatusIs(7, "10.1.0.61"));
  EXPECT_THAT(LeaseFiles(), ElementsAre("10.1.0.50", "fd00:1::50"));
}

TEST_F(HostLocalTest, BadRequestsAreRefusedBeforeAnythingIsWritten) {
  const std::string ranges = R"("ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]])";
  Load(ranges);
  ASSERT_THAT(hl_->Add("a", "eth0"), IsOk());
  const std::string hint0 = cninet::testing::ReadFile(tmp_.Sub("net/last_reserved_ip.0"));
  // The IPv6 request is the subnet's gateway: refused before the IPv4 set is touched.
  Load(ranges, "IP=fd00:1::1");
  EXPECT_THAT(hl_->Add("b", "eth0"), CniStatusIs(7, "is subnet's gateway"));
  // A window that includes the network address still never hands it out.
  Load(
      R"("ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.0"}],[{"subnet":"fd00:1::/64"}]])",
      "IP=10.1.0.0");
  EXPECT_THAT(hl_->Add("b", "eth0"), CniStatusIs(7, "network or broadcast"));
  Load(ranges, "IP=10.9.0.9");
  EXPECT_THAT(hl_->Add("b", "eth0"), CniStatusIs(7, "failed to allocate all requested IPs"));
  EXPECT_THAT(LeaseFiles(), ElementsAre("10.1.0.2", "fd00:1::2"));
  EXPECT_EQ(cninet::testing::ReadFile(tmp_.Sub("net/last_reserved_ip.0")), hint0);
}

TEST_F(HostLocalTest, DelIsIdempotentAndPerAttachment) {
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}]])");
  ASSERT_THAT(hl_->Add("a", "eth0"), IsOk());
  ASSERT_THAT(hl_->Add("a", "eth1"), IsOk());
  ASSERT_THAT(hl_->Del("a", "eth0"), IsOk());
  EXPECT_THAT(LeaseFiles(), ElementsAre("10.1.0.3"));
  ASSERT_THAT(hl_->Del("a", "eth0"), IsOk());
  ASSERT_THAT(hl_->Del("unknown", "eth0"), IsOk());
  EXPECT_THAT(LeaseFiles(), ElementsAre("10.1.0.3"));
  EXPECT_THAT(hl_->Del("bad/id", "eth0"), CniStatusIs(4, "CNI_CONTAINERID"));
}

TEST_F(HostLocalTest, Check) {
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}]])");
  auto r = hl_->Add("a", "eth0");
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(hl_->Check("a", "eth0", &*r), IsOk());
  EXPECT_THAT(hl_->Check("a", "eth0"), IsOk());
  EXPECT_THAT(hl_->Check("b", "eth0"), CniStatusIs(kLeaseMissing, "Failed to find address"));
  cni::Result wrong = *r;
  wrong.ips[0].address = cni::IPPrefix(Ip("10.1.0.99"), 24);
  EXPECT_THAT(hl_->Check("a", "eth0", &wrong), CniStatusIs(kLeaseMissing, "10.1.0.99"));
  // Addresses outside our ranges (another IPAM's) are not our business.
  cni::Result foreign = *r;
  foreign.ips.push_back(cni::IPConfig{cni::IPPrefix(Ip("192.168.5.5"), 24), {}, {}, {}});
  EXPECT_THAT(hl_->Check("a", "eth0", &foreign), IsOk());
}

TEST_F(HostLocalTest, GcKeepsExactlyTheValidAttachments) {
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}]])");
  ASSERT_THAT(hl_->Add("keep", "eth0"), IsOk());                         // .2
  ASSERT_THAT(hl_->Add("keep", "eth1"), IsOk());                         // .3 - not listed: freed
  ASSERT_THAT(hl_->Add("gone", "eth0"), IsOk());                         // .4
  cninet::testing::WriteFile(tmp_.Sub("net/10.1.0.40"), "legacy");       // Legacy, kept.
  cninet::testing::WriteFile(tmp_.Sub("net/10.1.0.41"), "legacy-gone");  // Legacy, freed.
  cninet::testing::WriteFile(tmp_.Sub("net/10.1.0.42"), "");             // Torn record, freed.
  cninet::testing::WriteFile(tmp_.Sub("net/.cninet-tmp-1-1"), "debris");
  auto freed = hl_->Gc({{"keep", "eth0"}, {"legacy", "eth0"}, {"not-there", "eth0"}});
  ASSERT_THAT(freed, IsOk());
  EXPECT_EQ(freed->size(), 4u);
  EXPECT_THAT(LeaseFiles(), ElementsAre("10.1.0.2", "10.1.0.40"));
  EXPECT_TRUE(fs::exists(tmp_.Sub("net/lock")));
  EXPECT_TRUE(fs::exists(tmp_.Sub("net/last_reserved_ip.0")));
  // GC with no valid attachments frees everything.
  ASSERT_THAT(hl_->Gc({}), IsOk());
  EXPECT_TRUE(LeaseFiles().empty());
}

TEST_F(HostLocalTest, StatusReportsExhaustion) {
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.2.0.0/30"}]])");
  EXPECT_THAT(hl_->Status(), IsOk());
  ASSERT_THAT(hl_->Add("a", "eth0"), IsOk());
  EXPECT_THAT(hl_->Status(), CniStatusIs(50, "range set 1"));
  ASSERT_THAT(hl_->Del("a", "eth0"), IsOk());
  EXPECT_THAT(hl_->Status(), IsOk());
}

TEST_F(HostLocalTest, LeasesListsRangeSets) {
  Load(R"("ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00::/64"}]])");
  ASSERT_THAT(hl_->Add("a", "eth0"), IsOk());
  cninet::testing::WriteFile(tmp_.Sub("net/192.168.0.5"), "x\r\neth0");
  auto leases = hl_->Leases();
  ASSERT_THAT(leases, IsOk());
  ASSERT_EQ(leases->size(), 3u);
  EXPECT_EQ((*leases)[0].lease, (Lease{Ip("10.1.0.2"), "a", "eth0"}));
  EXPECT_EQ((*leases)[0].range_set, 0);
  EXPECT_EQ((*leases)[1].range_set, std::nullopt);  // 192.168.0.5: outside every set.
  EXPECT_EQ((*leases)[2].range_set, 1);
}

}  // namespace
}  // namespace cninet::ipam
