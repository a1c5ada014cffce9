// Handle: requests are built with libnl-route-3 objects (link creation with kind-specific
// attributes) and libnl-3's message/attribute API; replies are parsed from the raw messages.
#include "cninet/netlink/handle.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "netlink/nl_socket.h"

namespace cninet::netlink {

using internal::KernelError;
using internal::MsgPtr;
using internal::NewMessage;

struct Handle::Impl {
  std::unique_ptr<internal::Socket> sock;
};

namespace {

// ---- helpers for building requests ----

#define CNINET_NLA_OK(expr)                                                                 \
  do {                                                                                      \
    if ((expr) < 0) return absl::ResourceExhaustedError("netlink: attribute does not fit"); \
  } while (false)

int Family(const cni::IPAddress& a) { return a.is_v4() ? AF_INET : AF_INET6; }

int PutAddr(nl_msg* msg, int type, const cni::IPAddress& a) {
  return nla_put(msg, type, static_cast<int>(a.byte_length()), a.bytes().data());
}

cni::IPAddress AddrFromAttr(const nlattr* a) {
  return cni::IPAddress::FromBytes(static_cast<const uint8_t*>(nla_data(a)),
                                   static_cast<size_t>(nla_len(a)));
}

bool IsAddrAttr(const nlattr* a) { return a != nullptr && (nla_len(a) == 4 || nla_len(a) == 16); }

// Owning pointers for libnl-route objects.
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkDeleter>;
struct AddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using NlAddrPtr = std::unique_ptr<nl_addr, AddrDeleter>;

absl::Status SetLinkMac(rtnl_link* link, const MacAddress& mac) {
  NlAddrPtr a(nl_addr_build(AF_LLC, mac.bytes().data(), mac.bytes().size()));
  if (!a) return absl::ResourceExhaustedError("netlink: cannot allocate an address");
  rtnl_link_set_addr(link, a.get());  // Takes its own reference.
  return absl::OkStatus();
}

absl::StatusOr<NlAddrPtr> ToNlAddr(const cni::IPAddress& ip) {
  NlAddrPtr a(nl_addr_build(Family(ip), ip.bytes().data(), ip.byte_length()));
  if (!a) return absl::ResourceExhaustedError("netlink: cannot allocate an address");
  return a;
}

// ---- reply parsing ----

void ParseVxlan(nlattr* data, Link& link) {
  nlattr* tb[IFLA_VXLAN_MAX + 1] = {};
  if (nla_parse_nested(tb, IFLA_VXLAN_MAX, data, nullptr) < 0) return;
  VxlanInfo v;
  if (tb[IFLA_VXLAN_ID]) v.vni = nla_get_u32(tb[IFLA_VXLAN_ID]);
  if (tb[IFLA_VXLAN_PORT]) v.port = ntohs(nla_get_u16(tb[IFLA_VXLAN_PORT]));
  if (IsAddrAttr(tb[IFLA_VXLAN_LOCAL])) v.local = AddrFromAttr(tb[IFLA_VXLAN_LOCAL]);
  if (IsAddrAttr(tb[IFLA_VXLAN_LOCAL6])) v.local = AddrFromAttr(tb[IFLA_VXLAN_LOCAL6]);
  if (tb[IFLA_VXLAN_LINK]) v.underlay_index = static_cast<int>(nla_get_u32(tb[IFLA_VXLAN_LINK]));
  if (tb[IFLA_VXLAN_LEARNING]) v.learning = nla_get_u8(tb[IFLA_VXLAN_LEARNING]) != 0;
  if (tb[IFLA_VXLAN_UDP_CSUM]) v.udp_csum = nla_get_u8(tb[IFLA_VXLAN_UDP_CSUM]) != 0;
  v.gbp = tb[IFLA_VXLAN_GBP] != nullptr;  // a flag attribute: present when on
  link.vxlan = v;
}

absl::StatusOr<Link> ParseLink(nlmsghdr* h) {
  if (h->nlmsg_type != RTM_NEWLINK || nlmsg_datalen(h) < static_cast<int>(sizeof(ifinfomsg))) {
    return absl::InternalError("netlink: unexpected reply to a link request");
  }
  auto* ifi = static_cast<ifinfomsg*>(nlmsg_data(h));
  nlattr* tb[IFLA_MAX + 1] = {};
  if (nlmsg_parse(h, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) {
    return absl::InternalError("netlink: malformed link message");
  }
  Link link;
  link.index = ifi->ifi_index;
  link.admin_up = (ifi->ifi_flags & IFF_UP) != 0;
  link.lower_up = (ifi->ifi_flags & IFF_LOWER_UP) != 0;
  link.promisc = (ifi->ifi_flags & IFF_PROMISC) != 0;
  if (tb[IFLA_IFNAME]) link.name = nla_get_string(tb[IFLA_IFNAME]);
  if (tb[IFLA_MTU]) link.mtu = nla_get_u32(tb[IFLA_MTU]);
  if (tb[IFLA_ADDRESS] && nla_len(tb[IFLA_ADDRESS]) == 6) {
    std::array<uint8_t, 6> b{};
    memcpy(b.data(), nla_data(tb[IFLA_ADDRESS]), 6);
    link.mac = MacAddress(b);
  }
  if (tb[IFLA_OPERSTATE]) link.oper_state = nla_get_u8(tb[IFLA_OPERSTATE]);
  if (tb[IFLA_MASTER]) link.master_index = static_cast<int>(nla_get_u32(tb[IFLA_MASTER]));
  if (tb[IFLA_LINK]) link.peer_index = static_cast<int>(nla_get_u32(tb[IFLA_LINK]));
  if (tb[IFLA_LINK_NETNSID]) {
    link.peer_netnsid = static_cast<int>(nla_get_s32(tb[IFLA_LINK_NETNSID]));
  }
  if (tb[IFLA_LINKINFO]) {
    nlattr* info[IFLA_INFO_MAX + 1] = {};
    if (nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) >= 0) {
      if (info[IFLA_INFO_KIND]) link.kind = nla_get_string(info[IFLA_INFO_KIND]);
      if (info[IFLA_INFO_SLAVE_KIND]) link.slave_kind = nla_get_string(info[IFLA_INFO_SLAVE_KIND]);
      if (link.kind == "vxlan" && info[IFLA_INFO_DATA]) ParseVxlan(info[IFLA_INFO_DATA], link);
      if (link.slave_kind == "bridge" && info[IFLA_INFO_SLAVE_DATA]) {
        nlattr* port[IFLA_BRPORT_MAX + 1] = {};
        if (nla_parse_nested(port, IFLA_BRPORT_MAX, info[IFLA_INFO_SLAVE_DATA], nullptr) >= 0 &&
            port[IFLA_BRPORT_MODE]) {
          link.hairpin = nla_get_u8(port[IFLA_BRPORT_MODE]) != 0;
        }
      }
    }
  }
  return link;
}

absl::StatusOr<Address> ParseAddress(nlmsghdr* h) {
  auto* ifa = static_cast<ifaddrmsg*>(nlmsg_data(h));
  nlattr* tb[IFA_MAX + 1] = {};
  if (nlmsg_parse(h, sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) {
    return absl::InternalError("netlink: malformed address message");
  }
  nlattr* a = IsAddrAttr(tb[IFA_LOCAL]) ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (!IsAddrAttr(a)) return absl::InternalError("netlink: address message without address");
  Address out;
  out.ifindex = static_cast<int>(ifa->ifa_index);
  out.prefix = cni::IPPrefix(AddrFromAttr(a), ifa->ifa_prefixlen);
  out.scope = ifa->ifa_scope;
  out.flags = tb[IFA_FLAGS] ? nla_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
  return out;
}

absl::StatusOr<Route> ParseRoute(nlmsghdr* h, bool* skip) {
  auto* rtm = static_cast<rtmsg*>(nlmsg_data(h));
  nlattr* tb[RTA_MAX + 1] = {};
  if (nlmsg_parse(h, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) {
    return absl::InternalError("netlink: malformed route message");
  }
  *skip = (rtm->rtm_flags & RTM_F_CLONED) != 0 ||
          (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6);
  Route r;
  if (*skip) return r;
  cni::IPAddress any = rtm->rtm_family == AF_INET ? cni::IPAddress() : *cni::IPAddress::Parse("::");
  r.dst =
      cni::IPPrefix(IsAddrAttr(tb[RTA_DST]) ? AddrFromAttr(tb[RTA_DST]) : any, rtm->rtm_dst_len);
  if (IsAddrAttr(tb[RTA_GATEWAY])) r.gateway = AddrFromAttr(tb[RTA_GATEWAY]);
  if (tb[RTA_OIF]) r.oif = static_cast<int>(nla_get_u32(tb[RTA_OIF]));
  r.onlink = (rtm->rtm_flags & RTNH_F_ONLINK) != 0;
  r.scope = rtm->rtm_scope;
  r.table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
  if (tb[RTA_PRIORITY]) r.metric = nla_get_u32(tb[RTA_PRIORITY]);
  if (IsAddrAttr(tb[RTA_PREFSRC])) r.src = AddrFromAttr(tb[RTA_PREFSRC]);
  if (tb[RTA_METRICS]) {
    nlattr* mx[RTAX_MAX + 1] = {};
    if (nla_parse_nested(mx, RTAX_MAX, tb[RTA_METRICS], nullptr) >= 0 && mx[RTAX_MTU]) {
      r.mtu = nla_get_u32(mx[RTAX_MTU]);
    }
  }
  r.protocol = rtm->rtm_protocol;
  r.type = rtm->rtm_type;
  return r;
}

absl::StatusOr<std::pair<Neighbor, FdbEntry>> ParseNeigh(nlmsghdr* h) {
  auto* ndm = static_cast<ndmsg*>(nlmsg_data(h));
  nlattr* tb[NDA_MAX + 1] = {};
  if (nlmsg_parse(h, sizeof(ndmsg), tb, NDA_MAX, nullptr) < 0) {
    return absl::InternalError("netlink: malformed neighbour message");
  }
  Neighbor n;
  FdbEntry f;
  n.ifindex = f.ifindex = ndm->ndm_ifindex;
  n.state = f.state = ndm->ndm_state;
  n.flags = ndm->ndm_flags;
  f.self = (ndm->ndm_flags & NTF_SELF) != 0;
  if (IsAddrAttr(tb[NDA_DST])) n.ip = AddrFromAttr(tb[NDA_DST]), f.dst = n.ip;
  if (tb[NDA_LLADDR] && nla_len(tb[NDA_LLADDR]) == 6) {
    std::array<uint8_t, 6> b{};
    memcpy(b.data(), nla_data(tb[NDA_LLADDR]), 6);
    n.mac = f.mac = MacAddress(b);
  }
  if (tb[NDA_VNI]) f.vni = nla_get_u32(tb[NDA_VNI]);
  return std::make_pair(n, f);
}

// A link request header for `index`.
absl::StatusOr<MsgPtr> LinkMessage(int type, int flags, int index, unsigned change = 0,
                                   unsigned iff = 0, unsigned char family = AF_UNSPEC) {
  ifinfomsg ifi{};
  ifi.ifi_family = family;
  ifi.ifi_index = index;
  ifi.ifi_change = change;
  ifi.ifi_flags = iff;
  return NewMessage(type, flags, &ifi, sizeof(ifi));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Handle::Handle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Handle::Handle(Handle&&) noexcept = default;
Handle& Handle::operator=(Handle&&) noexcept = default;
Handle::~Handle() = default;

absl::StatusOr<Handle> Handle::Open() {
  auto impl = std::make_unique<Impl>();
  CNINET_ASSIGN_OR_RETURN(impl->sock, internal::Socket::Create());
  return Handle(std::move(impl));
}

absl::StatusOr<Handle> Handle::OpenIn(const Netns& ns) {
  // The socket belongs to the namespace it is created in; create it there, use it anywhere.
  CNINET_ASSIGN_OR_RETURN(auto sock, ns.Call<std::unique_ptr<internal::Socket>>(
                                         [] { return internal::Socket::Create(); }));
  auto impl = std::make_unique<Impl>();
  impl->sock = std::move(sock);
  return Handle(std::move(impl));
}

// ---- Links ----

absl::StatusOr<Link> Handle::GetLink(std::string_view name) {
  CNINET_RETURN_IF_ERROR(ValidateLinkName(name));
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_GETLINK, 0, 0));
  std::string n(name);
  CNINET_NLA_OK(nla_put_string(msg.get(), IFLA_IFNAME, n.c_str()));
  CNINET_NLA_OK(nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS));
  std::optional<Link> out;
  CNINET_RETURN_IF_ERROR(impl_->sock->Request(msg.get(), cninet::StrCat("get link ", name),
                                              [&](nlmsghdr* h) -> absl::Status {
                                                CNINET_ASSIGN_OR_RETURN(out, ParseLink(h));
                                                return absl::OkStatus();
                                              }));
  if (!out) return absl::NotFoundError(cninet::StrCat("get link ", name, ": no reply"));
  return *out;
}

absl::StatusOr<Link> Handle::GetLinkByIndex(int index) {
  if (index <= 0) return absl::InvalidArgumentError(cninet::StrCat("bad link index ", index));
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_GETLINK, 0, index));
  CNINET_NLA_OK(nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS));
  std::optional<Link> out;
  CNINET_RETURN_IF_ERROR(impl_->sock->Request(msg.get(), cninet::StrCat("get link #", index),
                                              [&](nlmsghdr* h) -> absl::Status {
                                                CNINET_ASSIGN_OR_RETURN(out, ParseLink(h));
                                                return absl::OkStatus();
                                              }));
  if (!out) return absl::NotFoundError(cninet::StrCat("get link #", index, ": no reply"));
  return *out;
}

