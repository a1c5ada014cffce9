#include "cninet/agent/overlay.h"

#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::agent {
namespace {

using cni::IPAddress;
using cni::IPPrefix;
namespace nl = ::cninet::netlink;

std::optional<IPPrefix> FirstPodCIDR(const v1::Node& node, bool v4) {
  for (const std::string& text : node.pod_cidrs()) {
    auto p = IPPrefix::Parse(text);
    if (p.ok() && p->is_v4() == v4) return p->Masked();
  }
  return std::nullopt;
}

std::optional<IPPrefix> FirstV4PodCIDR(const v1::Node& node) { return FirstPodCIDR(node, true); }

std::optional<IPAddress> FirstInternal(const v1::Node& node, bool v4) {
  for (const auto& a : node.addresses()) {
    if (a.type() != v1::NodeAddress::INTERNAL_IP) continue;
    auto ip = IPAddress::Parse(a.address());
    if (ip.ok() && ip->is_v4() == v4) return *ip;
  }
  return std::nullopt;
}

std::optional<IPAddress> FirstV4Internal(const v1::Node& node) { return FirstInternal(node, true); }

// Keeps the first error of a sequence of independent steps.
void Keep(absl::Status* first, const absl::Status& st) {
  if (!st.ok() && first->ok()) *first = st;
}

}  // namespace

std::string_view PeerModeName(PeerMode mode) {
  return mode == PeerMode::kDirect ? "direct" : "vxlan";
}

