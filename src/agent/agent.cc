#include "cninet/agent/agent.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>

#include "cninet/agent/cni_config.h"
#include "cninet/agent/embedded_store.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/overlay.h"
#include "cninet/agent/pod_cidr_store.h"
#include "cninet/agent/pods.h"
#include "cninet/agent/policy.h"
#include "cninet/agent/services.h"
#include "cninet/agent/state.h"
#include "cninet/base/file.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/maglev.h"
#include "cninet/netlink/netlink.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;
namespace nl = ::cninet::netlink;
using cni::IPAddress;
using cni::IPPrefix;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxProblems = 100;

int64_t Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
constexpr uint32_t kVxlanOverhead = 50;

// The node's uplink as found in its namespace.
struct Uplink {
  std::string name;
  int index = 0;
  uint32_t mtu = 0;
  std::vector<IPPrefix> addresses;  // IPv4, universe scope; the first is the internal address
};

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
  return up;
}

std::optional<IPPrefix> FirstV4(const google::protobuf::RepeatedPtrField<std::string>& cidrs) {
  for (const std::string& c : cidrs) {
    auto p = IPPrefix::Parse(c);
    if (p.ok() && p->is_v4()) return p->Masked();
  }
  return std::nullopt;
}

// The cache holds each object once, shared with the reconcile pass that plans from it.
template <typename T>
using Cache = std::map<std::string, std::shared_ptr<const T>>;

template <typename T>
std::vector<std::shared_ptr<const T>> Values(const Cache<T>& m) {
  std::vector<std::shared_ptr<const T>> out;
  out.reserve(m.size());
  for (const auto& [k, v] : m) out.push_back(v);
  return out;
}

template <typename T>
std::vector<const T*> Pointers(const std::vector<std::shared_ptr<const T>>& v) {
  std::vector<const T*> out;
  out.reserve(v.size());
  for (const auto& p : v) out.push_back(p.get());
  return out;
}

std::string FrontendString(const dp::Frontend& f) {
  std::string proto = dp::ProtocolName(static_cast<uint8_t>(f.protocol));
  switch (f.kind) {
    case dp::FrontendKind::kNodePort:
      return StrCat("nodePort:", f.port, "/", proto);
    case dp::FrontendKind::kExternalIP:
      return StrCat("external:", f.address.ToString(), ":", f.port, "/", proto);
    default:
      return StrCat(f.address.ToString(), ":", f.port, "/", proto);
  }
}

}  // namespace

absl::Status AgentOptions::Validate() const {
  auto bad = [](std::string_view field, const std::string& why) {
    return absl::InvalidArgumentError(StrCat("agent option ", field, ": ", why));
  };
  if (absl::Status s = ValidateName(node_name); !s.ok()) {
    return bad("node name", std::string(s.message()));
  }
  if (!store_instance) {
    if (store == StoreKind::kEtcd && etcd_endpoints.empty()) return bad("etcd", "no endpoints");
  }
  if (!uplink.empty()) {
    if (absl::Status s = nl::ValidateLinkName(uplink); !s.ok()) {
      return bad("uplink", std::string(s.message()));
    }
  }
  for (const std::string* n : {&bridge, &vxlan_device}) {
    if (absl::Status s = nl::ValidateLinkName(*n); !s.ok()) {
      return bad("interface", std::string(s.message()));
    }
  }
  if (public_ip && !public_ip->empty() && !IPAddress::Parse(*public_ip).ok()) {
    return bad("publicIP", StrCat("\"", *public_ip, "\" is not an address"));
  }
  if (state_dir.empty() || state_dir[0] != '/') return bad("state dir", "must be absolute");
  if (socket_path.empty()) return bad("socket", "is required");
  if (bpffs_root.empty() || bpffs_root[0] != '/') return bad("bpffs root", "must be absolute");
  std::string inst = Instance();
  for (char c : inst) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
      return bad("instance", StrCat("\"", inst, "\" may only contain [A-Za-z0-9_-]"));
    }
  }
  if (host_port_ids >= map_sizes.service_slots - 1) {
    return bad("hostPortIds", "must leave service ids for the agent");
  }
  if (maglev_size != 0 && (maglev_size < dp::kMaglevMinSize || maglev_size > dp::kMaglevMaxSize ||
                           !dp::IsPrime(maglev_size))) {
    return bad("maglev size", StrCat(maglev_size, " is not a prime in [", dp::kMaglevMinSize, ", ",
                                     dp::kMaglevMaxSize, "]"));
  }
  if (heartbeat_ttl < std::chrono::seconds(2)) return bad("heartbeat TTL", "at least 2 s");
  if (resync_interval < std::chrono::seconds(1)) return bad("resync interval", "at least 1 s");
  if (!bootstrap_cluster.cluster_cidr().empty()) {
    if (absl::Status s = agent::Validate(bootstrap_cluster); !s.ok()) {
      return bad("cluster config", std::string(s.message()));
    }
  }
  return absl::OkStatus();
}

std::string AgentOptions::Instance() const {
  if (!instance.empty()) return instance;
  std::string s = node_name;
  std::replace(s.begin(), s.end(), '.', '-');
  return s;
}

// ---------------------------------------------------------------------------------------------

struct Agent::Impl : public LocalApiHandler {
  AgentOptions opt;
  std::shared_ptr<Store> store;
  std::optional<nl::Netns> netns;
  std::optional<nl::Handle> handle;  // in the node's namespace; reconcile thread only
  v1::ClusterConfig cluster;
  IPPrefix cluster_cidr;
  IPPrefix pod_cidr;
  Uplink uplink;
  std::unique_ptr<dp::Datapath> datapath;
  std::unique_ptr<OverlayReconciler> overlay;
  std::unique_ptr<ServiceReconciler> services;
  std::unique_ptr<EndpointReconciler> endpoints;
  std::unique_ptr<PolicyReconciler> policy;
  std::unique_ptr<LeaseKeeper> heartbeat;
  std::unique_ptr<LocalApiServer> api;
  std::vector<std::unique_ptr<WatchHandle>> watches;
  std::thread loop;

