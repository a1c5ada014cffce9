#include "status_builder.h"

#include "cninet/base/strings.h"
#include "cninet/datapath/service_table.h"
#include "cninet/netlink/netlink.h"

namespace cninet::agent {

namespace dp = ::cninet::datapath;

// "10.96.0.10:80/tcp", "[fd00:10:96::10]:80/tcp", "external:...", "nodePort:30080/tcp" (IPv4)
// or "nodePort:[::]:30080/tcp" (IPv6).
std::string FrontendString(const dp::Frontend& f) {
  std::string proto = dp::ToString(f.protocol);
  std::string addr =
      f.address.is_v6() ? StrCat("[", f.address.ToString(), "]") : f.address.ToString();
  switch (f.kind) {
    case dp::FrontendKind::kNodePort:
      if (f.address.is_v6()) return StrCat("nodePort:[::]:", f.port, "/", proto);
      return StrCat("nodePort:", f.port, "/", proto);
    case dp::FrontendKind::kExternalIP:
      return StrCat("external:", addr, ":", f.port, "/", proto);
    default:
      return StrCat(addr, ":", f.port, "/", proto);
  }
}

void FillHealth(const HealthInputs& in, api::AgentStatus* s) {
  std::vector<std::string> why;
  if (!in.ready) why.push_back(in.synced ? "first reconcile pending" : "store not synced yet");
  if (!in.last_error.empty()) why.push_back(in.last_error);
  if (in.heartbeat_lost) why.push_back("heartbeat lease lost");
  if (in.self_removed) why.push_back("this node's object was deleted from the store");
  for (const absl::Status& ws : in.watches) {
    if (!ws.ok()) why.push_back(StrCat("store: ", ws.message()));
  }
  s->set_ready(in.ready);
  s->set_healthy(in.ready && why.empty());
  s->set_message(StrJoin(why, "; "));
}

void AddNodes(const Snapshot& snapshot, const OverlayPlan& plan, std::string_view self,
              api::AgentStatus* s) {
  // The IPv4 route first ("vxlan via ..." / "direct via ..."), then "; IPv6 ..." when planned.
  std::map<std::string, std::string> routes;
  for (const OverlayPeer& p : plan.peers) {
    std::string text = p.mode == PeerMode::kDirect ? StrCat("direct via ", p.gateway.ToString())
                                                   : StrCat("vxlan via ", p.vtep.ToString(), " (",
                                                            p.vtep_mac.ToString(), ")");
    if (p.pod_cidr.is_v4()) {
      routes[p.node] = text + routes[p.node];
    } else {
      routes[p.node] += StrCat("; IPv6 ", text);
    }
  }
  for (const SkippedPeer& sp : plan.skipped) {
    if (sp.reason.rfind("IPv6: ", 0) == 0) {
      routes[sp.node] += StrCat("; IPv6 skipped: ", sp.reason.substr(6));
    } else {
      routes[sp.node] = StrCat("skipped: ", sp.reason);
    }
  }
  for (const auto& np : snapshot.Get<v1::Node>()) {
    const v1::Node& n = *np;
    api::NodeStatus* ns = s->add_nodes();
    *ns->mutable_node() = n;
    ns->set_alive(snapshot.alive.count(n.name()) > 0);
    if (n.name() == self) {
      ns->set_route("self");
    } else if (auto it = routes.find(n.name()); it != routes.end()) {
      ns->set_route(it->second);
    } else {
      ns->set_route("not planned yet");
    }
  }
}

void AddServices(const std::map<uint32_t, ProgrammedService>& programmed, uint32_t max_services,
                 api::AgentStatus* s) {
  s->set_services_total(static_cast<uint32_t>(programmed.size()));
  for (const auto& [id, prog] : programmed) {
    if (static_cast<uint32_t>(s->services_size()) >= max_services) break;
    api::ServiceStatus* ss = s->add_services();
    ss->set_id(id);
    ss->set_key(prog.key.name.empty() ? "(recovered)" : prog.key.ToString());
    for (const auto& f : prog.service.frontends) ss->add_frontends(FrontendString(f));
    for (const auto& b : prog.service.backends) ss->add_backends(b.ToString());
  }
}

void AddEndpoints(std::span<const PlannedEndpoint> planned, std::span<const dp::Endpoint> table,
                  const Snapshot& snapshot, api::AgentStatus* s) {
  std::map<cni::IPAddress, const dp::Endpoint*> by_address;
  for (const dp::Endpoint& e : table) by_address[e.address] = &e;
  std::map<std::string, std::string> interfaces;  // "namespace/name" -> interface
  for (const auto& p : snapshot.Get<v1::Pod>()) {
    interfaces[StrCat(p->namespace_(), "/", p->name())] = p->interface();
  }
  for (const PlannedEndpoint& pe : planned) {
    api::EndpointStatus* es = s->add_endpoints();
    es->set_pod(pe.pod);
    es->set_address(pe.endpoint.address.ToString());
    es->set_ifindex(pe.endpoint.ifindex);
    es->set_mac(netlink::MacAddress(pe.endpoint.mac).ToString());
    if (auto it = interfaces.find(pe.pod); it != interfaces.end()) es->set_interface(it->second);
    auto it = by_address.find(pe.endpoint.address);
    es->set_programmed(it != by_address.end() && it->second->ifindex == pe.endpoint.ifindex);
  }
}

void AddCounters(std::span<const dp::CounterValue> counters, api::AgentStatus* s) {
  for (const auto& c : counters) {
    if (c.packets == 0) continue;
    api::CounterStatus* cs = s->add_counters();
    cs->set_name(std::string(c.name));
    cs->set_packets(c.packets);
    cs->set_bytes(c.bytes);
    cs->set_drop(c.is_drop);
  }
}

void AddProblems(std::span<const std::string> problems, api::AgentStatus* s) {
  for (const std::string& p : problems) {
    if (static_cast<size_t>(s->problems_size()) >= kMaxStatusProblems) break;
    s->add_problems(p);
  }
}

void FillPolicyStatus(const PolicyReconcilerStatus& st, std::span<const dp::PolicyCounter> counters,
                      api::PolicyStatus* ps) {
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
  for (const dp::PolicyCounter& c : counters) {
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

}  // namespace cninet::agent
