// cninetctl: reads and writes the cluster state in the agent's store (etcd or an embedded store
// directory) as an operator would, and queries a node's agent.
//
//   cninetctl [--etcd EP | --store-dir DIR] get [KIND|PREFIX|KEY]
//   cninetctl [--etcd EP | --store-dir DIR] put KEY VALUE|-      (value validated for its kind)
//   cninetctl [--etcd EP | --store-dir DIR] del KEY
//   cninetctl [--etcd EP | --store-dir DIR] namespace set NAME [--isolated[=true|false]]
//             [--labels k=v,...]
//   cninetctl [--etcd EP | --store-dir DIR] service set NAMESPACE/NAME
//             [--cluster-ip IP[,IP]] [--ip-families IPv4,IPv6] [--ip-family-policy POLICY]
//             [--ports [NAME=]PORT[/PROTO][:NODEPORT],...] [--external-ips IP,...]
//   cninetctl [--etcd EP | --store-dir DIR] policy apply -f FILE|-   (a NetworkPolicy's JSON)
//   cninetctl [--etcd EP | --store-dir DIR] policy delete NAMESPACE/NAME
//   cninetctl [--socket PATH] status [--services N] [--json] | health
//
// KIND is nodes, pods, services, endpoints, namespaces, networkpolicies, podcidrs, heartbeats,
// config. `cninetctl --help` and `cninetctl COMMAND --help` list the options; usage errors name
// the flag and exit with 2.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cninet/agent/embedded_store.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "etcd_flags.h"
#include "status_print.h"

namespace {

namespace agent = ::cninet::agent;
using cninet::StrCat;

constexpr int kUsageError = 2;
constexpr char kDefaultSocket[] = "/run/cninet/agent.sock";

const std::map<std::string, agent::ObjectKind> kKinds = {
    {"nodes", agent::ObjectKind::kNode},
    {"heartbeats", agent::ObjectKind::kNodeHeartbeat},
    {"podcidrs", agent::ObjectKind::kPodCIDRAllocation},
    {"pods", agent::ObjectKind::kPod},
    {"services", agent::ObjectKind::kService},
    {"endpoints", agent::ObjectKind::kEndpoints},
    {"namespaces", agent::ObjectKind::kNamespace},
    {"networkpolicies", agent::ObjectKind::kNetworkPolicy},
    {"config", agent::ObjectKind::kClusterConfig},
};

// The kind whose prefix `key` starts with.
std::optional<agent::ObjectKind> KindOfKey(std::string_view key) {
  for (const auto& [name, kind] : kKinds) {
    std::string_view prefix = agent::KeyPrefix(kind);
    if (key.substr(0, prefix.size()) == prefix) return kind;
  }
  return std::nullopt;
}

// A default-constructed message of `kind`.
std::unique_ptr<google::protobuf::Message> NewMessage(agent::ObjectKind kind) {
  switch (kind) {
    case agent::ObjectKind::kNode:
      return std::make_unique<cninet::v1::Node>();
    case agent::ObjectKind::kNodeHeartbeat:
      return std::make_unique<cninet::v1::NodeHeartbeat>();
    case agent::ObjectKind::kPodCIDRAllocation:
      return std::make_unique<cninet::v1::PodCIDRAllocation>();
    case agent::ObjectKind::kPod:
      return std::make_unique<cninet::v1::Pod>();
    case agent::ObjectKind::kService:
      return std::make_unique<cninet::v1::Service>();
    case agent::ObjectKind::kEndpoints:
      return std::make_unique<cninet::v1::Endpoints>();
    case agent::ObjectKind::kNamespace:
      return std::make_unique<cninet::v1::Namespace>();
    case agent::ObjectKind::kNetworkPolicy:
      return std::make_unique<cninet::v1::NetworkPolicy>();
    case agent::ObjectKind::kClusterConfig:
      return std::make_unique<cninet::v1::ClusterConfig>();
  }
  return nullptr;
}

int Fail(const absl::Status& st) {
  std::cerr << "cninetctl: " << st.message() << "\n";
  return 1;
}

// What `namespace set` changes: each field only when its flag was given.
struct NamespaceChange {
  std::optional<bool> isolated;       // --isolated[=true|false]
  std::optional<std::string> labels;  // --labels k=v,...
};

// Replaces the labels of `ns` with "k=v,..."; InvalidArgument naming a malformed label.
absl::Status SetLabels(const std::string& text, cninet::v1::Namespace* ns) {
  ns->clear_labels();
  for (auto part : absl::StrSplit(cninet::ToAbsl(text), ',', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError(StrCat("label \"", part, "\" is not k=v"));
    }
    (*ns->mutable_labels())[kv[0]] = kv[1];
  }
  return absl::OkStatus();
}

// namespace set NAME [--isolated[=true|false]] [--labels k=v,...]: read-modify-write of the
// Namespace object (created when absent), retried when another writer got in between.
int NamespaceSet(agent::Store& store, const std::string& name, const NamespaceChange& change) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    cninet::v1::Namespace ns;
    int64_t mod = 0;
    auto cur = agent::GetObject<cninet::v1::Namespace>(store, agent::keys::Namespace(name));
    if (cur.ok()) {
      ns = cur->value;
      mod = cur->mod_revision;
    } else if (!absl::IsNotFound(cur.status())) {
      return Fail(cur.status());
    }
    ns.set_name(name);
    if (change.isolated) ns.set_isolated(*change.isolated);
    if (change.labels) {
      if (absl::Status st = SetLabels(*change.labels, &ns); !st.ok()) return Fail(st);
    }
    absl::StatusOr<int64_t> rev =
        mod == 0 ? agent::CreateObject(store, ns) : agent::UpdateObject(store, ns, mod);
    if (rev.ok()) {
      std::cout << agent::keys::Namespace(name) << " " << agent::EncodeJson(ns).value_or("")
                << "\nrevision " << *rev << "\n";
      return 0;
    }
    if (!absl::IsAborted(rev.status()) && !absl::IsAlreadyExists(rev.status())) {
      return Fail(rev.status());
    }
  }
  return Fail(absl::AbortedError("namespace changed concurrently; try again"));
}