  // Cache of the store, fed by the watches (mu).
  mutable std::mutex mu;
  std::condition_variable cv;
  Cache<v1::Node> nodes;
  std::set<std::string> alive;  // nodes with a heartbeat
  Cache<v1::Service> svcs;
  Cache<v1::Endpoints> eps;
  Cache<v1::Pod> pods;
  Cache<v1::Namespace> namespaces;
  Cache<v1::NetworkPolicy> netpols;
  std::map<std::string, std::string> decode_errors;  // key -> why it is skipped
  std::set<IPAddress> forgotten;  // addresses of local pods deleted since the last pass
  enum Kind { kNodes, kHeartbeats, kServices, kEndpoints, kPods, kNamespaces, kPolicies, kKinds };
  bool synced[kKinds] = {};
  bool nodes_dirty = true, services_dirty = true, pods_dirty = true, policy_dirty = true;
  bool heartbeat_lost = false;
  bool self_removed = false;
  bool stopping = false;
  int64_t revision = 0;
  // Published by the reconcile loop (mu).
  bool ready = false;
  uint64_t reconciles = 0;
  std::string last_error;
  std::vector<std::string> warnings;
  std::vector<std::string> policy_warnings;  // of the last policy pass
  OverlayPlan plan;

  // Held by the loop during a pass; Status() reads the reconcilers under it.
  mutable std::mutex reconcile_mu;
  std::vector<PlannedEndpoint> planned_endpoints;  // reconcile_mu

  ~Impl() override { Shutdown(); }

  absl::Status Init();
  absl::Status LoadClusterConfig();
  absl::Status RegisterNode();
  absl::Status StartHeartbeat();
  absl::Status LoadDatapath();
  absl::Status WriteConflist();
  absl::Status StartWatches();
  void OnUpdate(const WatchUpdate& update);
  void Loop();
  void Shutdown();
  absl::Status InNode(const std::function<absl::Status()>& fn) {
    return netns ? netns->Run([&] { return fn(); }) : fn();
  }
  absl::Status SetNodeSysctl(const std::string& key, const std::string& value) {
    return netns ? nl::SetSysctl(*netns, key, value) : nl::SetSysctl(key, value);
  }
  bool AllSynced() const {
    return std::all_of(std::begin(synced), std::end(synced), [](bool b) { return b; });
  }
  void AddProblem(const std::string& key, const std::string& why) {
    // (mu held)
    auto [it, inserted] = decode_errors.insert({key, why});
    if (!inserted && it->second == why) return;
    it->second = why;
    CNINET_LOG(kWarning, "skipping malformed value: ", why);
  }
  template <typename T>
  void Apply(Kind kind, ObjectUpdate<T>& u, Cache<T>* cache);

  // LocalApiHandler
  api::AgentStatus Status(const api::StatusRequest& request) override;
  api::HealthReply Health() override;
  absl::Status ReportPod(const v1::Pod& pod) override;
  absl::Status ForgetPod(const api::ForgetPodRequest& request) override;
  absl::Status GcPods(const api::GcPodsRequest& request) override;
  absl::Status DeleteLocalPod(const std::string& key, const std::string& container_id);
  void FillPolicyStatus(api::PolicyStatus* ps) const;  // (reconcile_mu held)
};

absl::Status Agent::Impl::Init() {
  CNINET_RETURN_IF_ERROR(opt.Validate());
  if (!opt.netns.empty()) {
    CNINET_ASSIGN_OR_RETURN(nl::Netns ns, nl::Netns::Open(opt.netns));
    netns.emplace(std::move(ns));
    CNINET_ASSIGN_OR_RETURN(nl::Handle h, nl::Handle::OpenIn(*netns));
    handle.emplace(std::move(h));
  } else {
    CNINET_ASSIGN_OR_RETURN(nl::Handle h, nl::Handle::Open());
    handle.emplace(std::move(h));
  }
  std::error_code ec;
  std::filesystem::create_directories(opt.state_dir, ec);
  if (ec) return absl::InternalError(StrCat("create ", opt.state_dir, ": ", ec.message()));
  std::filesystem::permissions(opt.state_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);

  if (opt.store_instance) {
    store = opt.store_instance;
  } else if (opt.store == StoreKind::kEtcd) {
    EtcdStoreOptions eo;
    eo.endpoints = opt.etcd_endpoints;
    CNINET_ASSIGN_OR_RETURN(std::unique_ptr<Store> s, OpenEtcdStore(eo));
    store = std::move(s);
  } else {
    EmbeddedStoreOptions eo;
    eo.dir = opt.store_dir.empty() ? StrCat(opt.state_dir, "/store") : opt.store_dir;
    CNINET_ASSIGN_OR_RETURN(std::unique_ptr<Store> s, OpenEmbeddedStore(eo));
    store = std::move(s);
  }
  CNINET_LOG(kInfo, "node ", opt.node_name, ": ", store->kind(), " store opened");

  CNINET_RETURN_IF_ERROR(LoadClusterConfig());
  CNINET_ASSIGN_OR_RETURN(uplink, ResolveUplink(*handle, opt.uplink));

  // podCIDR: the node's recorded one when it has one, else the lowest free subnet.
  std::optional<IPPrefix> existing;
  absl::StatusOr<Object<v1::Node>> self = GetObject<v1::Node>(*store, keys::Node(opt.node_name));
  if (self.ok()) existing = FirstV4(self->value.pod_cidrs());
  CNINET_ASSIGN_OR_RETURN(pod_cidr, AllocatePodCIDR(*store, cluster, opt.node_name, existing));
  CNINET_LOG(kInfo, "node ", opt.node_name, " podCIDR ", pod_cidr.ToString());

  // The VXLAN device (created even when every peer is direct: a peer may change its mind).
  VxlanDeviceConfig vx;
  vx.name = opt.vxlan_device;
  vx.vni = cluster.vxlan_vni();
  vx.port = static_cast<uint16_t>(cluster.vxlan_port());
  vx.local = uplink.addresses[0].address();
  vx.underlay_index = uplink.index;
  vx.mtu = uplink.mtu > kVxlanOverhead ? uplink.mtu - kVxlanOverhead : 0;
  vx.mac = VtepMacFor(vx.local);
  vx.address = pod_cidr.address();
  overlay = std::make_unique<OverlayReconciler>(&*handle, vx, uplink.index, opt.route_protocol);
  CNINET_RETURN_IF_ERROR(overlay->EnsureDevice());

  if (opt.configure_sysctls) {
    const std::string up = uplink.name, vxn = opt.vxlan_device;
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
    for (const auto& [k, v] : sysctls) {
      CNINET_RETURN_IF_ERROR(Annotate(SetNodeSysctl(k, v), StrCat("sysctl ", k)));
    }
  }

  CNINET_RETURN_IF_ERROR(RegisterNode());
  CNINET_RETURN_IF_ERROR(StartHeartbeat());
  CNINET_RETURN_IF_ERROR(LoadDatapath());
  CNINET_RETURN_IF_ERROR(WriteConflist());
  CNINET_RETURN_IF_ERROR(StartWatches());
  loop = std::thread([this] { Loop(); });
  CNINET_ASSIGN_OR_RETURN(api, LocalApiServer::Start(opt.socket_path, this));
  return absl::OkStatus();
}