absl::StatusOr<std::vector<Link>> Handle::ListLinks() {
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_GETLINK, 0, 0));
  CNINET_NLA_OK(nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS));
  std::vector<Link> out;
  CNINET_RETURN_IF_ERROR(impl_->sock->Dump(
      msg.get(), "list links",
      [&](nlmsghdr* h) -> absl::Status {
        CNINET_ASSIGN_OR_RETURN(auto l, ParseLink(h));
        out.push_back(std::move(l));
        return absl::OkStatus();
      },
      [&] { out.clear(); }));
  return out;
}

namespace {

// Sends an RTM_NEWLINK built by libnl-route from `link` with CREATE|EXCL.
absl::Status AddLinkObject(internal::Socket& sock, rtnl_link* link, std::string_view what) {
  nl_msg* raw = nullptr;
  int err = rtnl_link_build_add_request(link, NLM_F_CREATE | NLM_F_EXCL, &raw);
  if (err < 0) {
    return absl::InternalError(cninet::StrCat(what, ": building request: ", nl_geterror(err)));
  }
  MsgPtr msg(raw);
  return sock.Request(msg.get(), what);
}

}  // namespace

absl::StatusOr<Link> Handle::CreateVeth(const VethSpec& spec) {
  CNINET_RETURN_IF_ERROR(spec.Validate());
  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) return absl::ResourceExhaustedError("netlink: cannot allocate a veth");
  LinkPtr peer(rtnl_link_veth_get_peer(link.get()));  // Extra reference, released first.
  rtnl_link_set_name(link.get(), spec.name.c_str());
  rtnl_link_set_name(peer.get(), spec.peer_name.c_str());
  if (spec.mtu != 0) {
    rtnl_link_set_mtu(link.get(), spec.mtu);
    rtnl_link_set_mtu(peer.get(), spec.mtu);
  }
  if (spec.mac) CNINET_RETURN_IF_ERROR(SetLinkMac(link.get(), *spec.mac));
  if (spec.peer_mac) CNINET_RETURN_IF_ERROR(SetLinkMac(peer.get(), *spec.peer_mac));
  // The peer is created directly in its namespace: it never appears (even briefly) here.
  if (spec.peer_netns != nullptr) rtnl_link_set_ns_fd(peer.get(), spec.peer_netns->fd());
  peer.reset();
  CNINET_RETURN_IF_ERROR(
      AddLinkObject(*impl_->sock, link.get(),
                    cninet::StrCat("create veth ", spec.name, " (peer ", spec.peer_name, ")")));
  return GetLink(spec.name);
}