// What `service set` changes (unset fields keep their stored value).
struct ServiceChange {
  std::optional<std::string> cluster_ips;  // --cluster-ip IP[,IP] (the primary first)
  std::optional<std::string> families;     // --ip-families IPv4,IPv6
  std::optional<std::string> policy;       // --ip-family-policy SingleStack|...
  std::optional<std::string> ports;        // --ports [NAME=]PORT[/PROTO][:NODEPORT],...
  std::optional<std::string> external;     // --external-ips IP,...
  std::optional<std::string> lb_ips;       // --load-balancer-ips IP,... (LOAD_BALANCER)
  std::optional<std::string> ext_policy;   // --external-traffic-policy Cluster|Local
  std::optional<std::string> int_policy;   // --internal-traffic-policy Cluster|Local
  std::optional<uint32_t> health_port;     // --health-check-node-port PORT
};

// "Cluster" or "Local" (any case).
absl::Status ParseTrafficPolicy(const std::string& text, cninet::v1::Service::TrafficPolicy* out) {
  std::string l = absl::AsciiStrToLower(cninet::ToAbsl(text));
  if (l == "cluster") {
    *out = cninet::v1::Service::CLUSTER;
  } else if (l == "local") {
    *out = cninet::v1::Service::LOCAL;
  } else {
    return absl::InvalidArgumentError(StrCat("traffic policy \"", text, "\": Cluster or Local"));
  }
  return absl::OkStatus();
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (auto part : absl::StrSplit(cninet::ToAbsl(text), ',', absl::SkipEmpty())) {
    out.emplace_back(part);
  }
  return out;
}