absl::Status Agent::Impl::LoadClusterConfig() {
  absl::StatusOr<Object<v1::ClusterConfig>> got =
      GetObject<v1::ClusterConfig>(*store, keys::ClusterConfig());
  if (absl::IsNotFound(got.status())) {
    if (opt.bootstrap_cluster.cluster_cidr().empty()) {
      return absl::FailedPreconditionError(
          StrCat("the store has no cluster configuration at ", keys::ClusterConfig(),
                 "; write one (clusterCIDR, serviceCIDR) or start the agent with --cluster-cidr"));
    }
    absl::StatusOr<int64_t> created = CreateObject(*store, opt.bootstrap_cluster);
    if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
    got = GetObject<v1::ClusterConfig>(*store, keys::ClusterConfig());
  }
  if (!got.ok()) return Annotate(got.status(), "cluster configuration");
  cluster = got->value;
  ApplyDefaults(&cluster);
  auto cidr = IPPrefix::Parse(cluster.cluster_cidr());
  if (!cidr.ok() || !cidr->is_v4()) {
    return absl::FailedPreconditionError(
        StrCat("clusterCIDR \"", cluster.cluster_cidr(), "\" must be an IPv4 prefix"));
  }
  cluster_cidr = cidr->Masked();
  return absl::OkStatus();
}

absl::Status Agent::Impl::RegisterNode() {
  const std::string key = keys::Node(opt.node_name);
  for (int attempt = 0; attempt < 10; ++attempt) {
    v1::Node node;
    int64_t expected = 0;
    absl::StatusOr<Object<v1::Node>> cur = GetObject<v1::Node>(*store, key);
    if (cur.ok()) {
      node = cur->value;
      expected = cur->mod_revision;
    } else if (absl::IsInvalidArgument(cur.status())) {
      // An operator wrote garbage at our key: overwrite it with a valid registration.
      CNINET_LOG(kWarning, "replacing the malformed node object: ", cur.status().message());
      CNINET_ASSIGN_OR_RETURN(KeyValue kv, store->Get(key));
      expected = kv.mod_revision;
    } else if (!absl::IsNotFound(cur.status())) {
      return cur.status();
    }
    node.set_name(opt.node_name);
    node.clear_addresses();
    for (const IPPrefix& a : uplink.addresses) {
      auto* addr = node.add_addresses();
      addr->set_type(v1::NodeAddress::INTERNAL_IP);
      addr->set_address(a.address().ToString());
    }
    node.clear_pod_cidrs();
    node.add_pod_cidrs(pod_cidr.ToString());
    node.set_vtep_mac(overlay->vxlan().mac.ToString());
    if (opt.direct_routing) node.set_direct_routing(*opt.direct_routing);
    if (opt.public_ip) node.set_public_ip(*opt.public_ip);
    absl::StatusOr<int64_t> rev = UpdateObject(*store, node, expected);
    if (rev.ok()) {
      CNINET_LOG(kInfo, "registered node ", opt.node_name, " (", uplink.addresses[0].ToString(),
                 ", vtep ", node.vtep_mac(), node.direct_routing() ? ", directRouting" : "", ")");
      return absl::OkStatus();
    }
    if (!absl::IsAborted(rev.status())) return rev.status();
  }
  return absl::AbortedError("registering the node: too many concurrent updates");
}

absl::Status Agent::Impl::StartHeartbeat() {
  heartbeat.reset();
  CNINET_ASSIGN_OR_RETURN(
      heartbeat, LeaseKeeper::Start(*store, opt.heartbeat_ttl, [this](const absl::Status& st) {
        CNINET_LOG(kWarning, "heartbeat lease lost: ", st.message());
        std::lock_guard<std::mutex> l(mu);
        heartbeat_lost = true;
        cv.notify_all();
      }));
  v1::NodeHeartbeat hb;
  hb.set_node(opt.node_name);
  hb.set_agent_version(kAgentVersion);
  hb.mutable_started()->set_seconds(time(nullptr));
  return PutObject(*store, hb, heartbeat->id()).status();
}

