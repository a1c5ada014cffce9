#include "node_setup.h"

#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "cninet/agent/embedded_store.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/pod_cidr_store.h"
#include "cninet/agent/state.h"
#include "cninet/base/file.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/pins.h"
#include "cninet/datapath/socket_lb.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;
namespace nl = ::cninet::netlink;
using cni::IPPrefix;

std::optional<IPPrefix> FirstOf(const google::protobuf::RepeatedPtrField<std::string>& cidrs,
                                bool v4) {
  for (const std::string& c : cidrs) {
    auto p = IPPrefix::Parse(c);
    if (p.ok() && p->is_v4() == v4) return p->Masked();
  }
  return std::nullopt;
}

uint32_t OverlayMtu(const Uplink& uplink) {
  return uplink.mtu > kVxlanOverhead ? uplink.mtu - kVxlanOverhead : 0;
}

absl::Status CreateStateDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("create ", dir, ": ", ec.message()));
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Store>> OpenStore(const AgentOptions& opt) {
  if (opt.store_instance) return opt.store_instance;
  if (opt.store == StoreKind::kEtcd) {
    EtcdStoreOptions eo;
    eo.endpoints = opt.etcd_endpoints;
    eo.tls = opt.etcd_tls;
    CNINET_ASSIGN_OR_RETURN(std::unique_ptr<Store> s, OpenEtcdStore(eo));
    return std::shared_ptr<Store>(std::move(s));
  }
  EmbeddedStoreOptions eo;
  eo.dir = opt.store_dir.empty() ? StrCat(opt.state_dir, "/store") : opt.store_dir;
  CNINET_ASSIGN_OR_RETURN(std::unique_ptr<Store> s, OpenEmbeddedStore(eo));
  return std::shared_ptr<Store>(std::move(s));
}

// The store's cluster configuration, written from `bootstrap` when the store has none.
absl::Status LoadClusterConfig(const AgentOptions& opt, NodeSetup* setup) {
  Store& store = *setup->store;
  absl::StatusOr<Object<v1::ClusterConfig>> got =
      GetObject<v1::ClusterConfig>(store, keys::ClusterConfig());
  if (absl::IsNotFound(got.status())) {
    if (opt.bootstrap_cluster.cluster_cidr().empty()) {
      return absl::FailedPreconditionError(
          StrCat("the store has no cluster configuration at ", keys::ClusterConfig(),
                 "; write one (clusterCIDR, serviceCIDR) or start the agent with --cluster-cidr"));
    }
    absl::StatusOr<int64_t> created = CreateObject(store, opt.bootstrap_cluster);
    if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
    got = GetObject<v1::ClusterConfig>(store, keys::ClusterConfig());
  }
  if (!got.ok()) return Annotate(got.status(), "cluster configuration");
  setup->cluster = got->value;
  ApplyDefaults(&setup->cluster);
  auto cidr = IPPrefix::Parse(setup->cluster.cluster_cidr());
  if (!cidr.ok() || !cidr->is_v4()) {
    return absl::FailedPreconditionError(
        StrCat("clusterCIDR \"", setup->cluster.cluster_cidr(), "\" must be an IPv4 prefix"));
  }
  setup->cluster_cidr = cidr->Masked();
  if (!setup->cluster.cluster_cidr_ipv6().empty()) {
    auto cidr6 = IPPrefix::Parse(setup->cluster.cluster_cidr_ipv6());
    if (!cidr6.ok() || cidr6->is_v4()) {
      return absl::FailedPreconditionError(StrCat(
          "clusterCIDRIPv6 \"", setup->cluster.cluster_cidr_ipv6(), "\" must be an IPv6 prefix"));
    }
    setup->cluster_cidr_v6 = cidr6->Masked();
  }
  return absl::OkStatus();
}