// "[NAME=]PORT[/tcp|udp|sctp][:NODEPORT]" into `port`.
absl::Status ParseServicePort(const std::string& text, cninet::v1::ServicePort* port) {
  std::string rest = text;
  if (size_t eq = rest.find('='); eq != std::string::npos) {
    port->set_name(rest.substr(0, eq));
    rest = rest.substr(eq + 1);
  }
  uint32_t node_port = 0;
  if (size_t colon = rest.find(':'); colon != std::string::npos) {
    if (!absl::SimpleAtoi(cninet::ToAbsl(rest.substr(colon + 1)), &node_port)) {
      return absl::InvalidArgumentError(StrCat("port \"", text, "\": bad nodePort"));
    }
    rest = rest.substr(0, colon);
  }
  cninet::v1::Protocol proto = cninet::v1::TCP;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    std::string p = absl::AsciiStrToLower(cninet::ToAbsl(rest.substr(slash + 1)));
    if (p == "udp") {
      proto = cninet::v1::UDP;
    } else if (p == "sctp") {
      proto = cninet::v1::SCTP;
    } else if (p != "tcp") {
      return absl::InvalidArgumentError(StrCat("port \"", text, "\": protocol tcp, udp or sctp"));
    }
    rest = rest.substr(0, slash);
  }
  uint32_t number = 0;
  if (!absl::SimpleAtoi(cninet::ToAbsl(rest), &number)) {
    return absl::InvalidArgumentError(
        StrCat("port \"", text, "\" is not [NAME=]PORT[/PROTO][:NODEPORT]"));
  }
  port->set_port(number);
  port->set_protocol(proto);
  port->set_node_port(node_port);
  return absl::OkStatus();
}

// Applies `change` to `svc` (Kubernetes' spellings for families and the policy).
absl::Status ApplyServiceChange(const ServiceChange& change, cninet::v1::Service* svc) {
  if (change.cluster_ips) {
    svc->clear_cluster_ips();
    for (const std::string& ip : SplitList(*change.cluster_ips)) svc->add_cluster_ips(ip);
    svc->set_cluster_ip(svc->cluster_ips_size() > 0 ? svc->cluster_ips(0) : "");
    if (!change.families) svc->clear_ip_families();
  }
  if (change.families) {
    svc->clear_ip_families();
    for (const std::string& f : SplitList(*change.families)) {
      std::string l = absl::AsciiStrToLower(cninet::ToAbsl(f));
      if (l == "ipv4") {
        svc->add_ip_families(cninet::v1::IPV4);
      } else if (l == "ipv6") {
        svc->add_ip_families(cninet::v1::IPV6);
      } else {
        return absl::InvalidArgumentError(StrCat("ip family \"", f, "\": IPv4 or IPv6"));
      }
    }
  }
  if (change.policy) {
    std::string l = absl::AsciiStrToLower(cninet::ToAbsl(*change.policy));
    l.erase(std::remove(l.begin(), l.end(), '_'), l.end());
    if (l == "singlestack") {
      svc->set_ip_family_policy(cninet::v1::Service::SINGLE_STACK);
    } else if (l == "preferdualstack") {
      svc->set_ip_family_policy(cninet::v1::Service::PREFER_DUAL_STACK);
    } else if (l == "requiredualstack") {
      svc->set_ip_family_policy(cninet::v1::Service::REQUIRE_DUAL_STACK);
    } else {
      return absl::InvalidArgumentError(
          StrCat("ip family policy \"", *change.policy,
                 "\": SingleStack, PreferDualStack or RequireDualStack"));
    }
  }
  if (change.ports) {
    svc->clear_ports();
    bool node_port = false;
    for (const std::string& text : SplitList(*change.ports)) {
      if (absl::Status st = ParseServicePort(text, svc->add_ports()); !st.ok()) return st;
      node_port |= svc->ports(svc->ports_size() - 1).node_port() != 0;
    }
    svc->set_type(node_port ? cninet::v1::Service::NODE_PORT : cninet::v1::Service::CLUSTER_IP);
  }
  if (change.external) {
    svc->clear_external_ips();
    for (const std::string& ip : SplitList(*change.external)) svc->add_external_ips(ip);
  }
  if (change.lb_ips) {
    svc->clear_load_balancer_ips();
    for (const std::string& ip : SplitList(*change.lb_ips)) svc->add_load_balancer_ips(ip);
  }
  // Load balancer addresses make a service with node ports a LOAD_BALANCER one.
  if (svc->type() != cninet::v1::Service::CLUSTER_IP) {
    svc->set_type(svc->load_balancer_ips_size() > 0 ? cninet::v1::Service::LOAD_BALANCER
                                                    : cninet::v1::Service::NODE_PORT);
  }
  cninet::v1::Service::TrafficPolicy tp;
  if (change.ext_policy) {
    if (absl::Status st = ParseTrafficPolicy(*change.ext_policy, &tp); !st.ok()) return st;
    svc->set_external_traffic_policy(tp);
  }
  if (change.int_policy) {
    if (absl::Status st = ParseTrafficPolicy(*change.int_policy, &tp); !st.ok()) return st;
    svc->set_internal_traffic_policy(tp);
  }
  if (change.health_port) svc->set_health_check_node_port(*change.health_port);
  // A dual-stack address list without a policy gets RequireDualStack, as `kubectl` users expect.
  if (svc->ip_family_policy() == cninet::v1::Service::IP_FAMILY_POLICY_UNSPECIFIED &&
      (svc->cluster_ips_size() > 1 || svc->ip_families_size() > 1)) {
    svc->set_ip_family_policy(cninet::v1::Service::REQUIRE_DUAL_STACK);
  }
  return absl::OkStatus();
}