absl::StatusOr<Link> Handle::CreateBridge(const BridgeSpec& spec) {
  CNINET_RETURN_IF_ERROR(spec.Validate());
  LinkPtr link(rtnl_link_alloc());
  if (!link) return absl::ResourceExhaustedError("netlink: cannot allocate a link");
  if (int err = rtnl_link_set_type(link.get(), "bridge"); err < 0) {
    return absl::InternalError(cninet::StrCat("bridge type: ", nl_geterror(err)));
  }
  rtnl_link_set_name(link.get(), spec.name.c_str());
  if (spec.mtu != 0) rtnl_link_set_mtu(link.get(), spec.mtu);
  if (spec.mac) CNINET_RETURN_IF_ERROR(SetLinkMac(link.get(), *spec.mac));
  CNINET_RETURN_IF_ERROR(
      AddLinkObject(*impl_->sock, link.get(), cninet::StrCat("create bridge ", spec.name)));
  return GetLink(spec.name);
}

absl::StatusOr<Link> Handle::CreateVxlan(const VxlanSpec& spec) {
  CNINET_RETURN_IF_ERROR(spec.Validate());
  LinkPtr link(rtnl_link_vxlan_alloc());
  if (!link) return absl::ResourceExhaustedError("netlink: cannot allocate a vxlan");
  rtnl_link_set_name(link.get(), spec.name.c_str());
  if (spec.mtu != 0) rtnl_link_set_mtu(link.get(), spec.mtu);
  if (spec.mac) CNINET_RETURN_IF_ERROR(SetLinkMac(link.get(), *spec.mac));
  bool ok = rtnl_link_vxlan_set_id(link.get(), spec.vni) >= 0 &&
            rtnl_link_vxlan_set_port(link.get(), spec.port) >= 0 &&
            rtnl_link_vxlan_set_learning(link.get(), spec.learning ? 1 : 0) >= 0 &&
            rtnl_link_vxlan_set_udp_csum(link.get(), spec.udp_csum ? 1 : 0) >= 0;
  if (ok && spec.gbp) ok = rtnl_link_vxlan_set_flags(link.get(), RTNL_LINK_VXLAN_F_GBP, 1) >= 0;
  if (ok && spec.underlay_index != 0) {
    ok = rtnl_link_vxlan_set_link(link.get(), static_cast<uint32_t>(spec.underlay_index)) >= 0;
  }
  if (ok && spec.local) {
    CNINET_ASSIGN_OR_RETURN(auto local, ToNlAddr(*spec.local));
    ok = rtnl_link_vxlan_set_local(link.get(), local.get()) >= 0;
  }
  if (!ok) return absl::InternalError("netlink: cannot set VXLAN attributes");
  CNINET_RETURN_IF_ERROR(AddLinkObject(
      *impl_->sock, link.get(), cninet::StrCat("create vxlan ", spec.name, " vni ", spec.vni)));
  return GetLink(spec.name);
}

