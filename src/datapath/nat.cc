#include "cninet/datapath/nat.h"

#include <endian.h>

#include <cstring>
#include <set>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"

namespace cninet::datapath {
namespace {

NatEntry Decode(const cn_tuple& k, const cn_nat_entry& e, uint32_t now) {
  NatEntry n;
  n.egress = k.pad[0] == CN_NAT_EGRESS;
  cn_tuple t = k;
  t.pad[0] = 0;
  n.tuple = FromAbi(t);
  n.to_address = FromAbiAddr(e.to_addr);
  n.to_port = be16toh(e.to_port);
  n.closing = e.tcp_closing;
  n.expires_in_s = static_cast<int64_t>(e.expires_s) - static_cast<int64_t>(now);
  n.age_s = now >= e.created_s ? now - e.created_s : 0;
  return n;
}

// The key of the other direction of a mapping.
cn_tuple Partner(const cn_tuple& k, const cn_nat_entry& e) {
  cn_tuple p{};
  p.proto = k.proto;
  if (k.pad[0] == CN_NAT_EGRESS) {
    p.saddr = k.daddr;
    p.daddr = e.to_addr;
    p.sport = k.dport;
    p.dport = e.to_port;
    p.pad[0] = CN_NAT_INGRESS;
  } else {
    p.saddr = e.to_addr;
    p.daddr = k.saddr;
    p.sport = e.to_port;
    p.dport = k.sport;
    p.pad[0] = CN_NAT_EGRESS;
  }
  return p;
}

}  // namespace

std::string NatEntry::ToString() const {
  return StrCat(egress ? "egress  " : "ingress ", tuple.ToString(),
                egress ? " => src " : " => dst ", HostPort(to_address, to_port),
                closing ? " closing" : "", " expires_in=", expires_in_s, "s age=", age_s, "s");
}

NatTable::NatTable(std::shared_ptr<DatapathMaps> maps) : maps_(std::move(maps)) {}
NatTable::~NatTable() = default;

absl::StatusOr<std::vector<NatEntry>> NatTable::Dump() const {
  uint32_t now = MonotonicSeconds();
  std::vector<NatEntry> out;
  CNINET_RETURN_IF_ERROR(maps_->nat.ForEach([&](const cn_tuple& k, const cn_nat_entry& e) {
    out.push_back(Decode(k, e, now));
    return true;
  }));
  return out;
}

absl::StatusOr<std::optional<NatEntry>> NatTable::Lookup(const FlowTuple& t, bool egress) const {
  CNINET_ASSIGN_OR_RETURN(cn_tuple k, ToAbi(t));
  k.pad[0] = egress ? CN_NAT_EGRESS : CN_NAT_INGRESS;
  auto e = maps_->nat.Lookup(k);
  if (absl::IsNotFound(e.status())) return std::optional<NatEntry>();
  if (!e.ok()) return e.status();
  return std::optional<NatEntry>(Decode(k, *e, MonotonicSeconds()));
}

absl::StatusOr<size_t> NatTable::DeleteIf(const std::function<bool(const NatEntry&)>& pred) {
  uint32_t now = MonotonicSeconds();
  std::vector<cn_tuple> del;
  CNINET_RETURN_IF_ERROR(maps_->nat.ForEach([&](const cn_tuple& k, const cn_nat_entry& e) {
    if (pred(Decode(k, e, now))) del.push_back(k);
    return true;
  }));
  return maps_->nat.DeleteBatch(del);
}

absl::StatusOr<size_t> NatTable::Flush() {
  return DeleteIf([](const NatEntry&) { return true; });
}

absl::StatusOr<GcResult> NatTable::Gc() {
  uint32_t now = MonotonicSeconds();
  GcResult r;
  std::vector<std::pair<cn_tuple, cn_nat_entry>> all;
  CNINET_RETURN_IF_ERROR(maps_->nat.ForEach([&](const cn_tuple& k, const cn_nat_entry& e) {
    all.emplace_back(k, e);
    return true;
  }));
  r.scanned = all.size();
  auto key_less = [](const cn_tuple& a, const cn_tuple& b) {
    return std::memcmp(&a, &b, sizeof(a)) < 0;
  };
  std::set<cn_tuple, decltype(key_less)> live(key_less);
  for (const auto& [k, e] : all)
    if (e.expires_s >= now) live.insert(k);
  std::vector<cn_tuple> del;
  for (const auto& [k, e] : all) {
    if (e.expires_s >= now) continue;
    if (live.count(Partner(k, e))) continue;  // the other direction is still in use
    del.push_back(k);
  }
  CNINET_ASSIGN_OR_RETURN(r.deleted, maps_->nat.DeleteBatch(del));
  return r;
}

absl::StatusOr<NatStats> NatTable::Stats() const {
  uint32_t now = MonotonicSeconds();
  NatStats s;
  s.max_entries = maps_->nat.info().max_entries;
  CNINET_RETURN_IF_ERROR(maps_->nat.ForEach([&](const cn_tuple& k, const cn_nat_entry& e) {
    if (k.pad[0] == CN_NAT_EGRESS)
      ++s.egress;
    else
      ++s.ingress;
    if (e.expires_s < now) ++s.expired;
    return true;
  }));
  return s;
}

}  // namespace cninet::datapath