// service set NAMESPACE/NAME [--cluster-ip IP[,IP]] [--ip-families F[,F]] [--ip-family-policy P]
// [--ports ...] [--external-ips ...]: read-modify-write of the Service (created when absent),
// validated (Kubernetes' dual-stack rules) before it is written.
int ServiceSet(agent::Store& store, const std::string& ns_name, const ServiceChange& change) {
  size_t slash = ns_name.find('/');
  if (slash == std::string::npos) return Fail(absl::InvalidArgumentError("NAMESPACE/NAME"));
  const std::string ns = ns_name.substr(0, slash);
  const std::string name = ns_name.substr(slash + 1);
  for (int attempt = 0; attempt < 5; ++attempt) {
    cninet::v1::Service svc;
    int64_t mod = 0;
    auto cur = agent::GetObject<cninet::v1::Service>(store, agent::keys::Service(ns, name));
    if (cur.ok()) {
      svc = cur->value;
      mod = cur->mod_revision;
    } else if (!absl::IsNotFound(cur.status())) {
      return Fail(cur.status());
    }
    svc.set_namespace_(ns);
    svc.set_name(name);
    if (absl::Status st = ApplyServiceChange(change, &svc); !st.ok()) return Fail(st);
    absl::StatusOr<int64_t> rev =
        mod == 0 ? agent::CreateObject(store, svc) : agent::UpdateObject(store, svc, mod);
    if (rev.ok()) {
      std::cout << agent::keys::Service(ns, name) << " " << agent::EncodeJson(svc).value_or("")
                << "\nrevision " << *rev << "\n";
      return 0;
    }
    if (!absl::IsAborted(rev.status()) && !absl::IsAlreadyExists(rev.status())) {
      return Fail(rev.status());
    }
  }
  return Fail(absl::AbortedError("service changed concurrently; try again"));
}