absl::Status Handle::DeleteLink(int index) {
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_DELLINK, 0, index));
  return impl_->sock->Request(msg.get(), cninet::StrCat("delete link #", index));
}

absl::Status Handle::DeleteLinkByName(std::string_view name) {
  CNINET_RETURN_IF_ERROR(ValidateLinkName(name));
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_DELLINK, 0, 0));
  std::string n(name);
  CNINET_NLA_OK(nla_put_string(msg.get(), IFLA_IFNAME, n.c_str()));
  return impl_->sock->Request(msg.get(), cninet::StrCat("delete link ", name));
}

absl::Status Handle::SetLinkUp(int index, bool up) {
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_NEWLINK, 0, index, IFF_UP, up ? IFF_UP : 0));
  return impl_->sock->Request(msg.get(), cninet::StrCat("set link #", index, up ? " up" : " down"));
}

absl::Status Handle::SetPromisc(int index, bool on) {
  CNINET_ASSIGN_OR_RETURN(auto msg,
                          LinkMessage(RTM_NEWLINK, 0, index, IFF_PROMISC, on ? IFF_PROMISC : 0));
  return impl_->sock->Request(msg.get(),
                              cninet::StrCat("set link #", index, " promisc ", on ? "on" : "off"));
}

absl::Status Handle::SetMtu(int index, uint32_t mtu) {
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_NEWLINK, 0, index));
  CNINET_NLA_OK(nla_put_u32(msg.get(), IFLA_MTU, mtu));
  return impl_->sock->Request(msg.get(), cninet::StrCat("set link #", index, " mtu ", mtu));
}