namespace {

// A podCIDR already routed, and the node it routes to.
using RoutedCidr = std::pair<IPPrefix, std::string>;

// How to reach node `n`'s podCIDR through its VXLAN device: its vtepMAC and underlay address.
absl::Status PlanVxlanPeer(const v1::Node& n, const IPAddress& internal, OverlayPeer* peer) {
  peer->mode = PeerMode::kVxlan;
  auto mac = nl::MacAddress::Parse(n.vtep_mac());
  if (n.vtep_mac().empty() || !mac.ok() || !mac->IsUnicast() || mac->IsZero()) {
    return absl::FailedPreconditionError("no usable vtepMAC (VXLAN needs one)");
  }
  peer->vtep_mac = *mac;
  peer->vtep = internal;
  if (!n.public_ip().empty()) {
    auto pub = IPAddress::Parse(n.public_ip());
    if (!pub.ok() || !pub->is_v4()) {
      return absl::FailedPreconditionError(
          StrCat("publicIP ", n.public_ip(), " is not an IPv4 underlay address"));
    }
    peer->vtep = *pub;
  }
  peer->gateway = peer->pod_cidr.address();
  return absl::OkStatus();
}

// The entry of peer `n`, or (FailedPrecondition) why it is skipped.
absl::StatusOr<OverlayPeer> PlanPeer(const OverlaySelf& self, const v1::Node& n,
                                     const std::vector<RoutedCidr>& routed) {
  std::optional<IPPrefix> cidr = FirstV4PodCIDR(n);
  if (!cidr) return absl::FailedPreconditionError("no IPv4 podCIDR yet");
  std::optional<IPAddress> internal = FirstV4Internal(n);
  if (!internal) return absl::FailedPreconditionError("no IPv4 INTERNAL_IP address");
  if (self.pod_cidr.prefix_len() > 0 && cidr->Overlaps(self.pod_cidr)) {
    return absl::FailedPreconditionError(
        StrCat("podCIDR ", cidr->ToString(), " overlaps this node's ", self.pod_cidr.ToString()));
  }
  auto clash = std::find_if(routed.begin(), routed.end(),
                            [&](const auto& r) { return r.first.Overlaps(*cidr); });
  if (clash != routed.end()) {
    return absl::FailedPreconditionError(StrCat("podCIDR ", cidr->ToString(), " overlaps node ",
                                                clash->second, "'s ", clash->first.ToString()));
  }
  OverlayPeer peer;
  peer.node = n.name();
  peer.pod_cidr = *cidr;
  bool same_subnet = self.underlay.prefix_len() > 0 && self.underlay.Masked().Contains(*internal);
  if (self.direct_routing && n.direct_routing() && same_subnet) {
    peer.mode = PeerMode::kDirect;
    peer.gateway = *internal;
    return peer;
  }
  CNINET_RETURN_IF_ERROR(PlanVxlanPeer(n, *internal, &peer));
  return peer;
}

// The IPv6 entry of peer `n` (planned with IPv4 entry `v4`), or why it is skipped.
absl::StatusOr<OverlayPeer> PlanPeerV6(const OverlaySelf& self, const v1::Node& n,
                                       const OverlayPeer& v4,
                                       const std::vector<RoutedCidr>& routed) {
  std::optional<IPPrefix> cidr = FirstPodCIDR(n, false);
  if (!cidr) return absl::NotFoundError("no IPv6 podCIDR");
  if (self.pod_cidr_v6.prefix_len() == 0) {
    return absl::FailedPreconditionError("this node has no IPv6 podCIDR");
  }
  if (cidr->Overlaps(self.pod_cidr_v6)) {
    return absl::FailedPreconditionError(StrCat(
        "podCIDR ", cidr->ToString(), " overlaps this node's ", self.pod_cidr_v6.ToString()));
  }
  for (const RoutedCidr& r : routed) {
    if (r.first.Overlaps(*cidr)) {
      return absl::FailedPreconditionError(StrCat("podCIDR ", cidr->ToString(), " overlaps node ",
                                                  r.second, "'s ", r.first.ToString()));
    }
  }
  OverlayPeer peer;
  peer.node = n.name();
  peer.pod_cidr = *cidr;
  std::optional<IPAddress> internal6 = FirstInternal(n, false);
  if (self.direct_routing && n.direct_routing() && internal6 && self.underlay_v6.prefix_len() > 0 &&
      self.underlay_v6.Masked().Contains(*internal6)) {
    peer.mode = PeerMode::kDirect;
    peer.gateway = *internal6;
    return peer;
  }
  if (v4.mode == PeerMode::kVxlan) {
    peer.vtep = v4.vtep;
    peer.vtep_mac = v4.vtep_mac;
  } else {
    // IPv4 goes direct but IPv6 cannot: the VXLAN device still reaches the peer.
    CNINET_ASSIGN_OR_RETURN(IPAddress internal, [&]() -> absl::StatusOr<IPAddress> {
      std::optional<IPAddress> a = FirstV4Internal(n);
      if (!a) return absl::FailedPreconditionError("no IPv4 INTERNAL_IP address");
      return *a;
    }());
    CNINET_RETURN_IF_ERROR(PlanVxlanPeer(n, internal, &peer));
  }
  peer.mode = PeerMode::kVxlan;
  peer.gateway = VtepLinkLocalFor(peer.vtep_mac);
  return peer;
}

}  // namespace

OverlayPlan PlanOverlay(const OverlaySelf& self, std::span<const v1::Node> nodes) {
  std::vector<const v1::Node*> sorted;
  for (const v1::Node& n : nodes) sorted.push_back(&n);
  std::sort(sorted.begin(), sorted.end(),
            [](const v1::Node* a, const v1::Node* b) { return a->name() < b->name(); });
  OverlayPlan plan;
  std::vector<RoutedCidr> routed;  // podCIDRs already planned
  for (const v1::Node* n : sorted) {
    if (n->name() == self.name) continue;
    absl::StatusOr<OverlayPeer> peer = PlanPeer(self, *n, routed);
    if (!peer.ok()) {
      plan.skipped.push_back({n->name(), std::string(peer.status().message())});
      continue;
    }
    routed.push_back({peer->pod_cidr, n->name()});
    plan.peers.push_back(*peer);
    absl::StatusOr<OverlayPeer> peer6 = PlanPeerV6(self, *n, *peer, routed);
    if (peer6.ok()) {
      routed.push_back({peer6->pod_cidr, n->name()});
      plan.peers.push_back(*std::move(peer6));
    } else if (!absl::IsNotFound(peer6.status())) {
      plan.skipped.push_back({n->name(), StrCat("IPv6: ", peer6.status().message())});
    }
  }
  return plan;
}