// podCIDR: the node's recorded one when it has one, else the lowest free subnet.
absl::Status AssignPodCIDR(const AgentOptions& opt, NodeSetup* setup) {
  std::optional<IPPrefix> existing;
  std::optional<IPPrefix> existing6;
  absl::StatusOr<Object<v1::Node>> self =
      GetObject<v1::Node>(*setup->store, keys::Node(opt.node_name));
  if (self.ok()) {
    existing = FirstOf(self->value.pod_cidrs(), true);
    existing6 = FirstOf(self->value.pod_cidrs(), false);
  }
  CNINET_ASSIGN_OR_RETURN(setup->pod_cidr,
                          AllocatePodCIDR(*setup->store, setup->cluster, opt.node_name, existing));
  CNINET_LOG(kInfo, "node ", opt.node_name, " podCIDR ", setup->pod_cidr.ToString());
  if (setup->cluster_cidr_v6) {
    CNINET_ASSIGN_OR_RETURN(setup->pod_cidr_v6,
                            AllocatePodCIDR(*setup->store, setup->cluster, opt.node_name, existing6,
                                            cni::IPAddress::Family::kV6));
    CNINET_LOG(kInfo, "node ", opt.node_name, " IPv6 podCIDR ", setup->pod_cidr_v6->ToString());
  }
  return absl::OkStatus();
}

// The VXLAN device (created even when every peer is direct: a peer may change its mind).
absl::Status CreateOverlay(const AgentOptions& opt, NodeSetup* setup) {
  const Uplink& up = setup->uplink;
  VxlanDeviceConfig vx;
  vx.name = opt.vxlan_device;
  vx.vni = setup->cluster.vxlan_vni();
  vx.port = static_cast<uint16_t>(setup->cluster.vxlan_port());
  vx.local = up.addresses[0].address();
  vx.underlay_index = up.index;
  vx.mtu = OverlayMtu(up);
  vx.mac = VtepMacFor(vx.local);
  vx.address = setup->pod_cidr.address();
  setup->overlay =
      std::make_unique<OverlayReconciler>(&setup->node->handle(), vx, up.index, opt.route_protocol);
  return setup->overlay->EnsureDevice();
}

absl::Status ConfigureSysctls(const AgentOptions& opt, NodeSetup* setup) {
  if (!opt.configure_sysctls) return absl::OkStatus();
  const std::string& up = setup->uplink.name;
  const std::string& vxn = opt.vxlan_device;
  std::vector<std::pair<std::string, std::string>> sysctls = {
      {"net/ipv4/ip_forward", "1"},
      {"net/ipv4/conf/all/rp_filter", "0"},
      {"net/ipv4/conf/default/rp_filter", "0"},
      {StrCat("net/ipv4/conf/", up, "/rp_filter"), "0"},
      {StrCat("net/ipv4/conf/", vxn, "/rp_filter"), "0"},
      // NodePort to a remote backend: from-world SNATs to the node's own address at ingress,
      // which the stack would otherwise drop as a martian source.
      {StrCat("net/ipv4/conf/", up, "/accept_local"), "1"},
  };
  if (setup->pod_cidr_v6) {
    // IPv6 pod traffic is routed between the bridge, the VXLAN device and the uplink.
    sysctls.push_back({"net/ipv6/conf/all/forwarding", "1"});
    sysctls.push_back({"net/ipv6/conf/default/forwarding", "1"});
  }
  for (const auto& [k, v] : sysctls) {
    CNINET_RETURN_IF_ERROR(Annotate(setup->node->SetSysctl(k, v), StrCat("sysctl ", k)));
  }
  return absl::OkStatus();
}

// This node's object as registered: addresses, podCIDR and vtep MAC from `setup`, the
// operator's fields from `node` unless the options set them.
void FillNode(const AgentOptions& opt, const NodeSetup& setup, v1::Node* node) {
  node->set_name(opt.node_name);
  node->clear_addresses();
  for (const IPPrefix& a : setup.uplink.addresses) {
    auto* addr = node->add_addresses();
    addr->set_type(v1::NodeAddress::INTERNAL_IP);
    addr->set_address(a.address().ToString());
  }
  // IPv6 addresses after the IPv4 ones: the first INTERNAL_IP stays the IPv4 underlay.
  for (const IPPrefix& a : setup.uplink.addresses_v6) {
    auto* addr = node->add_addresses();
    addr->set_type(v1::NodeAddress::INTERNAL_IP);
    addr->set_address(a.address().ToString());
  }
  node->clear_pod_cidrs();
  node->add_pod_cidrs(setup.pod_cidr.ToString());
  if (setup.pod_cidr_v6) node->add_pod_cidrs(setup.pod_cidr_v6->ToString());
  node->set_vtep_mac(setup.overlay->vxlan().mac.ToString());
  if (opt.direct_routing) node->set_direct_routing(*opt.direct_routing);
  if (opt.public_ip) node->set_public_ip(*opt.public_ip);
}