absl::Status Agent::Impl::LoadDatapath() {
  dp::DatapathConfig c;
  c.bpffs_root = opt.bpffs_root;
  c.instance = opt.Instance();
  c.pin_maps = true;
  c.cluster_cidr = cluster_cidr;
  for (const IPPrefix& a : uplink.addresses) c.node_addresses.push_back(a.address());
  c.masquerade = opt.masquerade;
  c.map_sizes = opt.map_sizes;
  // Service flows DNATed here to a backend on another node carry this mark over the VXLAN
  // device (created with GBP), so the backend's isolation policy admits them (rule e).
  c.service_mark = dp::kDefaultServiceMark;
  CNINET_ASSIGN_OR_RETURN(datapath, dp::Datapath::Create(c));
  // Programs on the uplink (NodePort, reverse SNAT, masquerade) and on the VXLAN device (replies
  // of remote backends to this node's pods are reverse-DNATed there). Left attached when the
  // agent stops; a new agent replaces them atomically.
  std::vector<std::pair<dp::Hook, std::string>> hooks = {{dp::Hook::kFromWorld, uplink.name},
                                                         {dp::Hook::kToWorld, uplink.name},
                                                         {dp::Hook::kFromWorld, opt.vxlan_device}};
  CNINET_RETURN_IF_ERROR(InNode([&]() -> absl::Status {
    for (const auto& [hook, ifname] : hooks) {
      absl::StatusOr<dp::TcAttachment> a = datapath->Attach(hook, ifname);
      if (!a.ok())
        return Annotate(a.status(), StrCat("attach ", dp::HookName(hook), " to ", ifname));
      a->Release();
    }
    return absl::OkStatus();
  }));
  uint32_t id_limit = opt.map_sizes.service_slots - opt.host_port_ids;
  CNINET_ASSIGN_OR_RETURN(services, ServiceReconciler::Create(&datapath->services(), id_limit));
  endpoints = std::make_unique<EndpointReconciler>(
      &datapath->endpoints(), pod_cidr,
      [this](int ifindex) { return handle->GetLinkByIndex(ifindex).ok(); });
  // Ingress policy: the maps through PolicyTable, and the to-pod program on each local pod's
  // host-side veth (cninet-ebpf attaches from-pod at ADD; the agent adds the policy hook).
  policy = std::make_unique<PolicyReconciler>(
      &datapath->policy(), opt.node_name,
      [this](std::string_view ifname) {
        return InNode([&]() -> absl::Status {
          absl::StatusOr<dp::TcAttachment> a = datapath->Attach(dp::Hook::kToPod, ifname);
          if (!a.ok()) return a.status();
          a->Release();  // Stays with the veth across agent restarts (replaced on re-attach).
          return absl::OkStatus();
        });
      },
      [this](std::string_view ifname) {
        auto l = handle->GetLink(ifname);
        return l.ok() ? l->index : 0;
      });
  CNINET_LOG(kInfo, "datapath ", datapath->pin_dir(), " attached to ", uplink.name, " and ",
             opt.vxlan_device);
  return absl::OkStatus();
}

absl::Status Agent::Impl::WriteConflist() {
  if (opt.cni_conf_dir.empty()) return absl::OkStatus();
  ConflistParams p;
  p.network_name = opt.network_name;
  p.pod_cidr = pod_cidr;
  p.cluster_cidr = cluster_cidr;
  p.bridge = opt.bridge;
  p.mtu = cluster.mtu() != 0 ? cluster.mtu()
                             : (uplink.mtu > kVxlanOverhead ? uplink.mtu - kVxlanOverhead : 0);
  p.ipam_data_dir = StrCat(opt.state_dir, "/ipam");
  p.uplink = uplink.name;
  for (const IPPrefix& a : uplink.addresses) p.node_addresses.push_back(a.address());
  p.bpffs_root = opt.bpffs_root;
  p.instance = opt.Instance();
  p.ebpf_state_dir = StrCat(opt.state_dir, "/ebpf");
  p.masquerade = opt.masquerade;
  p.map_sizes = opt.map_sizes;
  p.host_port_ids = opt.host_port_ids;
  p.service_mark = dp::kDefaultServiceMark;  // as LoadDatapath writes it
  if (opt.report_pods) p.agent_socket = opt.socket_path;
  std::string path = StrCat(opt.cni_conf_dir, "/", opt.cni_conf_file);
  WriteFileOptions options;
  options.create_parent_dirs = true;
  CNINET_RETURN_IF_ERROR(WriteFileAtomic(path, BuildConflist(p), options));
  CNINET_LOG(kInfo, "wrote ", path);
  return absl::OkStatus();
}

template <typename T>
void Agent::Impl::Apply(Kind kind, ObjectUpdate<T>& u, Cache<T>* cache) {
  // (mu held)
  auto forget_local_pod = [&](const T& old) {
    if constexpr (std::is_same_v<T, v1::Pod>) {
      if (old.node() != opt.node_name) return;
      for (const std::string& ip : old.ips()) {
        if (auto a = IPAddress::Parse(ip); a.ok()) forgotten.insert(*a);
      }
    }
  };
  std::set<std::string> error_keys;
  for (const DecodeError& e : u.errors) {
    error_keys.insert(e.key);
    AddProblem(e.key, std::string(e.status.message()));
  }
  if (u.reset) {
    Cache<T> fresh;
    for (auto& ev : u.events) {
      fresh[ev.object.key] = std::make_shared<const T>(std::move(ev.object.value));
    }
    // A malformed key keeps the value it had.
    for (const std::string& k : error_keys) {
      if (auto it = cache->find(k); it != cache->end()) fresh[k] = it->second;
    }
    for (const auto& [k, v] : *cache) {
      if (!fresh.count(k)) forget_local_pod(*v);
    }
    for (auto it = decode_errors.begin(); it != decode_errors.end();) {
      bool ours = it->first.rfind(KeyPrefix(ObjectTraits<T>::kKind), 0) == 0;
      it = ours && !error_keys.count(it->first) ? decode_errors.erase(it) : std::next(it);
    }
    *cache = std::move(fresh);
  } else {
    for (auto& ev : u.events) {
      decode_errors.erase(ev.object.key);
      if (ev.type == EventType::kPut) {
        (*cache)[ev.object.key] = std::make_shared<const T>(std::move(ev.object.value));
      } else {
        if (auto it = cache->find(ev.object.key); it != cache->end()) {
          forget_local_pod(*it->second);
          cache->erase(it);
        }
      }
    }
  }
  revision = std::max(revision, u.revision);
  synced[kind] = true;
  switch (kind) {
    case kNodes:
    case kHeartbeats:
      nodes_dirty = true;
      break;
    case kServices:
    case kEndpoints:
      services_dirty = true;
      break;
    case kPods:
      pods_dirty = true;
      policy_dirty = true;  // addresses, labels and locality feed the policy
      break;
    case kNamespaces:
    case kPolicies:
      policy_dirty = true;
      break;
    default:
      break;
  }
}