absl::Status Handle::SetMac(int index, const MacAddress& mac) {
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_NEWLINK, 0, index));
  CNINET_NLA_OK(nla_put(msg.get(), IFLA_ADDRESS, 6, mac.bytes().data()));
  return impl_->sock->Request(msg.get(),
                              cninet::StrCat("set link #", index, " address ", mac.ToString()));
}

absl::Status Handle::Rename(int index, std::string_view new_name) {
  CNINET_RETURN_IF_ERROR(ValidateLinkName(new_name));
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_NEWLINK, 0, index));
  std::string n(new_name);
  CNINET_NLA_OK(nla_put_string(msg.get(), IFLA_IFNAME, n.c_str()));
  return impl_->sock->Request(msg.get(), cninet::StrCat("rename link #", index, " to ", new_name));
}

absl::Status Handle::MoveToNetns(int index, const Netns& ns) {
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_NEWLINK, 0, index));
  CNINET_NLA_OK(nla_put_u32(msg.get(), IFLA_NET_NS_FD, static_cast<uint32_t>(ns.fd())));
  return impl_->sock->Request(msg.get(), cninet::StrCat("move link #", index, " to netns"));
}

absl::Status Handle::SetMaster(int index, int bridge_index) {
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_NEWLINK, 0, index));
  CNINET_NLA_OK(nla_put_u32(msg.get(), IFLA_MASTER, static_cast<uint32_t>(bridge_index)));
  return impl_->sock->Request(msg.get(),
                              cninet::StrCat("attach link #", index, " to bridge #", bridge_index));
}

absl::Status Handle::ClearMaster(int index) {
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_NEWLINK, 0, index));
  CNINET_NLA_OK(nla_put_u32(msg.get(), IFLA_MASTER, 0));
  return impl_->sock->Request(msg.get(), cninet::StrCat("detach link #", index));
}

absl::Status Handle::SetHairpin(int port_index, bool on) {
  // What `bridge link set dev X hairpin on` sends: AF_BRIDGE setlink with nested PROTINFO.
  CNINET_ASSIGN_OR_RETURN(auto msg, LinkMessage(RTM_SETLINK, 0, port_index, 0, 0, AF_BRIDGE));
  nlattr* proto = nla_nest_start(msg.get(), IFLA_PROTINFO | NLA_F_NESTED);
  if (proto == nullptr) return absl::ResourceExhaustedError("netlink: attribute does not fit");
  CNINET_NLA_OK(nla_put_u8(msg.get(), IFLA_BRPORT_MODE, on ? 1 : 0));
  nla_nest_end(msg.get(), proto);
  return impl_->sock->Request(
      msg.get(), cninet::StrCat("set bridge port #", port_index, " hairpin ", on ? "on" : "off"));
}