absl::Status RegisterNode(const AgentOptions& opt, const NodeSetup& setup) {
  Store& store = *setup.store;
  const std::string key = keys::Node(opt.node_name);
  for (int attempt = 0; attempt < 10; ++attempt) {
    v1::Node node;
    int64_t expected = 0;
    absl::StatusOr<Object<v1::Node>> cur = GetObject<v1::Node>(store, key);
    if (cur.ok()) {
      node = cur->value;
      expected = cur->mod_revision;
    } else if (absl::IsInvalidArgument(cur.status())) {
      // An operator wrote garbage at our key: overwrite it with a valid registration.
      CNINET_LOG(kWarning, "replacing the malformed node object: ", cur.status().message());
      CNINET_ASSIGN_OR_RETURN(KeyValue kv, store.Get(key));
      expected = kv.mod_revision;
    } else if (!absl::IsNotFound(cur.status())) {
      return cur.status();
    }
    FillNode(opt, setup, &node);
    absl::StatusOr<int64_t> rev = UpdateObject(store, node, expected);
    if (rev.ok()) {
      CNINET_LOG(kInfo, "registered node ", opt.node_name, " (",
                 setup.uplink.addresses[0].ToString(), ", vtep ", node.vtep_mac(),
                 node.direct_routing() ? ", directRouting" : "", ")");
      return absl::OkStatus();
    }
    if (!absl::IsAborted(rev.status())) return rev.status();
  }
  return absl::AbortedError("registering the node: too many concurrent updates");
}

}  // namespace

absl::StatusOr<Uplink> ResolveUplink(nl::Handle& h, const std::string& wanted) {
  Uplink up;
  up.name = wanted;
  if (up.name.empty()) {
    CNINET_ASSIGN_OR_RETURN(auto routes, h.ListRoutes({.family = AF_INET}));
    for (const auto& r : routes) {
      if (r.dst.prefix_len() != 0 || r.oif == 0) continue;
      auto link = h.GetLinkByIndex(r.oif);
      if (link.ok()) up.name = link->name;
      break;
    }
    if (up.name.empty()) {
      return absl::FailedPreconditionError(
          "no IPv4 default route in the node's namespace; name the uplink (--uplink)");
    }
  }
  absl::StatusOr<nl::Link> link = h.GetLink(up.name);
  if (!link.ok()) return Annotate(link.status(), StrCat("uplink ", up.name));
  up.index = link->index;
  up.mtu = link->mtu;
  CNINET_ASSIGN_OR_RETURN(auto addrs, h.ListAddresses(up.index, AF_INET));
  for (const auto& a : addrs) {
    if (a.scope == nl::kScopeUniverse && up.addresses.size() < 4) up.addresses.push_back(a.prefix);
  }
  if (up.addresses.empty()) {
    return absl::FailedPreconditionError(StrCat("uplink ", up.name, " has no IPv4 address"));
  }
  auto addrs6 = h.ListAddresses(up.index, AF_INET6);
  if (addrs6.ok()) {
    for (const auto& a : *addrs6) {
      if (a.scope == nl::kScopeUniverse && up.addresses_v6.size() < 4) {
        up.addresses_v6.push_back(a.prefix);
      }
    }
  }
  return up;
}

absl::StatusOr<NodeNamespace> NodeNamespace::Open(const std::string& netns) {
  NodeNamespace n;
  if (!netns.empty()) {
    CNINET_ASSIGN_OR_RETURN(nl::Netns ns, nl::Netns::Open(netns));
    n.netns_.emplace(std::move(ns));
    CNINET_ASSIGN_OR_RETURN(nl::Handle h, nl::Handle::OpenIn(*n.netns_));
    n.handle_.emplace(std::move(h));
  } else {
    CNINET_ASSIGN_OR_RETURN(nl::Handle h, nl::Handle::Open());
    n.handle_.emplace(std::move(h));
  }
  return n;
}