// One watch over every cninet key: the kinds the agent follows come in one ordered stream, so a
// Service and the Endpoints written in the same transaction are applied together, and every
// pass sees one store revision across kinds.
void Agent::Impl::OnUpdate(const WatchUpdate& update) {
  auto part = [&](ObjectKind kind) {
    WatchUpdate w;
    w.reset = update.reset;
    w.revision = update.revision;
    std::string_view prefix = KeyPrefix(kind);
    for (const Event& ev : update.events) {
      if (std::string_view(ev.kv.key).substr(0, prefix.size()) == prefix) w.events.push_back(ev);
    }
    return w;
  };
  ObjectUpdate<v1::Node> node_u = DecodeUpdate<v1::Node>(part(ObjectKind::kNode));
  ObjectUpdate<v1::NodeHeartbeat> hb_u =
      DecodeUpdate<v1::NodeHeartbeat>(part(ObjectKind::kNodeHeartbeat));
  ObjectUpdate<v1::Service> svc_u = DecodeUpdate<v1::Service>(part(ObjectKind::kService));
  ObjectUpdate<v1::Endpoints> ep_u = DecodeUpdate<v1::Endpoints>(part(ObjectKind::kEndpoints));
  ObjectUpdate<v1::Pod> pod_u = DecodeUpdate<v1::Pod>(part(ObjectKind::kPod));
  ObjectUpdate<v1::Namespace> ns_u = DecodeUpdate<v1::Namespace>(part(ObjectKind::kNamespace));
  ObjectUpdate<v1::NetworkPolicy> np_u =
      DecodeUpdate<v1::NetworkPolicy>(part(ObjectKind::kNetworkPolicy));

  std::lock_guard<std::mutex> l(mu);
  for (const auto& ev : node_u.events) {
    if (ev.object.value.name() != opt.node_name) continue;
    bool removed = ev.type == EventType::kDelete;
    if (removed && !self_removed) {
      CNINET_LOG(kWarning,
                 "this node's object was deleted from the store; restart the agent to register "
                 "again");
    }
    self_removed = removed;
  }
  // Heartbeats only matter as the set of nodes whose agent is alive.
  if (hb_u.reset) alive.clear();
  for (const auto& ev : hb_u.events) {
    if (ev.type == EventType::kPut) {
      alive.insert(ev.object.value.node());
    } else {
      alive.erase(ev.object.value.node());
    }
  }
  if (hb_u.reset || !hb_u.events.empty()) nodes_dirty = true;
  synced[kHeartbeats] = true;
  // Only kinds this update touches are marked dirty (a reset touches all of them).
  if (node_u.reset || !node_u.events.empty() || !node_u.errors.empty()) {
    Apply(kNodes, node_u, &nodes);
  }
  if (svc_u.reset || !svc_u.events.empty() || !svc_u.errors.empty()) {
    Apply(kServices, svc_u, &svcs);
  }
  if (ep_u.reset || !ep_u.events.empty() || !ep_u.errors.empty()) {
    Apply(kEndpoints, ep_u, &eps);
  }
  if (pod_u.reset || !pod_u.events.empty() || !pod_u.errors.empty()) Apply(kPods, pod_u, &pods);
  if (ns_u.reset || !ns_u.events.empty() || !ns_u.errors.empty()) {
    Apply(kNamespaces, ns_u, &namespaces);
  }
  if (np_u.reset || !np_u.events.empty() || !np_u.errors.empty()) {
    Apply(kPolicies, np_u, &netpols);
  }
  revision = std::max(revision, update.revision);
  cv.notify_all();
}

absl::Status Agent::Impl::StartWatches() {
  absl::StatusOr<std::unique_ptr<WatchHandle>> w =
      store->Watch(kKeyRoot, 0, [this](const WatchUpdate& u) { OnUpdate(u); });
  if (!w.ok()) return w.status();
  watches.push_back(*std::move(w));
  return absl::OkStatus();
}

