#include "status_print.h"

#include <algorithm>
#include <string>
#include <vector>

#include "cninet/base/strings.h"

namespace cninet::agent_tool {
namespace {

// Prints rows as columns padded to the widest cell (the last column is not padded).
void Table(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    out << "  ";
    for (size_t i = 0; i < r.size(); ++i) {
      out << r[i];
      if (i + 1 < r.size()) out << std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << "\n";
  }
}

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& v) {
  return StrJoin(v, ",");
}

// The first lines: readiness, addresses, store, maps.
void PrintSummary(const agent::api::AgentStatus& s, std::ostream& out) {
  out << "node " << s.node() << ": " << (s.ready() ? "ready" : "NOT READY") << ", "
      << (s.healthy() ? "healthy" : "UNHEALTHY");
  if (!s.message().empty()) out << " (" << s.message() << ")";
  out << "\n  podCIDR " << s.pod_cidr();
  if (!s.pod_cidr_ipv6().empty()) out << "," << s.pod_cidr_ipv6();
  out << "  uplink " << s.uplink() << " " << Join(s.node_addresses()) << "  vxlan "
      << s.vxlan_device() << "\n  store " << s.store() << " at revision " << s.store_revision()
      << "  maps " << s.pin_dir() << "  reconciles " << s.reconciles() << "  " << s.version()
      << "\n";
  if (!s.socket_lb_cgroup().empty()) {
    out << "  socket LB: cgroup " << s.socket_lb_cgroup() << ", " << s.socket_lb_netns()
        << (s.socket_lb_netns() == 1 ? " namespace" : " namespaces") << "\n";
  }
}

// One row per node with its route from this node.
void PrintNodes(const agent::api::AgentStatus& s, std::ostream& out) {
  out << "\nNODES (" << s.nodes_size() << ")\n";
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "ALIVE", "ADDRESSES", "PODCIDR", "DIRECT", "PUBLIC IP", "VTEP MAC", "ROUTE"}};
  for (const auto& n : s.nodes()) {
    std::vector<std::string> addrs;
    for (const auto& a : n.node().addresses()) addrs.push_back(a.address());
    rows.push_back({n.node().name(), n.alive() ? "yes" : "no", StrJoin(addrs, ","),
                    Join(n.node().pod_cidrs()), n.node().direct_routing() ? "yes" : "no",
                    n.node().public_ip().empty() ? "-" : n.node().public_ip(),
                    n.node().vtep_mac().empty() ? "-" : n.node().vtep_mac(), n.route()});
  }
  Table(rows, out);
}

// The programmed services listed.
void PrintServices(const agent::api::AgentStatus& s, std::ostream& out) {
  out << "\nSERVICES (" << s.services_total() << " programmed";
  if (static_cast<uint32_t>(s.services_size()) < s.services_total()) {
    out << ", first " << s.services_size() << " shown";
  }
  out << ")\n";
  std::vector<std::vector<std::string>> rows = {{"ID", "SERVICE", "FRONTENDS", "BACKENDS"}};
  for (const auto& svc : s.services()) {
    rows.push_back({std::to_string(svc.id()), svc.key(), Join(svc.frontends()),
                    svc.backends().empty() ? "(none: rejected)" : Join(svc.backends())});
  }
  Table(rows, out);
}

// This node's endpoints and whether the datapath has them.
void PrintEndpoints(const agent::api::AgentStatus& s, std::ostream& out) {
  out << "\nLOCAL ENDPOINTS (" << s.endpoints_size() << ")\n";
  std::vector<std::vector<std::string>> rows = {
      {"POD", "ADDRESS", "INTERFACE", "IFINDEX", "MAC", "IN DATAPATH"}};
  for (const auto& e : s.endpoints()) {
    rows.push_back({e.pod(), e.address(), e.interface(), std::to_string(e.ifindex()), e.mac(),
                    e.programmed() ? "yes" : "NO"});
  }
  Table(rows, out);
}

// The non-zero datapath counters.
void PrintCounters(const agent::api::AgentStatus& s, std::ostream& out) {
  out << "\nDATAPATH COUNTERS (non-zero)\n";
  std::vector<std::vector<std::string>> rows = {{"COUNTER", "PACKETS", "BYTES"}};
  for (const auto& c : s.counters()) {
    rows.push_back({c.name() + (c.drop() ? " (drop)" : ""), std::to_string(c.packets()),
                    std::to_string(c.bytes())});
  }
  Table(rows, out);
}

// Policy sizes and the per-rule counters.
void PrintPolicy(const agent::api::AgentStatus& s, std::ostream& out) {
  const auto& pol = s.policy();
  out << "\nPOLICY (" << pol.namespaces() << " namespaces, " << pol.isolated_namespaces()
      << " isolated; " << pol.policies() << " network policies)\n  " << pol.endpoints()
      << " default-deny endpoints, " << pol.entries() << " allow entries, " << pol.identities()
      << " identities, " << pol.prefixes() << " ipBlock prefixes, to-pod on " << pol.hooks()
      << " local pod interfaces; last change " << pol.last_map_writes() << " map writes (compile "
      << pol.last_compile_us() << " us, write " << pol.last_write_us() << " us)\n";
  if (pol.counters_size() > 0) {
    std::vector<std::vector<std::string>> rows = {{"POD", "ADDRESS", "RULE", "PACKETS", "BYTES"}};
    for (const auto& c : pol.counters()) {
      rows.push_back(
          {c.pod(), c.address(), c.rule(), std::to_string(c.packets()), std::to_string(c.bytes())});
    }
    Table(rows, out);
  }
}

// Input skipped as malformed or unusable.
void PrintProblems(const agent::api::AgentStatus& s, std::ostream& out) {
  if (s.problems_size() > 0) {
    out << "\nPROBLEMS (skipped input)\n";
    for (const auto& p : s.problems()) out << "  " << p << "\n";
  }
}

}  // namespace

void PrintStatus(const agent::api::AgentStatus& s, std::ostream& out) {
  PrintSummary(s, out);
  PrintNodes(s, out);
  PrintServices(s, out);
  PrintEndpoints(s, out);
  PrintCounters(s, out);
  PrintPolicy(s, out);
  PrintProblems(s, out);
}

void PrintHealth(const agent::api::HealthReply& h, std::ostream& out) {
  out << (h.ready() ? "ready" : "not ready") << ", " << (h.healthy() ? "healthy" : "unhealthy");
  if (!h.message().empty()) out << ": " << h.message();
  out << "\n";
}

}  // namespace cninet::agent_tool