absl::Status NodeNamespace::Run(const std::function<absl::Status()>& fn) {
  return netns_ ? netns_->Run([&] { return fn(); }) : fn();
}

absl::Status NodeNamespace::SetSysctl(const std::string& key, const std::string& value) {
  return netns_ ? nl::SetSysctl(*netns_, key, value) : nl::SetSysctl(key, value);
}

int NodeNamespace::LinkIndex(std::string_view ifname) {
  auto l = handle_->GetLink(ifname);
  return l.ok() ? l->index : 0;
}

absl::Status PrepareNode(const AgentOptions& opt, NodeSetup* setup) {
  CNINET_RETURN_IF_ERROR(opt.Validate());
  CNINET_ASSIGN_OR_RETURN(NodeNamespace node, NodeNamespace::Open(opt.netns));
  setup->node.emplace(std::move(node));
  CNINET_RETURN_IF_ERROR(CreateStateDir(opt.state_dir));
  CNINET_ASSIGN_OR_RETURN(setup->store, OpenStore(opt));
  CNINET_LOG(kInfo, "node ", opt.node_name, ": ", setup->store->kind(), " store opened");
  CNINET_RETURN_IF_ERROR(LoadClusterConfig(opt, setup));
  CNINET_ASSIGN_OR_RETURN(setup->uplink, ResolveUplink(setup->node->handle(), opt.uplink));
  CNINET_RETURN_IF_ERROR(AssignPodCIDR(opt, setup));
  CNINET_RETURN_IF_ERROR(CreateOverlay(opt, setup));
  CNINET_RETURN_IF_ERROR(ConfigureSysctls(opt, setup));
  return RegisterNode(opt, *setup);
}

// The datapath's node addresses (at most 4): the uplink's IPv4 ones first (the first is the IPv4
// SNAT address), then its IPv6 ones; with IPv6 addresses at least the first IPv6 one is kept.
namespace {
std::vector<cni::IPAddress> NodeAddressesOf(const Uplink& up) {
  constexpr size_t kMax = 4;
  size_t v4 = std::min(up.addresses.size(), up.addresses_v6.empty() ? kMax : kMax - 1);
  std::vector<cni::IPAddress> out;
  for (size_t i = 0; i < v4; ++i) out.push_back(up.addresses[i].address());
  for (const IPPrefix& a : up.addresses_v6) {
    if (out.size() == kMax) break;
    out.push_back(a.address());
  }
  return out;
}
}  // namespace

absl::Status LoadDatapath(const AgentOptions& opt, NodeSetup* setup) {
  dp::DatapathConfig c;
  c.bpffs_root = opt.bpffs_root;
  c.instance = opt.Instance();
  c.pin_maps = true;
  c.cluster_cidr = setup->cluster_cidr;
  // Dual-stack clusters: one prefix per family, and the node's addresses of both families
  // (IPv6 NodePorts are served on the node's IPv6 addresses).
  c.cluster_cidrs.push_back(setup->cluster_cidr);
  if (setup->cluster_cidr_v6) c.cluster_cidrs.push_back(*setup->cluster_cidr_v6);
  c.node_addresses = NodeAddressesOf(setup->uplink);
  c.masquerade = opt.masquerade;
  c.map_sizes = opt.map_sizes;
  // Service flows DNATed here to a backend on another node carry this mark over the VXLAN
  // device (created with GBP), so the backend's isolation policy admits them (rule e).
  c.service_mark = dp::kDefaultServiceMark;
  CNINET_ASSIGN_OR_RETURN(setup->datapath, dp::Datapath::Create(c));
  // Programs on the uplink (NodePort, reverse SNAT, masquerade) and on the VXLAN device (replies
  // of remote backends to this node's pods are reverse-DNATed there). Left attached when the
  // agent stops; a new agent replaces them atomically.
  const std::string& up = setup->uplink.name;
  std::vector<std::pair<dp::Hook, std::string>> hooks = {{dp::Hook::kFromWorld, up},
                                                         {dp::Hook::kToWorld, up},
                                                         {dp::Hook::kFromWorld, opt.vxlan_device}};
  dp::Datapath& d = *setup->datapath;
  CNINET_RETURN_IF_ERROR(setup->node->Run([&]() -> absl::Status {
    for (const auto& [hook, ifname] : hooks) {
      absl::StatusOr<dp::TcAttachment> a = d.Attach(hook, ifname);
      if (!a.ok())
        return Annotate(a.status(), StrCat("attach ", dp::HookName(hook), " to ", ifname));
      a->Release();
    }
    return absl::OkStatus();
  }));
  CNINET_LOG(kInfo, "datapath ", d.pin_dir(), " attached to ", up, " and ", opt.vxlan_device);
  return absl::OkStatus();
}