void Agent::Impl::Loop() {
  auto next_resync = Clock::now() + opt.resync_interval;
  bool first = true;
  while (true) {
    std::vector<std::shared_ptr<const v1::Node>> node_list;
    std::vector<std::shared_ptr<const v1::Service>> svc_list;
    std::vector<std::shared_ptr<const v1::Endpoints>> ep_list;
    std::vector<std::shared_ptr<const v1::Pod>> pod_list;
    std::vector<std::shared_ptr<const v1::Namespace>> ns_list;
    std::vector<std::shared_ptr<const v1::NetworkPolicy>> np_list;
    std::set<IPAddress> gone;
    bool do_nodes = false, do_services = false, do_pods = false, do_policy = false;
    bool renew = false, resync = false;
    int64_t rev = 0;
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait_until(l, next_resync, [&] {
        return stopping || heartbeat_lost ||
               (AllSynced() && (nodes_dirty || services_dirty || pods_dirty || policy_dirty));
      });
      if (stopping) return;
      resync = Clock::now() >= next_resync;
      if (resync) next_resync = Clock::now() + opt.resync_interval;
      renew = heartbeat_lost;
      if (AllSynced()) {
        do_nodes = nodes_dirty || resync || first;
        do_services = services_dirty || resync || first;
        do_pods = pods_dirty || resync || first;
        do_policy = policy_dirty || resync || first;
        nodes_dirty = services_dirty = pods_dirty = policy_dirty = false;
        if (do_nodes) node_list = Values(nodes);
        if (do_services) {
          svc_list = Values(svcs);
          ep_list = Values(eps);
        }
        if (do_pods || do_policy) pod_list = Values(pods);
        if (do_pods) gone.swap(forgotten);
        if (do_policy) {
          ns_list = Values(namespaces);
          np_list = Values(netpols);
        }
        rev = revision;
      }
    }
    if (renew) {
      absl::Status st = StartHeartbeat();
      std::lock_guard<std::mutex> l(mu);
      if (st.ok()) {
        heartbeat_lost = false;
        CNINET_LOG(kInfo, "heartbeat renewed");
      } else {
        last_error = StrCat("heartbeat: ", st.message());
      }
    }
    if (!do_nodes && !do_services && !do_pods && !do_policy) {
      if (renew) std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }

    std::vector<std::string> errors;
    std::vector<PlanWarning> warns;
    OverlayPlan new_plan;
    bool have_plan = false;
    {
      std::lock_guard<std::mutex> rl(reconcile_mu);
      if (do_nodes) {
        OverlaySelf self;
        self.name = opt.node_name;
        self.underlay = uplink.addresses[0];
        self.pod_cidr = pod_cidr;
        std::vector<v1::Node> copies;  // a handful of small objects
        for (const auto& n : node_list) {
          copies.push_back(*n);
          if (n->name() == opt.node_name) self.direct_routing = n->direct_routing();
        }
        new_plan = PlanOverlay(self, copies);
        have_plan = true;
        absl::StatusOr<OverlayChanges> ch = overlay->Apply(new_plan);
        if (!ch.ok()) errors.push_back(StrCat("overlay: ", ch.status().message()));
      }
      if (do_services) {
        ServicePlanOptions po;
        po.maglev_size = opt.maglev_size;
        po.node_port_min = cluster.node_port_range().min();
        po.node_port_max = cluster.node_port_range().max();
        auto t0 = Clock::now();
        std::vector<const v1::Service*> sp = Pointers(svc_list);
        std::vector<const v1::Endpoints*> epp = Pointers(ep_list);
        std::vector<PlannedService> planned =
            PlanServices(std::span<const v1::Service* const>(sp),
                         std::span<const v1::Endpoints* const>(epp), po, &warns);
        auto t1 = Clock::now();
        absl::StatusOr<ServiceChanges> ch = services->Apply(std::move(planned));
        auto t2 = Clock::now();
        if (!ch.ok()) {
          errors.push_back(StrCat("services: ", ch.status().message()));
        } else if (ch->upserted + ch->deleted > 0 || ch->failed > 0) {
          CNINET_LOG(kInfo, "services: ", ch->upserted, " programmed, ", ch->deleted, " removed, ",
                     ch->unchanged, " unchanged, ", ch->failed, " refused (plan ", Ms(t1 - t0),
                     " ms, apply ", Ms(t2 - t1), " ms, store revision ", rev, ")");
        }
      }
      if (do_pods) {
        std::vector<const v1::Pod*> pp = Pointers(pod_list);
        planned_endpoints = PlanEndpoints(
            std::span<const v1::Pod* const>(pp), opt.node_name, pod_cidr,
            [this](std::string_view ifname) {
              auto l = handle->GetLink(ifname);
              return l.ok() ? l->index : 0;
            },
            &warns);
        absl::StatusOr<EndpointChanges> ch = endpoints->Apply(planned_endpoints, gone);
        if (!ch.ok()) errors.push_back(StrCat("endpoints: ", ch.status().message()));
      }
      if (do_policy) {
        // After the endpoints: the pods' interfaces are known; the maps go before the hooks.
        std::vector<const v1::Pod*> pp = Pointers(pod_list);
        std::vector<const v1::Namespace*> nsp = Pointers(ns_list);
        std::vector<const v1::NetworkPolicy*> npp = Pointers(np_list);
        std::vector<PlanWarning> pol_warns;
        absl::StatusOr<PolicyPassResult> ch = policy->Apply(
            std::span<const v1::Namespace* const>(nsp), std::span<const v1::Pod* const>(pp),
            std::span<const v1::NetworkPolicy* const>(npp), resync && !first, &pol_warns);
        if (!ch.ok()) {
          errors.push_back(StrCat("policy: ", ch.status().message()));
        } else if (ch->apply.total() > 0 || ch->hooks_attached > 0) {
          CNINET_LOG(kInfo, "policy: ", ch->apply.total(), " map writes, ", ch->hooks_attached,
                     " to-pod programs attached (", ch->hooks_present,
                     " local pods enforced; store revision ", rev, ")");
        }
        std::lock_guard<std::mutex> l(mu);
        policy_warnings.clear();
        for (const PlanWarning& w : pol_warns) {
          policy_warnings.push_back(StrCat(w.object, ": ", w.message));
        }
      }
    }
    size_t programmed = services->size();
    {
      std::lock_guard<std::mutex> l(mu);
      if (have_plan) plan = std::move(new_plan);
      if (do_services || do_pods) {
        // Warnings of the kinds reconciled now replace the earlier ones.
        warnings.clear();
        for (const PlanWarning& w : warns) warnings.push_back(StrCat(w.object, ": ", w.message));
      }
      ++reconciles;
      if (errors.empty()) {
        last_error.clear();
        ready = true;
      } else {
        last_error = StrJoin(errors, "; ");
        CNINET_LOG(kError, "reconcile: ", last_error);
        // Try again soon: level-triggered, the next pass recomputes everything it needs.
        nodes_dirty |= do_nodes;
        services_dirty |= do_services;
        pods_dirty |= do_pods;
        policy_dirty |= do_policy;
      }
      cv.notify_all();
    }
    if (opt.on_reconciled) opt.on_reconciled(rev, programmed);
    first = false;
    std::this_thread::sleep_for(errors.empty() ? opt.min_reconcile_interval
                                               : std::chrono::milliseconds(1000));
  }
}

void Agent::Impl::Shutdown() {
  api.reset();
  watches.clear();  // No watch callback runs after this.
  {
    std::lock_guard<std::mutex> l(mu);
    stopping = true;
    cv.notify_all();
  }
  if (loop.joinable()) loop.join();
  heartbeat.reset();  // Revokes the lease: the heartbeat key goes.
}

