// libFuzzer target: the IPAM configuration parser (IpamConfig::Parse with CNI_ARGS) and the
// allocation it drives. Input: the network configuration, optionally followed by a 0x01 byte
// and a CNI_ARGS string.
// Properties: no crash/UB/leak; parse failures carry only the documented codes (2, 4, 6, 7); an
// accepted configuration validates, every range set is well-formed, and ADD on an in-memory
// store hands out one allocatable address per range set (or fails with 7/100/101/102, changing
// nothing), which DEL then frees completely.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cninet/ipam/ipam.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cninet;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view conf = input, args;
  if (size_t sep = input.find('\x01'); sep != std::string_view::npos) {
    conf = input.substr(0, sep);
    args = input.substr(sep + 1);
  }
  absl::StatusOr<ipam::IpamConfig> c = ipam::IpamConfig::Parse(conf, args);
  if (!c.ok()) {
    fuzz::RequireCode(c.status(), {2, 4, 6, 7}, "IpamConfig::Parse error code");
    return 0;
  }
  fuzz::Require(c->Validate().ok(), "accepted configuration does not validate");
  fuzz::Require(!c->ranges.empty(), "accepted configuration without range sets");
  for (const ipam::RangeSet& set : c->ranges) {
    fuzz::Require(set.Validate().ok(), "accepted range set does not validate");
    for (const ipam::Range& r : set.ranges) {
      fuzz::Require(!(r.range_end < r.range_start), "range end before start");
      fuzz::Require(r.subnet.Contains(r.range_start) && r.subnet.Contains(r.range_end),
                    "range window outside its subnet");
      fuzz::Require(set.RangeFor(r.range_start) != nullptr, "range start not found in its set");
      fuzz::Require(!r.IsAllocatable(r.gateway), "gateway is allocatable");
      fuzz::Require(!r.IsAllocatable(r.subnet.address()), "network address is allocatable");
    }
  }

  // Drive an ADD and a DEL in memory (no files: resolvConf is not read).
  c->resolv_conf.clear();
  ipam::MemoryStore store;
  ipam::HostLocal hl(*c, store);
  absl::StatusOr<cni::Result> r = hl.Add("fuzz-ctr", "eth0");
  if (!r.ok()) {
    fuzz::RequireCode(r.status(), {7, 100, 101, 102}, "HostLocal::Add error code");
    fuzz::Require(store.List()->empty(), "failed ADD left leases behind");
    return 0;
  }
  fuzz::Require(r->ips.size() == c->ranges.size(), "ADD did not give one address per range set");
  for (size_t i = 0; i < r->ips.size(); ++i) {
    const ipam::Range* range = c->ranges[i].RangeFor(r->ips[i].address.address());
    fuzz::Require(range != nullptr, "address outside its range set");
    fuzz::Require(range->IsAllocatable(r->ips[i].address.address()), "address not allocatable");
    fuzz::Require(r->ips[i].address.prefix_len() == range->subnet.prefix_len(),
                  "wrong prefix length");
  }
  fuzz::Require(hl.Check("fuzz-ctr", "eth0", &*r).ok(), "CHECK fails right after ADD");
  fuzz::Require(hl.Del("fuzz-ctr", "eth0").ok(), "DEL failed");
  fuzz::Require(store.List()->empty(), "DEL left leases behind");
  return 0;
}