absl::Status SetUpSocketLb(const AgentOptions& opt, NodeSetup* setup) {
  dp::Datapath& d = *setup->datapath;
  const dp::PinLayout layout = d.layout();
  CNINET_ASSIGN_OR_RETURN(std::vector<dp::SocketLbCgroup> pinned, dp::ListSocketLb(layout));
  if (opt.socket_lb_cgroup.empty()) {
    // Off: links an earlier run pinned (on whatever cgroup) would keep translating; remove them.
    if (!pinned.empty()) {
      CNINET_RETURN_IF_ERROR(Annotate(dp::DetachAllSocketLb(layout), "socket LB detach"));
      CNINET_LOG(kInfo, "socket LB off: removed the links pinned on ", pinned.size(), " cgroup(s)");
    }
    return absl::OkStatus();
  }
  const std::string& cgroup = opt.socket_lb_cgroup;
  absl::StatusOr<uint64_t> cgroup_id = dp::CgroupId(cgroup);
  if (!cgroup_id.ok()) return Annotate(cgroup_id.status(), StrCat("socket LB cgroup ", cgroup));
  // An earlier run attached to another cgroup: only the configured one stays.
  if (std::any_of(pinned.begin(), pinned.end(),
                  [&](const dp::SocketLbCgroup& c) { return c.cgroup_id != *cgroup_id; })) {
    CNINET_RETURN_IF_ERROR(Annotate(dp::DetachAllSocketLb(layout), "socket LB detach"));
  }
  // Serve the namespace before attaching: the links translate only served namespaces anyway.
  const std::string netns = opt.netns.empty() ? "/proc/self/ns/net" : opt.netns;
  absl::StatusOr<uint64_t> cookie = d.ServeNetnsForSocketLb(netns);
  if (!cookie.ok()) return Annotate(cookie.status(), StrCat("socket LB: serve netns ", netns));
  // A restarted agent finds its pinned links and updates them in place (no gap).
  absl::StatusOr<dp::SocketLbAttachment> att = d.AttachSocketLb(cgroup);
  if (!att.ok()) return Annotate(att.status(), StrCat("attach socket LB to ", cgroup));
  att->Release();  // pinned: stays attached when the agent exits, as the tc filters do
  setup->socket_lb_cgroup = cgroup;
  CNINET_LOG(kInfo, "socket LB attached to cgroup ", cgroup, " (id ", *cgroup_id,
             "), serving netns ", netns, " (cookie ", *cookie, ")");
  return absl::OkStatus();
}

ConflistParams ConflistFor(const AgentOptions& opt, const NodeSetup& setup) {
  ConflistParams p;
  p.network_name = opt.network_name;
  p.pod_cidr = setup.pod_cidr;
  p.pod_cidr_v6 = setup.pod_cidr_v6;
  p.cluster_cidr = setup.cluster_cidr;
  p.cluster_cidr_v6 = setup.cluster_cidr_v6;
  p.bridge = opt.bridge;
  p.mtu = setup.cluster.mtu() != 0 ? setup.cluster.mtu() : OverlayMtu(setup.uplink);
  p.ipam_data_dir = StrCat(opt.state_dir, "/ipam");
  p.uplink = setup.uplink.name;
  p.node_addresses = NodeAddressesOf(setup.uplink);
  p.bpffs_root = opt.bpffs_root;
  p.instance = opt.Instance();
  p.ebpf_state_dir = StrCat(opt.state_dir, "/ebpf");
  p.masquerade = opt.masquerade;
  p.map_sizes = opt.map_sizes;
  p.host_port_ids = opt.host_port_ids;
  p.service_mark = dp::kDefaultServiceMark;  // as LoadDatapath writes it
  p.socket_lb = opt.socket_lb_pods && !opt.socket_lb_cgroup.empty();
  if (opt.report_pods) p.agent_socket = opt.socket_path;
  return p;
}