IPAddress VtepLinkLocalFor(const nl::MacAddress& mac) {
  std::array<uint8_t, 16> b{0xfe, 0x80};
  const auto& m = mac.bytes();
  b[8] = m[0] ^ 0x02;
  b[9] = m[1];
  b[10] = m[2];
  b[11] = 0xff;
  b[12] = 0xfe;
  b[13] = m[3];
  b[14] = m[4];
  b[15] = m[5];
  return IPAddress::FromBytes(b.data(), b.size());
}

nl::MacAddress VtepMacFor(const IPAddress& underlay) {
  std::array<uint8_t, 6> b{0x0e, 0xc1, 0, 0, 0, 0};
  for (int i = 0; i < 4; ++i) b[2 + i] = underlay.bytes()[i];
  return nl::MacAddress(b);
}

OverlayReconciler::OverlayReconciler(nl::Handle* handle, VxlanDeviceConfig vxlan, int uplink_index,
                                     uint8_t route_protocol)
    : handle_(handle),
      vxlan_(std::move(vxlan)),
      uplink_index_(uplink_index),
      route_protocol_(route_protocol) {}

absl::Status OverlayReconciler::EnsureDevice() {
  auto existing = handle_->GetLink(vxlan_.name);
  if (existing.ok()) {
    const nl::Link& l = *existing;
    bool same = l.kind == "vxlan" && l.vxlan && l.vxlan->vni == vxlan_.vni &&
                l.vxlan->port == vxlan_.port && l.vxlan->local == vxlan_.local &&
                l.mac == vxlan_.mac && !l.vxlan->learning && l.vxlan->gbp;
    if (!same) {
      CNINET_LOG(kWarning, "VXLAN device ", vxlan_.name, " has other settings; recreating it");
      CNINET_RETURN_IF_ERROR(handle_->DeleteLink(l.index));
      existing = absl::NotFoundError("recreate");
    }
  }
  if (!existing.ok()) {
    if (!absl::IsNotFound(existing.status())) return existing.status();
    nl::VxlanSpec spec;
    spec.name = vxlan_.name;
    spec.vni = vxlan_.vni;
    spec.port = vxlan_.port;
    spec.local = vxlan_.local;
    spec.underlay_index = vxlan_.underlay_index;
    spec.learning = false;
    spec.udp_csum = true;
    // GBP carries the datapath's service mark (skb->mark) to the backend's node (rule e).
    spec.gbp = true;
    spec.mtu = vxlan_.mtu;
    spec.mac = vxlan_.mac;
    auto created = handle_->CreateVxlan(spec);
    if (!created.ok()) {
      return Annotate(created.status(), StrCat("create VXLAN device ", vxlan_.name));
    }
    existing = *std::move(created);
    CNINET_LOG(kInfo, "created VXLAN device ", vxlan_.name, " vni ", vxlan_.vni, " port ",
               vxlan_.port, " local ", vxlan_.local.ToString());
  }
  vxlan_index_ = existing->index;
  if (vxlan_.mtu != 0 && existing->mtu != vxlan_.mtu) {
    CNINET_RETURN_IF_ERROR(handle_->SetMtu(vxlan_index_, vxlan_.mtu));
  }
  IPPrefix addr(vxlan_.address, 32);
  CNINET_ASSIGN_OR_RETURN(auto addrs, handle_->ListAddresses(vxlan_index_, AF_INET));
  bool have = false;
  for (const auto& a : addrs) {
    if (a.prefix == addr) {
      have = true;
    } else {
      CNINET_RETURN_IF_ERROR(handle_->DeleteAddress(vxlan_index_, a.prefix));
    }
  }
  if (!have && !vxlan_.address.IsUnspecified()) {
    CNINET_RETURN_IF_ERROR(
        Annotate(handle_->AddAddress(vxlan_index_, addr, {.noprefixroute = true}),
                 StrCat("address ", addr.ToString(), " on ", vxlan_.name)));
  }
  return handle_->SetLinkUp(vxlan_index_, true);
}

