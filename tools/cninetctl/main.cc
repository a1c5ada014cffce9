// cninetctl: reads and writes the cluster state in the agent's store (etcd or an embedded store
// directory) as an operator would, and queries a node's agent.
//
//   cninetctl [--etcd EP | --store-dir DIR] get [KIND|PREFIX|KEY]
//   cninetctl [--etcd EP | --store-dir DIR] put KEY VALUE|-      (value validated for its kind)
//   cninetctl [--etcd EP | --store-dir DIR] del KEY
//   cninetctl [--etcd EP | --store-dir DIR] namespace set NAME [--isolated[=true|false]]
//             [--labels k=v,...]
//   cninetctl [--etcd EP | --store-dir DIR] policy apply -f FILE|-   (a NetworkPolicy's JSON)
//   cninetctl [--etcd EP | --store-dir DIR] policy delete NAMESPACE/NAME
//   cninetctl [--socket PATH] status [--services N] [--json] | health
//
// KIND is nodes, pods, services, endpoints, namespaces, networkpolicies, podcidrs, heartbeats,
// config.
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cninet/agent/embedded_store.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "status_print.h"

namespace {

namespace agent = ::cninet::agent;
using cninet::StrCat;

constexpr char kUsage[] = R"(usage:
  cninetctl [--etcd EP[,EP]|--store-dir DIR] get [KIND|PREFIX|KEY]
  cninetctl [--etcd EP[,EP]|--store-dir DIR] put KEY VALUE|-   (- reads stdin; --raw skips checks)
  cninetctl [--etcd EP[,EP]|--store-dir DIR] del KEY
  cninetctl [--etcd EP[,EP]|--store-dir DIR] namespace set NAME [--isolated[=true|false]]
            [--labels k=v,...]      (creates the Namespace or updates the given fields)
  cninetctl [--etcd EP[,EP]|--store-dir DIR] policy apply -f FILE|-   (NetworkPolicy JSON with
            namespace and name; validated, written to /cninet/v1/networkpolicies/NS/NAME)
  cninetctl [--etcd EP[,EP]|--store-dir DIR] policy delete NAMESPACE/NAME
  cninetctl [--socket PATH] status [--services N] [--json]
  cninetctl [--socket PATH] health
KIND: nodes pods services endpoints namespaces networkpolicies podcidrs heartbeats config
)";

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