// policy apply -f FILE|-: the NetworkPolicy's JSON (namespace and name inside) to its key.
int PolicyApply(agent::Store& store, const std::string& file) {
  std::string json;
  if (file == "-") {
    json.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(file);
    if (!in) return Fail(absl::NotFoundError(StrCat("cannot read ", file)));
    json.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  cninet::v1::NetworkPolicy policy;
  if (absl::Status st = agent::DecodeJson(json, &policy); !st.ok()) return Fail(st);
  auto rev = agent::PutObject(store, policy);
  if (!rev.ok()) return Fail(rev.status());
  std::cout << agent::keys::NetworkPolicy(policy.namespace_(), policy.name()) << "\nrevision "
            << *rev << "\n";
  return 0;
}

// The store named by --etcd or --store-dir.
absl::StatusOr<std::unique_ptr<agent::Store>> OpenStore(const std::string& etcd,
                                                        const agent::EtcdTlsOptions& tls,
                                                        const std::string& store_dir) {
  if (!etcd.empty()) {
    agent::EtcdStoreOptions o;
    o.tls = tls;
    for (auto part : absl::StrSplit(cninet::ToAbsl(etcd), ',', absl::SkipEmpty())) {
      o.endpoints.emplace_back(part);
    }
    return agent::OpenEtcdStore(o);
  }
  agent::EmbeddedStoreOptions o;
  o.dir = store_dir;
  return agent::OpenEmbeddedStore(o);
}

int Status(const std::string& socket, uint32_t max, bool json) {
  auto s = agent::QueryAgentStatus(socket, max);
  if (!s.ok()) return Fail(s.status());
  if (json) {
    std::cout << agent::EncodeJson(*s).value_or("{}") << "\n";
  } else {
    cninet::agent_tool::PrintStatus(*s, std::cout);
  }
  return s->ready() ? 0 : 1;
}

int Health(const std::string& socket) {
  auto h = agent::QueryAgentHealth(socket);
  if (!h.ok()) return Fail(h.status());
  cninet::agent_tool::PrintHealth(*h, std::cout);
  return h->ready() && h->healthy() ? 0 : 1;
}

int Get(agent::Store& store, std::string what) {
  if (what.empty()) what = std::string(agent::kKeyRoot);
  if (auto it = kKinds.find(what); it != kKinds.end()) {
    what = std::string(agent::KeyPrefix(it->second));
  }
  auto list = store.List(what);
  if (!list.ok()) return Fail(list.status());
  for (const auto& kv : list->kvs) std::cout << kv.key << " " << kv.value << "\n";
  return 0;
}

// put KEY VALUE|-: the value is checked against the kind of its key unless `raw`.
int Put(agent::Store& store, const std::string& key, std::string value, bool raw) {
  if (value == "-") {
    value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (!raw) {
    std::optional<agent::ObjectKind> kind = KindOfKey(key);
    if (!kind) {
      return Fail(absl::InvalidArgumentError(StrCat(key, " is not a cninet key (", agent::kKeyRoot,
                                                    "<kind>/...); --raw writes it anyway")));
    }
    auto msg = NewMessage(*kind);
    if (absl::Status st = agent::DecodeObject(*kind, key, value, msg.get()); !st.ok()) {
      return Fail(st);
    }
  }
  auto rev = store.Put(key, value);
  if (!rev.ok()) return Fail(rev.status());
  std::cout << "revision " << *rev << "\n";
  return 0;
}

int Delete(agent::Store& store, const std::string& key) {
  auto existed = store.Delete(key);
  if (!existed.ok()) return Fail(existed.status());
  std::cout << (*existed ? "deleted\n" : "not found\n");
  return 0;
}

int PolicyDelete(agent::Store& store, const std::string& ns_name) {
  size_t slash = ns_name.find('/');
  if (slash == std::string::npos) return Fail(absl::InvalidArgumentError("NAMESPACE/NAME"));
  return Delete(store,
                agent::keys::NetworkPolicy(ns_name.substr(0, slash), ns_name.substr(slash + 1)));
}

// Everything the command line can say.
struct Flags {
  std::string etcd, store_dir, socket = kDefaultSocket;
  agent::EtcdTlsOptions etcd_tls;
  uint32_t max_services = 50;
  bool json = false, raw = false, isolated = true;
  std::string what, key, value, name, file, labels, policy;
  std::string cluster_ips, families, family_policy, ports, external_ips, lb_ips, ext_policy,
      int_policy;
  uint32_t health_port = 0;
};

// The command line's subcommands (owned by the app).
struct Commands {
  CLI::App *get, *put, *del, *ns_set, *svc_set, *pol_apply, *pol_del, *status, *health;
};

// Declares the subcommands of `app`, their flags stored in `f`.
Commands AddCommands(CLI::App& app, Flags& f) {
  Commands c;
  c.get = app.add_subcommand("get", "list keys and values under KIND, PREFIX or KEY");
  c.get->add_option("what", f.what,
                    "nodes pods services endpoints namespaces networkpolicies podcidrs heartbeats "
                    "config, a prefix or a key [everything]");
  c.put = app.add_subcommand("put", "write a value (validated for its kind)");
  c.put->add_option("key", f.key, "the key")->required();
  c.put->add_option("value", f.value, "the value, or - to read stdin")->required();
  c.put->add_flag("--raw", f.raw, "skip the checks");
  c.del = app.add_subcommand("del", "delete a key");
  c.del->add_option("key", f.key, "the key")->required();

  CLI::App* ns = app.add_subcommand("namespace", "Namespace objects");
  ns->require_subcommand(1);
  c.ns_set = ns->add_subcommand("set", "create the Namespace or update the given fields");
  c.ns_set->add_option("name", f.name, "namespace name")->required();
  c.ns_set->add_flag("--isolated", f.isolated, "isolate the namespace (--isolated=false: not)");
  c.ns_set->add_option("--labels", f.labels, "labels k=v,... (replace the old ones)");

  CLI::App* svc = app.add_subcommand("service", "Service objects");
  svc->require_subcommand(1);
  c.svc_set = svc->add_subcommand("set", "create the Service or update the given fields");
  c.svc_set->add_option("service", f.name, "NAMESPACE/NAME")->required();
  c.svc_set->add_option("--cluster-ip,--cluster-ips", f.cluster_ips,
                        "ClusterIPs IP[,IP], at most one per family, the primary first");
  c.svc_set->add_option("--ip-families", f.families, "IPv4, IPv6, IPv4,IPv6 or IPv6,IPv4");
  c.svc_set->add_option("--ip-family-policy", f.family_policy,
                        "SingleStack, PreferDualStack or RequireDualStack");
  c.svc_set->add_option("--ports", f.ports,
                        "[NAME=]PORT[/tcp|udp][:NODEPORT],... (a nodePort makes it NODE_PORT)");
  c.svc_set->add_option("--external-ips", f.external_ips, "externalIPs IP,... of either family");
  c.svc_set->add_option("--load-balancer-ips", f.lb_ips,
                        "load balancer ingress IPs (makes a NODE_PORT service LOAD_BALANCER)");
  c.svc_set->add_option("--external-traffic-policy", f.ext_policy,
                        "Cluster or Local (nodePorts, externalIPs, load balancer IPs)");
  c.svc_set->add_option("--internal-traffic-policy", f.int_policy, "Cluster or Local (ClusterIPs)");
  c.svc_set->add_option("--health-check-node-port", f.health_port,
                        "with --external-traffic-policy Local: the port answering 200/503");

  CLI::App* pol = app.add_subcommand("policy", "NetworkPolicy objects");
  pol->require_subcommand(1);
  c.pol_apply = pol->add_subcommand(
      "apply", "write a NetworkPolicy's JSON (namespace and name inside), validated");
  c.pol_apply->add_option("-f", f.file, "file, or - to read stdin")->required();
  c.pol_del = pol->add_subcommand("delete", "delete a NetworkPolicy");
  c.pol_del->add_option("policy", f.policy, "NAMESPACE/NAME")->required();

  c.status = app.add_subcommand("status", "the agent's status (exit 0 when ready)");
  c.status->add_option("--services", f.max_services, "list at most N services")->default_str("50");
  c.status->add_flag("--json", f.json, "print the status as JSON");
  c.health = app.add_subcommand("health", "exit 0 when the agent is ready and healthy");

  return c;
}

// Runs a store command (all but status and health).
int RunStoreCommand(const Commands& c, const Flags& f) {
  absl::StatusOr<std::unique_ptr<agent::Store>> store = OpenStore(f.etcd, f.etcd_tls, f.store_dir);
  if (!store.ok()) return Fail(store.status());
  if (*c.get) return Get(**store, f.what);
  if (*c.put) return Put(**store, f.key, f.value, f.raw);
  if (*c.del) return Delete(**store, f.key);
  if (*c.ns_set) {
    NamespaceChange change;
    if (c.ns_set->count("--isolated") > 0) change.isolated = f.isolated;
    if (c.ns_set->count("--labels") > 0) change.labels = f.labels;
    return NamespaceSet(**store, f.name, change);
  }
  if (*c.svc_set) {
    ServiceChange change;
    if (c.svc_set->count("--cluster-ip") > 0) change.cluster_ips = f.cluster_ips;
    if (c.svc_set->count("--ip-families") > 0) change.families = f.families;
    if (c.svc_set->count("--ip-family-policy") > 0) change.policy = f.family_policy;
    if (c.svc_set->count("--ports") > 0) change.ports = f.ports;
    if (c.svc_set->count("--external-ips") > 0) change.external = f.external_ips;
    if (c.svc_set->count("--load-balancer-ips") > 0) change.lb_ips = f.lb_ips;
    if (c.svc_set->count("--external-traffic-policy") > 0) change.ext_policy = f.ext_policy;
    if (c.svc_set->count("--internal-traffic-policy") > 0) change.int_policy = f.int_policy;
    if (c.svc_set->count("--health-check-node-port") > 0) change.health_port = f.health_port;
    return ServiceSet(**store, f.name, change);
  }
  if (*c.pol_apply) return PolicyApply(**store, f.file);
  return PolicyDelete(**store, f.policy);
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC's own log lines (TLS alerts, reconnects) would bury the one-line error this tool prints
  // with the reason; GRPC_VERBOSITY set by the user still wins.
  setenv("GRPC_VERBOSITY", "NONE", /*overwrite=*/0);
  CLI::App app{"cninetctl: the cluster state in the agent's store, and a node's agent",
               "cninetctl"};
  // No require_subcommand: an unknown command is then named ("... not expected: X").
  app.fallthrough();  // global flags may follow the command, as before
  Flags f;
  auto* etcd = app.add_option(
      "--etcd", f.etcd, "etcd v3 endpoints https://HOST:PORT[,...] (http://... for plain text)");
  cninet::agent_tool::AddEtcdTlsFlags(&app, &f.etcd_tls);
  app.add_option("--store-dir", f.store_dir, "embedded store directory")->excludes(etcd);
  app.add_option("--socket", f.socket, "the agent's local API socket")->default_str(kDefaultSocket);

  Commands c = AddCommands(app, f);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsageError;
  }
  if (app.get_subcommands().empty()) {
    std::cerr << "cninetctl: a command is required\n" << app.help();
    return kUsageError;
  }
  if (*c.status) return Status(f.socket, f.max_services, f.json);
  if (*c.health) return Health(f.socket);

  if (f.etcd.empty() && f.store_dir.empty()) {
    std::cerr << "cninetctl: " << app.get_subcommands()[0]->get_name()
              << " needs --etcd or --store-dir\nRun with --help for more information.\n";
    return kUsageError;
  }
  return RunStoreCommand(c, f);
}
