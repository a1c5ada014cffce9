// cninet-agent-cni: a chained CNI plugin that reports pods to the node's cninet-agent (its local
// API), so the agent stores them (/cninet/v1/pods/NS/NAME) and keeps their datapath endpoints.
// Chained after an interface plugin and cninet-ebpf in the conflist the agent writes.
//
// Config keys: "socket" (the agent's local API, default /run/cninet/agent.sock).
// ADD: prevResult -> Pod {namespace, name from CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME
//      (default "default" / the container ID), IPs, host-side veth, pod MAC, container ID};
//      the agent being unreachable is error 11 (try again later); prevResult is passed on.
// DEL: the agent forgets the container's pod (idempotent; unreachable agent: error 11).
// CHECK: the agent knows the pod. GC: the agent forgets this node's pods whose container is not
// in cni.dev/valid-attachments. STATUS: the agent is ready (else 50).
#include <algorithm>
#include <cctype>

#include "cninet/agent/local_api.h"
#include "cninet/cni/cni.h"
#include "cninet/netlink/netlink.h"

namespace {

namespace agent = ::cninet::agent;
namespace cni = ::cninet::cni;
namespace nl = ::cninet::netlink;
using cninet::StrCat;

// The agent's local API socket: "socket", default /run/cninet/agent.sock.
absl::StatusOr<std::string> SocketOf(const cni::NetConf& conf) {
  return cni::ConfigReader(conf.raw).Optional<std::string>("socket", "/run/cninet/agent.sock");
}

// A DNS-1123 name made from a container ID (the pod name when the runtime gives none).
std::string NameFromContainerId(const std::string& id) {
  std::string out;
  for (char c : id) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::isalnum(static_cast<unsigned char>(l)) || l == '-' || l == '.') out.push_back(l);
    if (out.size() >= 63) break;
  }
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) out.pop_back();
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
  return out.empty() ? "pod" : out;
}

absl::Status AgentError(const absl::Status& st, std::string_view what) {
  if (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) {
    return cni::CniError(cni::ErrorCode::kTryAgainLater,
                         StrCat("cninet-agent-cni: ", what, ": ", st.message()));
  }
  return cni::CniError(cni::ErrorCode::kPluginSpecific,
                       StrCat("cninet-agent-cni: ", what, ": ", st.message()));
}

class AgentReportPlugin : public cni::Plugin {
 public:
  absl::StatusOr<cni::Result> Add(const cni::CmdArgs& args) override {
    if (!args.conf.prev_result) {
      return cni::CniError(cni::ErrorCode::kInvalidConfig,
                           "cninet-agent-cni is a chained plugin: it needs a prevResult");
    }
    const cni::Result& prev = *args.conf.prev_result;
    cninet::v1::Pod pod;
    pod.set_namespace_(args.args.Get("K8S_POD_NAMESPACE").value_or("default"));
    pod.set_name(args.args.Get("K8S_POD_NAME").value_or(NameFromContainerId(args.container_id)));
    pod.set_container_id(args.container_id);
    pod.set_pod_interface(args.ifname);
    int container_index = -1;
    for (size_t i = 0; i < prev.interfaces.size(); ++i) {
      const cni::Interface& iface = prev.interfaces[i];
      if (!iface.sandbox.empty() && iface.name == args.ifname) {
        container_index = static_cast<int>(i);
        pod.set_mac(iface.mac);
      }
    }
    for (const cni::IPConfig& ip : prev.ips) {
      if (container_index >= 0 && ip.interface && *ip.interface != container_index) continue;
      pod.add_ips(ip.address.address().ToString());
    }
    // The host side of the pod's veth: listed without a sandbox by the interface plugins.
    auto host = nl::Handle::Open();
    if (host.ok()) {
      for (const cni::Interface& iface : prev.interfaces) {
        if (!iface.sandbox.empty()) continue;
        auto link = host->GetLink(iface.name);
        if (link.ok() && link->kind == "veth") pod.set_interface(link->name);
      }
    }
    if (pod.interface().empty()) {
      return cni::CniError(cni::ErrorCode::kPluginSpecific,
                           "cninet-agent-cni: prevResult lists no host-side veth");
    }
    CNINET_ASSIGN_OR_RETURN(std::string socket, SocketOf(args.conf));
    absl::Status st = agent::ReportPodToAgent(socket, pod);
    if (!st.ok()) return AgentError(st, "report the pod to the agent");
    return prev;
  }

  absl::Status Del(const cni::CmdArgs& args) override {
    agent::api::ForgetPodRequest req;
    req.set_container_id(args.container_id);
    CNINET_ASSIGN_OR_RETURN(std::string socket, SocketOf(args.conf));
    absl::Status st = agent::ForgetPodAtAgent(socket, req);
    if (!st.ok()) return AgentError(st, "tell the agent the pod is gone");
    return absl::OkStatus();
  }

  absl::Status Gc(const cni::CmdArgs& args) override {
    agent::api::GcPodsRequest req;
    for (const cni::GcAttachment& a : args.valid_attachments)
      req.add_valid_container_ids(a.container_id);
    CNINET_ASSIGN_OR_RETURN(std::string socket, SocketOf(args.conf));
    absl::Status st = agent::GcPodsAtAgent(socket, req);
    if (!st.ok()) return AgentError(st, "garbage-collect pods at the agent");
    return absl::OkStatus();
  }

  absl::Status Check(const cni::CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(std::string socket, SocketOf(args.conf));
    auto s = agent::QueryAgentStatus(socket, 1);
    if (!s.ok()) return AgentError(s.status(), "query the agent");
    std::string name =
        args.args.Get("K8S_POD_NAME").value_or(NameFromContainerId(args.container_id));
    std::string ns = args.args.Get("K8S_POD_NAMESPACE").value_or("default");
    bool known = std::any_of(s->endpoints().begin(), s->endpoints().end(),
                             [&](const auto& e) { return e.pod() == StrCat(ns, "/", name); });
    if (!known) {
      return cni::CniError(
          cni::ErrorCode::kPluginSpecific,
          StrCat("cninet-agent-cni: the agent has no endpoint for ", ns, "/", name));
    }
    return absl::OkStatus();
  }

  absl::Status Status(const cni::CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(std::string socket, SocketOf(args.conf));
    auto h = agent::QueryAgentHealth(socket);
    if (!h.ok() || !h->ready()) {
      return cni::CniError(cni::ErrorCode::kNotAvailable,
                           StrCat("cninet-agent-cni: agent not ready: ",
                                  h.ok() ? h->message() : std::string(h.status().message())));
    }
    return absl::OkStatus();
  }
};

}  // namespace

int main() {
  AgentReportPlugin plugin;
  return cni::PluginMain(plugin, {.about = "reports pods to the node's cninet-agent"});
}