// ---- Addresses ----

namespace {

absl::StatusOr<MsgPtr> AddrMessage(int type, int flags, int index, const cni::IPPrefix& prefix,
                                   const AddressOptions& options) {
  if (prefix.prefix_len() < 0 || prefix.prefix_len() > prefix.address().bit_length()) {
    return absl::InvalidArgumentError(cninet::StrCat("bad prefix length in ", prefix.ToString()));
  }
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<unsigned char>(Family(prefix.address()));
  ifa.ifa_prefixlen = static_cast<unsigned char>(prefix.prefix_len());
  ifa.ifa_scope = options.scope;
  ifa.ifa_index = static_cast<unsigned>(index);
  uint32_t aflags = 0;
  if (options.nodad) aflags |= IFA_F_NODAD;
  if (options.noprefixroute) aflags |= IFA_F_NOPREFIXROUTE;
  ifa.ifa_flags = static_cast<unsigned char>(aflags & 0xff);
  CNINET_ASSIGN_OR_RETURN(auto msg, NewMessage(type, flags, &ifa, sizeof(ifa)));
  CNINET_NLA_OK(PutAddr(msg.get(), IFA_LOCAL, prefix.address()));
  if (type == RTM_NEWADDR) {
    CNINET_NLA_OK(PutAddr(msg.get(), IFA_ADDRESS, prefix.address()));
    // A broadcast address, as `ip addr add ... brd +` and the reference plugins set it.
    if (prefix.is_v4() && prefix.prefix_len() < 31) {
      CNINET_NLA_OK(PutAddr(msg.get(), IFA_BROADCAST, prefix.LastAddress()));
    }
    if (aflags > 0xff) CNINET_NLA_OK(nla_put_u32(msg.get(), IFA_FLAGS, aflags));
  }
  return msg;
}

}  // namespace

absl::Status Handle::AddAddress(int index, const cni::IPPrefix& prefix,
                                const AddressOptions& options) {
  int flags = NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  CNINET_ASSIGN_OR_RETURN(auto msg, AddrMessage(RTM_NEWADDR, flags, index, prefix, options));
  return impl_->sock->Request(
      msg.get(), cninet::StrCat("add address ", prefix.ToString(), " to link #", index));
}

absl::Status Handle::DeleteAddress(int index, const cni::IPPrefix& prefix) {
  CNINET_ASSIGN_OR_RETURN(auto msg, AddrMessage(RTM_DELADDR, 0, index, prefix, {}));
  std::string what = cninet::StrCat("delete address ", prefix.ToString(), " from link #", index);
  absl::Status st = impl_->sock->Request(msg.get(), what);
  if (!st.ok() && impl_->sock->last_errno() == EADDRNOTAVAIL) {
    return absl::NotFoundError(st.message());
  }
  return st;
}

absl::StatusOr<std::vector<Address>> Handle::ListAddresses(int index, int family) {
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<unsigned char>(family);
  CNINET_ASSIGN_OR_RETURN(auto msg, NewMessage(RTM_GETADDR, 0, &ifa, sizeof(ifa)));
  std::vector<Address> out;
  CNINET_RETURN_IF_ERROR(impl_->sock->Dump(
      msg.get(), "list addresses",
      [&](nlmsghdr* h) -> absl::Status {
        CNINET_ASSIGN_OR_RETURN(auto a, ParseAddress(h));
        if (index == 0 || a.ifindex == index) out.push_back(std::move(a));
        return absl::OkStatus();
      },
      [&] { out.clear(); }));
  return out;
}

// ---- Routes ----