absl::Status WriteConflist(const AgentOptions& opt, const NodeSetup& setup) {
  if (opt.cni_conf_dir.empty()) return absl::OkStatus();
  std::string path = StrCat(opt.cni_conf_dir, "/", opt.cni_conf_file);
  WriteFileOptions options;
  options.create_parent_dirs = true;
  CNINET_RETURN_IF_ERROR(WriteFileAtomic(path, BuildConflist(ConflistFor(opt, setup)), options));
  CNINET_LOG(kInfo, "wrote ", path);
  return absl::OkStatus();
}

namespace {

// cninet-ebpf pins its loaded programs with the instance (PinLayout::ProgramDir); releases
// before that pinned them under `BPFFS/cninet-ebpf/INSTANCE`, removed too for upgrades. The
// parent directories go only when empty.
void RemoveProgramPins(const dp::PinLayout& pins) {
  std::error_code ec;
  std::filesystem::remove_all(pins.ProgramDir(), ec);
  const std::string legacy_root = StrCat(pins.bpffs_root, "/cninet-ebpf");
  std::filesystem::remove_all(StrCat(legacy_root, "/", pins.instance), ec);
  std::filesystem::remove(legacy_root, ec);
  std::filesystem::remove(pins.MapDir(), ec);
  std::filesystem::remove(pins.Root(), ec);
}

}  // namespace

absl::Status TeardownNode(const AgentOptions& opt) {
  absl::Status first = absl::OkStatus();
  auto keep = [&](const absl::Status& st, std::string_view what) {
    if (!st.ok()) {
      CNINET_LOG(kWarning, "teardown: ", what, ": ", st.message());
      if (first.ok()) first = Annotate(st, what);
    }
  };
  std::optional<nl::Netns> ns;
  if (!opt.netns.empty()) {
    CNINET_ASSIGN_OR_RETURN(nl::Netns n, nl::Netns::Open(opt.netns));
    ns.emplace(std::move(n));
  }
  absl::StatusOr<nl::Handle> h = ns ? nl::Handle::OpenIn(*ns) : nl::Handle::Open();
  if (!h.ok()) return h.status();
  absl::StatusOr<Uplink> up = ResolveUplink(*h, opt.uplink);
  auto in_node = [&](const std::function<absl::Status()>& fn) {
    return ns ? ns->Run([&] { return fn(); }) : fn();
  };
  keep(in_node([&]() -> absl::Status {
         absl::Status st = absl::OkStatus();
         if (up.ok()) {
           if (auto s = dp::DetachHook(dp::Hook::kFromWorld, up->name); !s.ok()) st = s;
           if (auto s = dp::DetachHook(dp::Hook::kToWorld, up->name); !s.ok()) st = s;
         }
         if (auto s = dp::DetachHook(dp::Hook::kFromWorld, opt.vxlan_device); !s.ok()) st = s;
         return st;
       }),
       "detach programs");
  VxlanDeviceConfig vx;
  vx.name = opt.vxlan_device;
  OverlayReconciler overlay(&*h, vx, up.ok() ? up->index : 0, opt.route_protocol);
  keep(overlay.Teardown(), "routes and VXLAN device");
  dp::DatapathConfig c;
  c.bpffs_root = opt.bpffs_root;
  c.instance = opt.Instance();
  std::error_code ec;
  if (std::filesystem::exists(c.PinDir(), ec)) {
    absl::StatusOr<std::unique_ptr<dp::Datapath>> d = dp::Datapath::OpenPinned(c.PinDir());
    if (d.ok()) {
      keep((*d)->Unpin(), "unpin maps");
    } else {
      keep(d.status(), "open pinned maps");
    }
  }
  RemoveProgramPins(dp::PinLayout::For(opt.bpffs_root, c.instance));
  if (!opt.cni_conf_dir.empty()) {
    std::filesystem::remove(StrCat(opt.cni_conf_dir, "/", opt.cni_conf_file), ec);
  }
  return first;
}

}  // namespace cninet::agent
