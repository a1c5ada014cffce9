#include "cninet/datapath/conntrack.h"

#include <endian.h>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"

namespace cninet::datapath {
namespace {

std::string TcpFlagsString(uint8_t f) {
  std::string s;
  if (f & 0x02) s += 'S';
  if (f & 0x10) s += 'A';
  if (f & 0x01) s += 'F';
  if (f & 0x04) s += 'R';
  if (f & 0x08) s += 'P';
  return s.empty() ? "-" : s;
}

ConntrackEntry Decode(const cn_tuple& k, const cn_ct_entry& e, uint32_t now) {
  ConntrackEntry c;
  c.tuple = FromAbi(k);
  c.reply = e.flags & CN_CT_F_REPLY;
  c.service = e.flags & CN_CT_F_SERVICE;
  c.nodeport = e.flags & CN_CT_F_NODEPORT;
  c.snat = e.flags & CN_CT_F_SNAT;
  c.inbound = e.flags & CN_CT_F_INBOUND;
  c.closing = e.flags & CN_CT_F_CLOSING;
  c.established = e.flags & CN_CT_F_SEEN_NON_SYN;
  c.policy_ok = e.flags & CN_CT_F_POLICY_OK;
  c.remote = e.flags & CN_CT_F_REMOTE;
  c.nat_address = FromAbiAddr(e.nat_addr);
  c.nat_port = be16toh(e.nat_port);
  c.service_id = e.svc_id;
  c.backend_id = e.backend_id;
  c.tcp_flags = e.tcp_flags;
  c.packets = e.packets;
  c.bytes = e.bytes;
  c.expires_in_s = static_cast<int64_t>(e.expires_s) - static_cast<int64_t>(now);
  c.age_s = now >= e.created_s ? now - e.created_s : 0;
  return c;
}

}  // namespace

std::string ConntrackEntry::ToString() const {
  std::string s = StrCat(tuple.ToString(), reply ? " reply" : " forward");
  if (service) {
    s += reply ? StrCat(" revnat=", HostPort(nat_address, nat_port))
               : StrCat(" backend=", HostPort(nat_address, nat_port));
    s += StrCat(" svc=", service_id);
  }
  if (nodeport) s += " nodeport";
  if (snat) s += " snat";
  if (inbound) s += " inbound";
  if (policy_ok) s += " policy-ok";
  if (remote) s += " remote";
  if (tuple.protocol == Protocol::kTcp) {
    s += StrCat(" flags=", TcpFlagsString(tcp_flags));
    s += closing ? " closing" : established ? " established" : " syn";
  }
  s += StrCat(" packets=", packets, " bytes=", bytes, " expires_in=", expires_in_s, "s age=", age_s,
              "s");
  return s;
}

ConntrackTable::ConntrackTable(std::shared_ptr<DatapathMaps> maps) : maps_(std::move(maps)) {}
ConntrackTable::~ConntrackTable() = default;

absl::StatusOr<std::vector<ConntrackEntry>> ConntrackTable::Dump() const {
  uint32_t now = MonotonicSeconds();
  std::vector<ConntrackEntry> out;
  CNINET_RETURN_IF_ERROR(maps_->conntrack.ForEach([&](const cn_tuple& k, const cn_ct_entry& e) {
    out.push_back(Decode(k, e, now));
    return true;
  }));
  return out;
}

absl::StatusOr<std::optional<ConntrackEntry>> ConntrackTable::Lookup(const FlowTuple& t) const {
  CNINET_ASSIGN_OR_RETURN(cn_tuple k, ToAbi(t));
  auto e = maps_->conntrack.Lookup(k);
  if (absl::IsNotFound(e.status())) return std::optional<ConntrackEntry>();
  if (!e.ok()) return e.status();
  return std::optional<ConntrackEntry>(Decode(k, *e, MonotonicSeconds()));
}

absl::StatusOr<size_t> ConntrackTable::DeleteIf(
    const std::function<bool(const ConntrackEntry&)>& pred) {
  uint32_t now = MonotonicSeconds();
  std::vector<cn_tuple> del;
  CNINET_RETURN_IF_ERROR(maps_->conntrack.ForEach([&](const cn_tuple& k, const cn_ct_entry& e) {
    if (pred(Decode(k, e, now))) del.push_back(k);
    return true;
  }));
  return maps_->conntrack.DeleteBatch(del);
}

absl::StatusOr<size_t> ConntrackTable::Flush() {
  return DeleteIf([](const ConntrackEntry&) { return true; });
}

absl::StatusOr<GcResult> ConntrackTable::Gc() {
  uint32_t now = MonotonicSeconds();
  GcResult r;
  std::vector<cn_tuple> del;
  CNINET_RETURN_IF_ERROR(maps_->conntrack.ForEach([&](const cn_tuple& k, const cn_ct_entry& e) {
    ++r.scanned;
    if (e.expires_s < now) del.push_back(k);
    return true;
  }));
  CNINET_ASSIGN_OR_RETURN(r.deleted, maps_->conntrack.DeleteBatch(del));
  return r;
}

absl::StatusOr<ConntrackStats> ConntrackTable::Stats() const {
  uint32_t now = MonotonicSeconds();
  ConntrackStats s;
  s.max_entries = maps_->conntrack.info().max_entries;
  CNINET_RETURN_IF_ERROR(maps_->conntrack.ForEach([&](const cn_tuple& k, const cn_ct_entry& e) {
    ++s.entries;
    if (e.expires_s < now) ++s.expired;
    if (k.proto == 6)
      ++s.tcp;
    else if (k.proto == 17)
      ++s.udp;
    else if (k.proto == 1)
      ++s.icmp;
    else
      ++s.other;
    if (e.flags & CN_CT_F_SERVICE) ++s.service;
    return true;
  }));
  return s;
}

}  // namespace cninet::datapath