namespace {

absl::StatusOr<MsgPtr> RouteMessage(int type, int flags, const Route& r, bool for_delete) {
  const cni::IPAddress& d = r.dst.address();
  if (r.dst.prefix_len() < 0 || r.dst.prefix_len() > d.bit_length()) {
    return absl::InvalidArgumentError(cninet::StrCat("bad route prefix ", r.dst.ToString()));
  }
  if ((r.gateway && r.gateway->family() != d.family()) ||
      (r.src && r.src->family() != d.family())) {
    return absl::InvalidArgumentError(
        cninet::StrCat("route ", r.ToString(), " mixes address families"));
  }
  rtmsg rtm{};
  rtm.rtm_family = static_cast<unsigned char>(Family(d));
  rtm.rtm_dst_len = static_cast<unsigned char>(r.dst.prefix_len());
  rtm.rtm_table = static_cast<unsigned char>(r.table < 256 ? r.table : RT_TABLE_UNSPEC);
  if (for_delete) {
    // Match leniently, as `ip route del`: any scope and protocol unless given.
    rtm.rtm_scope = r.scope.value_or(RT_SCOPE_NOWHERE);
    rtm.rtm_protocol = 0;
    rtm.rtm_type = r.type;
  } else {
    rtm.rtm_scope = r.EffectiveScope();
    rtm.rtm_protocol = r.protocol;
    rtm.rtm_type = r.type;
  }
  if (r.onlink) rtm.rtm_flags |= RTNH_F_ONLINK;
  CNINET_ASSIGN_OR_RETURN(auto msg, NewMessage(type, flags, &rtm, sizeof(rtm)));
  nl_msg* m = msg.get();
  if (r.dst.prefix_len() > 0) CNINET_NLA_OK(PutAddr(m, RTA_DST, r.dst.Masked().address()));
  if (r.gateway) CNINET_NLA_OK(PutAddr(m, RTA_GATEWAY, *r.gateway));
  if (r.oif != 0) CNINET_NLA_OK(nla_put_u32(m, RTA_OIF, static_cast<uint32_t>(r.oif)));
  CNINET_NLA_OK(nla_put_u32(m, RTA_TABLE, r.table));
  if (r.metric != 0) CNINET_NLA_OK(nla_put_u32(m, RTA_PRIORITY, r.metric));
  if (r.src) CNINET_NLA_OK(PutAddr(m, RTA_PREFSRC, *r.src));
  if (r.mtu != 0 && !for_delete) {
    nlattr* mx = nla_nest_start(m, RTA_METRICS);
    if (mx == nullptr) return absl::ResourceExhaustedError("netlink: attribute does not fit");
    CNINET_NLA_OK(nla_put_u32(m, RTAX_MTU, r.mtu));
    nla_nest_end(m, mx);
  }
  return msg;
}

}  // namespace

absl::Status Handle::AddRoute(const Route& route) {
  CNINET_ASSIGN_OR_RETURN(auto msg,
                          RouteMessage(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route, false));
  return impl_->sock->Request(msg.get(), cninet::StrCat("add route ", route.ToString()));
}

absl::Status Handle::ReplaceRoute(const Route& route) {
  CNINET_ASSIGN_OR_RETURN(auto msg,
                          RouteMessage(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route, false));
  return impl_->sock->Request(msg.get(), cninet::StrCat("replace route ", route.ToString()));
}

absl::Status Handle::DeleteRoute(const Route& route) {
  CNINET_ASSIGN_OR_RETURN(auto msg, RouteMessage(RTM_DELROUTE, 0, route, true));
  return impl_->sock->Request(msg.get(), cninet::StrCat("delete route ", route.ToString()));
}

absl::StatusOr<std::vector<Route>> Handle::ListRoutes(const RouteFilter& filter) {
  rtmsg rtm{};
  rtm.rtm_family = static_cast<unsigned char>(filter.family);
  CNINET_ASSIGN_OR_RETURN(auto msg, NewMessage(RTM_GETROUTE, 0, &rtm, sizeof(rtm)));
  std::vector<Route> out;
  CNINET_RETURN_IF_ERROR(impl_->sock->Dump(
      msg.get(), "list routes",
      [&](nlmsghdr* h) -> absl::Status {
        bool skip = false;
        CNINET_ASSIGN_OR_RETURN(auto r, ParseRoute(h, &skip));
        if (skip) return absl::OkStatus();
        if (filter.table != 0 && r.table != filter.table) return absl::OkStatus();
        if (filter.oif != 0 && r.oif != filter.oif) return absl::OkStatus();
        out.push_back(std::move(r));
        return absl::OkStatus();
      },
      [&] { out.clear(); }));
  return out;
}

// ---- Neighbours and FDB ----

namespace {

absl::StatusOr<MsgPtr> NeighMessage(int type, int flags, unsigned char family, int ifindex,
                                    uint16_t state, uint8_t ntf) {
  ndmsg ndm{};
  ndm.ndm_family = family;
  ndm.ndm_ifindex = ifindex;
  ndm.ndm_state = state;
  ndm.ndm_flags = ntf;
  return NewMessage(type, flags, &ndm, sizeof(ndm));
}

}  // namespace

absl::Status Handle::SetNeighbor(const Neighbor& n) {
  if (n.ifindex <= 0) return absl::InvalidArgumentError("neighbour needs an interface");
  CNINET_ASSIGN_OR_RETURN(auto msg, NeighMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE,
                                                 static_cast<unsigned char>(Family(n.ip)),
                                                 n.ifindex, n.state, n.flags));
  CNINET_NLA_OK(PutAddr(msg.get(), NDA_DST, n.ip));
  CNINET_NLA_OK(nla_put(msg.get(), NDA_LLADDR, 6, n.mac.bytes().data()));
  return impl_->sock->Request(
      msg.get(), cninet::StrCat("set neighbour ", n.ip.ToString(), " lladdr ", n.mac.ToString(),
                                " on link #", n.ifindex));
}