absl::StatusOr<OverlayChanges> OverlayReconciler::Apply(const OverlayPlan& plan) {
  OverlayChanges ch;
  absl::Status first = absl::OkStatus();
  CNINET_RETURN_IF_ERROR(ApplyRoutes(plan, &ch, &first));
  if (vxlan_index_ != 0) {
    CNINET_RETURN_IF_ERROR(ApplyNeighbors(plan, &ch, &first));
    CNINET_RETURN_IF_ERROR(ApplyFdb(plan, &ch, &first));
  }
  if (!first.ok()) return first;
  return ch;
}

// Routes: ours are the ones carrying our protocol.
absl::Status OverlayReconciler::ApplyRoutes(const OverlayPlan& plan, OverlayChanges* ch,
                                            absl::Status* first) {
  std::map<IPPrefix, nl::Route> have_routes;
  for (int family : {AF_INET, AF_INET6}) {
    CNINET_ASSIGN_OR_RETURN(auto routes,
                            handle_->ListRoutes({.family = family, .table = nl::kTableMain}));
    for (const auto& r : routes) {
      if (r.protocol == route_protocol_) have_routes[r.dst] = r;
    }
  }
  std::set<IPPrefix> want_routes;
  for (const OverlayPeer& p : plan.peers) {
    nl::Route r;
    r.dst = p.pod_cidr;
    r.gateway = p.gateway;
    r.protocol = route_protocol_;
    if (p.mode == PeerMode::kVxlan) {
      r.oif = vxlan_index_;
      r.onlink = true;
    } else {
      r.oif = uplink_index_;
    }
    want_routes.insert(r.dst);
    auto it = have_routes.find(r.dst);
    if (it != have_routes.end() && it->second.gateway == r.gateway && it->second.oif == r.oif) {
      continue;
    }
    absl::Status st = handle_->ReplaceRoute(r);
    Keep(first, Annotate(st, StrCat("route to node ", p.node)));
    if (st.ok()) {
      ++ch->routes_set;
      CNINET_LOG(kInfo, "route ", p.pod_cidr.ToString(), " via ", p.gateway.ToString(), " (",
                 PeerModeName(p.mode), ") for node ", p.node);
    }
  }
  for (const auto& [dst, r] : have_routes) {
    if (want_routes.count(dst)) continue;
    absl::Status st = handle_->DeleteRoute(r);
    if (absl::IsNotFound(st)) st = absl::OkStatus();
    Keep(first, Annotate(st, StrCat("remove route ", dst.ToString())));
    if (st.ok()) {
      ++ch->routes_removed;
      CNINET_LOG(kInfo, "removed route ", dst.ToString());
    }
  }
  return absl::OkStatus();
}