api::AgentStatus Agent::Impl::Status(const api::StatusRequest& request) {
  api::AgentStatus s;
  uint32_t max_services = request.max_services() == 0 ? 50 : request.max_services();
  std::lock_guard<std::mutex> rl(reconcile_mu);
  std::lock_guard<std::mutex> l(mu);
  s.set_node(opt.node_name);
  s.set_version(kAgentVersion);
  api::HealthReply h;
  {
    // Health() takes mu itself; compute inline.
    std::vector<std::string> why;
    if (!ready) why.push_back(AllSynced() ? "first reconcile pending" : "store not synced yet");
    if (!last_error.empty()) why.push_back(last_error);
    if (heartbeat_lost) why.push_back("heartbeat lease lost");
    if (self_removed) why.push_back("this node's object was deleted from the store");
    for (const auto& w : watches) {
      if (absl::Status ws = w->health(); !ws.ok()) why.push_back(StrCat("store: ", ws.message()));
    }
    s.set_ready(ready);
    s.set_healthy(ready && why.empty());
    s.set_message(StrJoin(why, "; "));
  }
  s.set_pod_cidr(pod_cidr.ToString());
  s.set_store(std::string(store->kind()));
  s.set_store_revision(revision);
  s.set_uplink(uplink.name);
  for (const IPPrefix& a : uplink.addresses) s.add_node_addresses(a.ToString());
  s.set_vxlan_device(opt.vxlan_device);
  s.set_pin_dir(datapath->pin_dir());
  std::map<std::string, std::string> routes;
  for (const OverlayPeer& p : plan.peers) {
    routes[p.node] = p.mode == PeerMode::kDirect ? StrCat("direct via ", p.gateway.ToString())
                                                 : StrCat("vxlan via ", p.vtep.ToString(), " (",
                                                          p.vtep_mac.ToString(), ")");
  }
  for (const SkippedPeer& sp : plan.skipped) routes[sp.node] = StrCat("skipped: ", sp.reason);
  for (const auto& [key, np] : nodes) {
    const v1::Node& n = *np;
    api::NodeStatus* ns = s.add_nodes();
    *ns->mutable_node() = n;
    ns->set_alive(alive.count(n.name()) > 0);
    if (n.name() == opt.node_name) {
      ns->set_route("self");
    } else if (auto it = routes.find(n.name()); it != routes.end()) {
      ns->set_route(it->second);
    } else {
      ns->set_route("not planned yet");
    }
  }
  s.set_services_total(static_cast<uint32_t>(services->size()));
  for (const auto& [id, prog] : services->programmed()) {
    if (static_cast<uint32_t>(s.services_size()) >= max_services) break;
    api::ServiceStatus* ss = s.add_services();
    ss->set_id(id);
    ss->set_key(prog.key.name.empty() ? "(recovered)" : prog.key.ToString());
    for (const auto& f : prog.service.frontends) ss->add_frontends(FrontendString(f));
    for (const auto& b : prog.service.backends) ss->add_backends(b.ToString());
  }
  std::map<IPAddress, dp::Endpoint> table;
  if (auto list = datapath->endpoints().List(); list.ok()) {
    for (const auto& e : *list) table[e.address] = e;
  }
  for (const PlannedEndpoint& pe : planned_endpoints) {
    api::EndpointStatus* es = s.add_endpoints();
    es->set_pod(pe.pod);
    es->set_address(pe.endpoint.address.ToString());
    es->set_ifindex(pe.endpoint.ifindex);
    es->set_mac(nl::MacAddress(pe.endpoint.mac).ToString());
    if (auto it = pods.find(StrCat(KeyPrefix(ObjectKind::kPod), pe.pod)); it != pods.end()) {
      es->set_interface(it->second->interface());
    }
    auto it = table.find(pe.endpoint.address);
    es->set_programmed(it != table.end() && it->second.ifindex == pe.endpoint.ifindex);
  }
  if (auto counters = datapath->counters().Read(); counters.ok()) {
    for (const auto& c : *counters) {
      if (c.packets == 0) continue;
      api::CounterStatus* cs = s.add_counters();
      cs->set_name(std::string(c.name));
      cs->set_packets(c.packets);
      cs->set_bytes(c.bytes);
      cs->set_drop(c.is_drop);
    }
  }
  for (const auto& [k, why] : decode_errors) {
    if (static_cast<size_t>(s.problems_size()) >= kMaxProblems) break;
    s.add_problems(why);
  }
  for (const std::string& w : warnings) {
    if (static_cast<size_t>(s.problems_size()) >= kMaxProblems) break;
    s.add_problems(w);
  }
  for (const std::string& w : policy_warnings) {
    if (static_cast<size_t>(s.problems_size()) >= kMaxProblems) break;
    s.add_problems(w);
  }
  FillPolicyStatus(s.mutable_policy());
  s.set_reconciles(reconciles);
  return s;
}

void Agent::Impl::FillPolicyStatus(api::PolicyStatus* ps) const {
  constexpr size_t kMaxPolicyCounters = 200;
  const PolicyReconcilerStatus& st = policy->status();
  ps->set_namespaces(st.namespaces);
  ps->set_isolated_namespaces(st.isolated_namespaces);
  ps->set_policies(st.policies);
  ps->set_pods(st.pods);
  ps->set_identities(st.compiler.identities);
  ps->set_prefixes(st.compiler.prefixes);
  ps->set_endpoints(st.compiler.endpoints);
  ps->set_entries(st.compiler.entries);
  ps->set_hooks(st.hooks);
  ps->set_last_map_writes(st.last_apply.total());
  ps->set_last_compile_us(st.last_apply.compile_time.count());
  ps->set_last_write_us(st.last_apply.write_time.count());
  if (st.compiler.endpoints == 0) return;
  absl::StatusOr<std::vector<dp::PolicyCounter>> counters = datapath->policy().ReadCounters();
  if (!counters.ok()) return;
  for (const dp::PolicyCounter& c : *counters) {
    if (c.packets == 0) continue;
    if (static_cast<size_t>(ps->counters_size()) >= kMaxPolicyCounters) break;
    api::PolicyCounterStatus* cs = ps->add_counters();
    cs->set_pod(c.pod);
    cs->set_address(c.endpoint.ToString());
    cs->set_rule(c.rule);
    cs->set_packets(c.packets);
    cs->set_bytes(c.bytes);
  }
}