// namespace set NAME [--isolated[=true|false]] [--labels k=v,...]: read-modify-write of the
// Namespace object (created when absent), retried when another writer got in between.
int NamespaceSet(agent::Store& store, const std::string& name,
                 std::map<std::string, std::string>& flags) {
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
    if (auto it = flags.find("--isolated"); it != flags.end()) {
      if (it->second != "1" && it->second != "true" && it->second != "false") {
        return Fail(absl::InvalidArgumentError("--isolated takes true or false"));
      }
      ns.set_isolated(it->second != "false");
    }
    if (auto it = flags.find("--labels"); it != flags.end()) {
      ns.clear_labels();
      for (auto part : absl::StrSplit(cninet::ToAbsl(it->second), ',', absl::SkipEmpty())) {
        std::vector<std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
        if (kv.size() != 2 || kv[0].empty()) {
          return Fail(absl::InvalidArgumentError(StrCat("label \"", part, "\" is not k=v")));
        }
        (*ns.mutable_labels())[kv[0]] = kv[1];
      }
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

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--raw" || a == "--json" || a == "--help" || a == "--isolated") {
      flags[a] = "1";
    } else if (a == "-f" && i + 1 < argc) {
      flags[a] = argv[++i];
    } else if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      if (eq != std::string::npos) {
        flags[a.substr(0, eq)] = a.substr(eq + 1);
      } else if (i + 1 < argc) {
        flags[a] = argv[++i];
      } else {
        std::cerr << kUsage;
        return 2;
      }
    } else {
      pos.push_back(a);
    }
  }
  if (pos.empty() || flags.count("--help")) {
    std::cerr << kUsage;
    return flags.count("--help") ? 0 : 2;
  }
  const std::string cmd = pos[0];
  std::string socket = flags.count("--socket") ? flags["--socket"] : "/run/cninet/agent.sock";
  if (cmd == "status") {
    uint32_t max = 50;
    if (flags.count("--services"))
      (void)absl::SimpleAtoi(cninet::ToAbsl(flags["--services"]), &max);
    auto s = agent::QueryAgentStatus(socket, max);
    if (!s.ok()) return Fail(s.status());
    if (flags.count("--json")) {
      std::cout << agent::EncodeJson(*s).value_or("{}") << "\n";
    } else {
      cninet::agent_tool::PrintStatus(*s, std::cout);
    }
    return s->ready() ? 0 : 1;
  }
  if (cmd == "health") {
    auto h = agent::QueryAgentHealth(socket);
    if (!h.ok()) return Fail(h.status());
    cninet::agent_tool::PrintHealth(*h, std::cout);
    return h->ready() && h->healthy() ? 0 : 1;
  }

  std::unique_ptr<agent::Store> store;
  if (flags.count("--etcd")) {
    agent::EtcdStoreOptions o;
    for (auto part : absl::StrSplit(cninet::ToAbsl(flags["--etcd"]), ',', absl::SkipEmpty())) {
      o.endpoints.emplace_back(part);
    }
    auto s = agent::OpenEtcdStore(o);
    if (!s.ok()) return Fail(s.status());
    store = *std::move(s);
  } else if (flags.count("--store-dir")) {
    agent::EmbeddedStoreOptions o;
    o.dir = flags["--store-dir"];
    auto s = agent::OpenEmbeddedStore(o);
    if (!s.ok()) return Fail(s.status());
    store = *std::move(s);
  } else {
    std::cerr << "cninetctl: " << cmd << " needs --etcd or --store-dir\n" << kUsage;
    return 2;
  }

  if (cmd == "get") {
    std::string what = pos.size() > 1 ? pos[1] : std::string(agent::kKeyRoot);
    if (auto it = kKinds.find(what); it != kKinds.end()) {
      what = std::string(agent::KeyPrefix(it->second));
    }
    auto list = store->List(what);
    if (!list.ok()) return Fail(list.status());
    for (const auto& kv : list->kvs) std::cout << kv.key << " " << kv.value << "\n";
    return 0;
  }
  if (cmd == "put") {
    if (pos.size() < 3) {
      std::cerr << kUsage;
      return 2;
    }
    std::string key = pos[1], value = pos[2];
    if (value == "-") {
      value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    if (!flags.count("--raw")) {
      std::optional<agent::ObjectKind> kind = KindOfKey(key);
      if (!kind) {
        return Fail(
            absl::InvalidArgumentError(StrCat(key, " is not a cninet key (", agent::kKeyRoot,
                                              "<kind>/...); --raw writes it anyway")));
      }
      auto msg = NewMessage(*kind);
      if (absl::Status st = agent::DecodeObject(*kind, key, value, msg.get()); !st.ok()) {
        return Fail(st);
      }
    }
    auto rev = store->Put(key, value);
    if (!rev.ok()) return Fail(rev.status());
    std::cout << "revision " << *rev << "\n";
    return 0;
  }
  if (cmd == "del") {
    if (pos.size() < 2) {
      std::cerr << kUsage;
      return 2;
    }
    auto existed = store->Delete(pos[1]);
    if (!existed.ok()) return Fail(existed.status());
    std::cout << (*existed ? "deleted\n" : "not found\n");
    return 0;
  }
  if (cmd == "namespace" && pos.size() == 3 && pos[1] == "set") {
    return NamespaceSet(*store, pos[2], flags);
  }
  if (cmd == "policy" && pos.size() == 2 && pos[1] == "apply" && flags.count("-f")) {
    return PolicyApply(*store, flags["-f"]);
  }
  if (cmd == "policy" && pos.size() == 3 && pos[1] == "delete") {
    size_t slash = pos[2].find('/');
    if (slash == std::string::npos) return Fail(absl::InvalidArgumentError("NAMESPACE/NAME"));
    auto existed = store->Delete(
        agent::keys::NetworkPolicy(pos[2].substr(0, slash), pos[2].substr(slash + 1)));
    if (!existed.ok()) return Fail(existed.status());
    std::cout << (*existed ? "deleted\n" : "not found\n");
    return 0;
  }
  std::cerr << "cninetctl: unknown command " << cmd << "\n" << kUsage;
  return 2;
}