// Neighbours: every permanent entry of the VXLAN device is ours.
absl::Status OverlayReconciler::ApplyNeighbors(const OverlayPlan& plan, OverlayChanges* ch,
                                               absl::Status* first) {
  std::map<IPAddress, nl::MacAddress> want_neigh;
  for (const OverlayPeer& p : plan.peers) {
    if (p.mode == PeerMode::kVxlan) want_neigh[p.gateway] = p.vtep_mac;
  }
  std::map<IPAddress, nl::MacAddress> have_neigh;
  for (int family : {AF_INET, AF_INET6}) {
    CNINET_ASSIGN_OR_RETURN(auto neighbors, handle_->ListNeighbors(vxlan_index_, family));
    for (const auto& n : neighbors) {
      if (n.state & nl::kNudPermanent) have_neigh[n.ip] = n.mac;
    }
  }
  for (const auto& [ip, mac] : want_neigh) {
    auto it = have_neigh.find(ip);
    if (it != have_neigh.end() && it->second == mac) continue;
    absl::Status st = handle_->SetNeighbor({.ifindex = vxlan_index_, .ip = ip, .mac = mac});
    Keep(first, Annotate(st, StrCat("neighbour ", ip.ToString())));
    if (st.ok()) ++ch->neighbors_set;
  }
  for (const auto& [ip, mac] : have_neigh) {
    if (want_neigh.count(ip)) continue;
    absl::Status st = handle_->DeleteNeighbor(vxlan_index_, ip);
    if (absl::IsNotFound(st)) st = absl::OkStatus();
    Keep(first, Annotate(st, StrCat("remove neighbour ", ip.ToString())));
    if (st.ok()) ++ch->neighbors_removed;
  }
  return absl::OkStatus();
}

// FDB: remote entries (with a destination) of the VXLAN device.
absl::Status OverlayReconciler::ApplyFdb(const OverlayPlan& plan, OverlayChanges* ch,
                                         absl::Status* first) {
  std::map<nl::MacAddress, IPAddress> want_fdb;
  for (const OverlayPeer& p : plan.peers) {
    if (p.mode == PeerMode::kVxlan) want_fdb[p.vtep_mac] = p.vtep;
  }
  CNINET_ASSIGN_OR_RETURN(auto fdb, handle_->ListFdb(vxlan_index_));
  std::multimap<nl::MacAddress, IPAddress> have_fdb;
  for (const auto& e : fdb) {
    if (e.ifindex == vxlan_index_ && e.dst.has_value() && !e.mac.IsZero()) {
      have_fdb.insert({e.mac, *e.dst});
    }
  }
  for (const auto& [mac, dst] : want_fdb) {
    auto range = have_fdb.equal_range(mac);
    bool exact = false;
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == dst) {
        exact = true;
        continue;
      }
      // Replace a stale destination (the peer's publicIP changed).
      absl::Status st =
          handle_->DeleteFdb({.ifindex = vxlan_index_, .mac = mac, .dst = it->second});
      if (absl::IsNotFound(st)) st = absl::OkStatus();
      Keep(first, st);
      if (st.ok()) ++ch->fdb_removed;
    }
    if (exact) continue;
    absl::Status st = handle_->AddFdb({.ifindex = vxlan_index_, .mac = mac, .dst = dst});
    Keep(first, Annotate(st, StrCat("FDB ", mac.ToString(), " dst ", dst.ToString())));
    if (st.ok()) ++ch->fdb_set;
  }
  for (const auto& [mac, dst] : have_fdb) {
    if (want_fdb.count(mac)) continue;
    absl::Status st = handle_->DeleteFdb({.ifindex = vxlan_index_, .mac = mac, .dst = dst});
    if (absl::IsNotFound(st)) st = absl::OkStatus();
    Keep(first, Annotate(st, StrCat("remove FDB ", mac.ToString())));
    if (st.ok()) ++ch->fdb_removed;
  }
  return absl::OkStatus();
}

absl::Status OverlayReconciler::Teardown() {
  absl::Status first = absl::OkStatus();
  for (int family : {AF_INET, AF_INET6}) {
    auto routes = handle_->ListRoutes({.family = family, .table = nl::kTableMain});
    if (!routes.ok()) {
      Keep(&first, routes.status());
      continue;
    }
    for (const auto& r : *routes) {
      if (r.protocol != route_protocol_) continue;
      absl::Status st = handle_->DeleteRoute(r);
      if (!absl::IsNotFound(st)) Keep(&first, st);
    }
  }
  absl::Status st = handle_->DeleteLinkByName(vxlan_.name);
  if (!absl::IsNotFound(st)) Keep(&first, st);
  vxlan_index_ = 0;
  return first;
}

}  // namespace cninet::agent