api::HealthReply Agent::Impl::Health() {
  api::StatusRequest req;
  req.set_max_services(1);
  api::AgentStatus s = Status(req);
  api::HealthReply h;
  h.set_ready(s.ready());
  h.set_healthy(s.healthy());
  h.set_message(s.message());
  return h;
}

absl::Status Agent::Impl::ReportPod(const v1::Pod& in) {
  v1::Pod pod = in;
  if (!pod.node().empty() && pod.node() != opt.node_name) {
    return absl::InvalidArgumentError(StrCat("pod ", pod.namespace_(), "/", pod.name(),
                                             " reported for node ", pod.node(), " to the agent of ",
                                             opt.node_name));
  }
  pod.set_node(opt.node_name);
  for (const std::string& ip : pod.ips()) {
    auto a = IPAddress::Parse(ip);
    if (a.ok() && a->is_v4() && !pod_cidr.Contains(*a)) {
      return absl::InvalidArgumentError(
          StrCat("pod address ", ip, " is outside this node's podCIDR ", pod_cidr.ToString()));
    }
  }
  absl::StatusOr<int64_t> rev = PutObject(*store, pod);
  if (!rev.ok()) return Annotate(rev.status(), "store the pod");
  CNINET_LOG(kInfo, "pod ", pod.namespace_(), "/", pod.name(), " reported (",
             StrJoin(pod.ips(), ","), " on ", pod.interface(), ")");
  return absl::OkStatus();
}

absl::Status Agent::Impl::ForgetPod(const api::ForgetPodRequest& req) {
  std::vector<std::string> doomed;
  if (!req.namespace_().empty() && !req.name().empty()) {
    CNINET_RETURN_IF_ERROR(ValidateName(req.namespace_()));
    CNINET_RETURN_IF_ERROR(ValidateName(req.name()));
    doomed.push_back(keys::Pod(req.namespace_(), req.name()));
  } else if (!req.container_id().empty()) {
    std::lock_guard<std::mutex> l(mu);
    for (const auto& [key, p] : pods) {
      if (p->node() == opt.node_name && p->container_id() == req.container_id()) {
        doomed.push_back(key);
      }
    }
  } else {
    return absl::InvalidArgumentError("forget a pod by container ID or by namespace and name");
  }
  for (const std::string& key : doomed) {
    CNINET_RETURN_IF_ERROR(DeleteLocalPod(key, req.container_id()));
  }
  return absl::OkStatus();
}

// Deletes a pod object if it (still) belongs to this node and, when given, to `container_id`.
absl::Status Agent::Impl::DeleteLocalPod(const std::string& key, const std::string& container_id) {
  // Only this node's pods: a pod of the same name may since run elsewhere.
  absl::StatusOr<Object<v1::Pod>> cur = GetObject<v1::Pod>(*store, key);
  if (absl::IsNotFound(cur.status())) return absl::OkStatus();
  if (cur.ok() && cur->value.node() != opt.node_name) return absl::OkStatus();
  if (cur.ok() && !container_id.empty() && cur->value.container_id() != container_id) {
    return absl::OkStatus();
  }
  int64_t mod = cur.ok() ? cur->mod_revision : 0;
  absl::Status st = mod != 0 ? store->DeleteIf(key, mod) : store->Delete(key).status();
  if (!st.ok() && !absl::IsAborted(st)) return Annotate(st, StrCat("delete ", key));
  CNINET_LOG(kInfo, "pod ", key, " forgotten");
  return absl::OkStatus();
}

absl::Status Agent::Impl::GcPods(const api::GcPodsRequest& req) {
  std::set<std::string> valid(req.valid_container_ids().begin(), req.valid_container_ids().end());
  std::vector<std::pair<std::string, std::string>> stale;  // key, container ID
  {
    std::lock_guard<std::mutex> l(mu);
    for (const auto& [key, p] : pods) {
      if (p->node() == opt.node_name && !p->container_id().empty() &&
          !valid.count(p->container_id())) {
        stale.push_back({key, p->container_id()});
      }
    }
  }
  for (const auto& [key, id] : stale) {
    CNINET_LOG(kInfo, "GC: container ", id, " is gone");
    CNINET_RETURN_IF_ERROR(DeleteLocalPod(key, id));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() { Stop(); }

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  absl::Status st = impl->Init();
  if (!st.ok()) return Annotate(st, StrCat("agent of node ", impl->opt.node_name));
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

void Agent::Stop() {
  if (impl_) impl_->Shutdown();
}

absl::Status Agent::WaitReady(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(impl_->mu);
  if (impl_->cv.wait_for(l, timeout, [&] { return impl_->ready; })) return absl::OkStatus();
  std::string why = impl_->last_error.empty()
                        ? (impl_->AllSynced() ? "first reconcile pending" : "store not synced")
                        : impl_->last_error;
  return absl::DeadlineExceededError(StrCat("agent not ready: ", why));
}

api::AgentStatus Agent::Status(uint32_t max_services) const {
  api::StatusRequest req;
  req.set_max_services(max_services);
  return impl_->Status(req);
}

api::HealthReply Agent::Health() const { return impl_->Health(); }

const IPPrefix& Agent::pod_cidr() const { return impl_->pod_cidr; }

size_t Agent::programmed_services() const {
  std::lock_guard<std::mutex> rl(impl_->reconcile_mu);
  return impl_->services->size();
}

// ---------------------------------------------------------------------------------------------

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
  // Unpin() also removes the programs cninet-ebpf pinned (PinLayout::ProgramDir()) and the
  // shared cninet directory once empty.
  if (!opt.cni_conf_dir.empty()) {
    std::filesystem::remove(StrCat(opt.cni_conf_dir, "/", opt.cni_conf_file), ec);
  }
  return first;
}

}  // namespace cninet::agent
