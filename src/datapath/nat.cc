#include "cninet/datapath/nat.h"

#include <endian.h>

#include <cstring>
#include <map>
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

bool KeyLess(const cn_nat_ports_key& a, const cn_nat_ports_key& b) {
  return std::memcmp(&a, &b, sizeof(a)) < 0;
}

}  // namespace

std::string NatEntry::ToString() const {
  return StrCat(egress ? "egress  " : "ingress ", tuple.ToString(),
                egress ? " => src " : " => dst ", HostPort(to_address, to_port),
                closing ? " closing" : "", " expires_in=", expires_in_s, "s age=", age_s, "s");
}

cn_nat_ports_key NatPortIndexKey(const cn_tuple& ingress, uint64_t* bit) {
  cn_nat_ports_key k{};
  k.node = ingress.daddr;
  k.remote = ingress.saddr;
  k.rport = ingress.sport;
  k.proto = ingress.proto;
  const uint16_t port = be16toh(ingress.dport);
  k.block = static_cast<uint16_t>(port >> 6);
  *bit = uint64_t{1} << (port & 63);
  return k;
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
  CNINET_ASSIGN_OR_RETURN(size_t n, maps_->nat.DeleteBatch(del));
  if (n > 0) CNINET_RETURN_IF_ERROR(SyncPortIndex());
  return n;
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
  if (r.deleted > 0) CNINET_RETURN_IF_ERROR(SyncPortIndex());
  return r;
}

absl::Status NatTable::SyncPortIndex() {
  if (!maps_->nat_ports.raw().valid()) return absl::OkStatus();  // pinned by an earlier version
  std::map<cn_nat_ports_key, uint64_t, decltype(&KeyLess)> want(&KeyLess), have(&KeyLess);
  CNINET_RETURN_IF_ERROR(maps_->nat.ForEach([&](const cn_tuple& k, const cn_nat_entry&) {
    if (k.pad[0] != CN_NAT_INGRESS) return true;
    uint64_t bit = 0;
    cn_nat_ports_key ik = NatPortIndexKey(k, &bit);
    want[ik] |= bit;
    return true;
  }));
  CNINET_RETURN_IF_ERROR(
      maps_->nat_ports.ForEach([&](const cn_nat_ports_key& k, const uint64_t& v) {
        have[k] = v;
        return true;
      }));
  // Races with the programs setting bits meanwhile only lose hints (see the header).
  std::vector<cn_nat_ports_key> del;
  for (const auto& [k, v] : have)
    if (!want.count(k)) del.push_back(k);
  if (!del.empty()) CNINET_RETURN_IF_ERROR(maps_->nat_ports.DeleteBatch(del).status());
  for (const auto& [k, v] : want) {
    auto h = have.find(k);
    if (h != have.end() && h->second == v) continue;
    CNINET_RETURN_IF_ERROR(Annotate(maps_->nat_ports.Update(k, v), "SNAT port index"));
  }
  return absl::OkStatus();
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