absl::Status Handle::DeleteNeighbor(int ifindex, const cni::IPAddress& ip) {
  CNINET_ASSIGN_OR_RETURN(
      auto msg,
      NeighMessage(RTM_DELNEIGH, 0, static_cast<unsigned char>(Family(ip)), ifindex, 0, 0));
  CNINET_NLA_OK(PutAddr(msg.get(), NDA_DST, ip));
  return impl_->sock->Request(
      msg.get(), cninet::StrCat("delete neighbour ", ip.ToString(), " on link #", ifindex));
}

absl::StatusOr<std::vector<Neighbor>> Handle::ListNeighbors(int index, int family) {
  CNINET_ASSIGN_OR_RETURN(
      auto msg, NeighMessage(RTM_GETNEIGH, 0, static_cast<unsigned char>(family), 0, 0, 0));
  std::vector<Neighbor> out;
  CNINET_RETURN_IF_ERROR(impl_->sock->Dump(
      msg.get(), "list neighbours",
      [&](nlmsghdr* h) -> absl::Status {
        auto* ndm = static_cast<ndmsg*>(nlmsg_data(h));
        if (ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6) return absl::OkStatus();
        CNINET_ASSIGN_OR_RETURN(auto nf, ParseNeigh(h));
        if (index == 0 || nf.first.ifindex == index) out.push_back(nf.first);
        return absl::OkStatus();
      },
      [&] { out.clear(); }));
  return out;
}

absl::Status Handle::AddFdb(const FdbEntry& e) {
  if (e.ifindex <= 0) return absl::InvalidArgumentError("FDB entry needs a device");
  // The all-zeros (flooding) entry can have several remotes: append, as `bridge fdb append`.
  int flags = NLM_F_CREATE | (e.mac.IsZero() ? NLM_F_APPEND : NLM_F_REPLACE);
  CNINET_ASSIGN_OR_RETURN(auto msg, NeighMessage(RTM_NEWNEIGH, flags, AF_BRIDGE, e.ifindex, e.state,
                                                 e.self ? NTF_SELF : NTF_MASTER));
  CNINET_NLA_OK(nla_put(msg.get(), NDA_LLADDR, 6, e.mac.bytes().data()));
  if (e.dst) CNINET_NLA_OK(PutAddr(msg.get(), NDA_DST, *e.dst));
  if (e.vni != 0) CNINET_NLA_OK(nla_put_u32(msg.get(), NDA_VNI, e.vni));
  return impl_->sock->Request(
      msg.get(), cninet::StrCat("add fdb ", e.mac.ToString(), e.dst ? " dst " : "",
                                e.dst ? e.dst->ToString() : "", " on link #", e.ifindex));
}

absl::Status Handle::DeleteFdb(const FdbEntry& e) {
  CNINET_ASSIGN_OR_RETURN(auto msg, NeighMessage(RTM_DELNEIGH, 0, AF_BRIDGE, e.ifindex, 0,
                                                 e.self ? NTF_SELF : NTF_MASTER));
  CNINET_NLA_OK(nla_put(msg.get(), NDA_LLADDR, 6, e.mac.bytes().data()));
  if (e.dst) CNINET_NLA_OK(PutAddr(msg.get(), NDA_DST, *e.dst));
  if (e.vni != 0) CNINET_NLA_OK(nla_put_u32(msg.get(), NDA_VNI, e.vni));
  return impl_->sock->Request(
      msg.get(), cninet::StrCat("delete fdb ", e.mac.ToString(), " on link #", e.ifindex));
}

absl::StatusOr<std::vector<FdbEntry>> Handle::ListFdb(int index) {
  CNINET_ASSIGN_OR_RETURN(auto msg, NeighMessage(RTM_GETNEIGH, 0, AF_BRIDGE, 0, 0, 0));
  std::vector<FdbEntry> out;
  CNINET_RETURN_IF_ERROR(impl_->sock->Dump(
      msg.get(), "list fdb",
      [&](nlmsghdr* h) -> absl::Status {
        auto* ndm = static_cast<ndmsg*>(nlmsg_data(h));
        if (ndm->ndm_family != AF_BRIDGE) return absl::OkStatus();
        CNINET_ASSIGN_OR_RETURN(auto nf, ParseNeigh(h));
        if (index == 0 || nf.second.ifindex == index) out.push_back(nf.second);
        return absl::OkStatus();
      },
      [&] { out.clear(); }));
  return out;
}

}  // namespace cninet::netlink
