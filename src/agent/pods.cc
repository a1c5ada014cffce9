#include "cninet/agent/pods.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "cninet/base/log.h"
#include "cninet/base/strings.h"
#include "cninet/netlink/types.h"

namespace cninet::agent {

using cni::IPAddress;

std::vector<PlannedEndpoint> PlanEndpoints(std::span<const v1::Pod> pods, std::string_view node,
                                           const cni::IPPrefix& pod_cidr,
                                           const LinkIndexFn& link_index,
                                           std::vector<PlanWarning>* warnings) {
  std::vector<const v1::Pod*> ptrs;
  for (const v1::Pod& p : pods) ptrs.push_back(&p);
  return PlanEndpoints(std::span<const v1::Pod* const>(ptrs), node, pod_cidr, link_index, warnings);
}

std::vector<PlannedEndpoint> PlanEndpoints(std::span<const v1::Pod* const> pods,
                                           std::string_view node, const cni::IPPrefix& pod_cidr,
                                           const LinkIndexFn& link_index,
                                           std::vector<PlanWarning>* warnings) {
  return PlanEndpoints(pods, node, std::span<const cni::IPPrefix>(&pod_cidr, 1), link_index,
                       warnings);
}

std::vector<PlannedEndpoint> PlanEndpoints(std::span<const v1::Pod* const> pods,
                                           std::string_view node,
                                           std::span<const cni::IPPrefix> pod_cidrs,
                                           const LinkIndexFn& link_index,
                                           std::vector<PlanWarning>* warnings) {
  std::vector<const v1::Pod*> sorted;
  for (const v1::Pod* p : pods) {
    if (p->node() == node) sorted.push_back(p);
  }
  std::sort(sorted.begin(), sorted.end(), [](const v1::Pod* a, const v1::Pod* b) {
    return std::tie(a->namespace_(), a->name()) < std::tie(b->namespace_(), b->name());
  });
  auto warn = [&](const std::string& pod, std::string msg) {
    if (warnings != nullptr) warnings->push_back({pod, std::move(msg)});
  };
  std::map<IPAddress, std::string> owners;
  std::vector<PlannedEndpoint> out;
  for (const v1::Pod* p : sorted) {
    std::string name = StrCat(p->namespace_(), "/", p->name());
    if (p->interface().empty()) {
      warn(name, "no host-side interface reported; no endpoint");
      continue;
    }
    int index = link_index(p->interface());
    if (index <= 0) {
      warn(name, StrCat("host-side interface ", p->interface(), " does not exist"));
      continue;
    }
    std::array<uint8_t, 6> mac{};
    if (!p->mac().empty()) {
      auto parsed = netlink::MacAddress::Parse(p->mac());
      if (!parsed.ok()) {
        warn(name, StrCat("MAC ", p->mac(), " does not parse"));
        continue;
      }
      mac = parsed->bytes();
    }
    for (const std::string& text : p->ips()) {
      auto ip = IPAddress::Parse(text);
      if (!ip.ok()) continue;
      // The podCIDR of the address's family; none: the node does not serve that family.
      auto cidr = std::find_if(pod_cidrs.begin(), pod_cidrs.end(),
                               [&](const cni::IPPrefix& c) { return c.is_v4() == ip->is_v4(); });
      if (cidr == pod_cidrs.end()) continue;
      if (!cidr->Contains(*ip)) {
        warn(name, StrCat(text, " is outside this node's podCIDR ", cidr->ToString()));
        continue;
      }
      auto [it, inserted] = owners.insert({*ip, name});
      if (!inserted) {
        warn(name, StrCat(text, " is already the address of ", it->second));
        continue;
      }
      PlannedEndpoint e;
      e.pod = name;
      e.endpoint.address = *ip;
      e.endpoint.ifindex = static_cast<uint32_t>(index);
      e.endpoint.mac = mac;
      out.push_back(std::move(e));
    }
  }
  return out;
}

EndpointReconciler::EndpointReconciler(datapath::EndpointTable* table, cni::IPPrefix pod_cidr,
                                       std::function<bool(int)> link_exists)
    : EndpointReconciler(table, std::vector<cni::IPPrefix>{pod_cidr}, std::move(link_exists)) {}

EndpointReconciler::EndpointReconciler(datapath::EndpointTable* table,
                                       std::vector<cni::IPPrefix> pod_cidrs,
                                       std::function<bool(int)> link_exists)
    : table_(table), pod_cidrs_(std::move(pod_cidrs)), link_exists_(std::move(link_exists)) {}

absl::StatusOr<EndpointChanges> EndpointReconciler::Apply(std::span<const PlannedEndpoint> desired,
                                                          const std::set<IPAddress>& forgotten) {
  EndpointChanges ch;
  absl::StatusOr<std::vector<datapath::Endpoint>> have = table_->List();
  if (!have.ok()) return have.status();
  std::map<IPAddress, datapath::Endpoint> current;
  for (const auto& e : *have) current[e.address] = e;
  std::set<IPAddress> wanted;
  absl::Status first = absl::OkStatus();
  for (const PlannedEndpoint& p : desired) {
    const datapath::Endpoint& e = p.endpoint;
    wanted.insert(e.address);
    auto it = current.find(e.address);
    bool mac_known = e.mac != std::array<uint8_t, 6>{};
    if (it != current.end() && it->second.ifindex == e.ifindex &&
        (!mac_known || it->second.mac == e.mac)) {
      ++ch.unchanged;
      continue;
    }
    datapath::Endpoint put = e;
    if (!mac_known && it != current.end()) put.mac = it->second.mac;
    absl::Status st = table_->Upsert(put);
    if (!st.ok()) {
      if (first.ok()) first = st;
      continue;
    }
    ++ch.upserted;
    CNINET_LOG(kInfo, "endpoint ", e.address.ToString(), " -> ifindex ", e.ifindex, " (", p.pod,
               ")");
  }
  for (const auto& [addr, e] : current) {
    bool ours = std::any_of(pod_cidrs_.begin(), pod_cidrs_.end(),
                            [&](const cni::IPPrefix& c) { return c.Contains(addr); });
    if (wanted.count(addr) || !ours) continue;
    if (!forgotten.count(addr) && link_exists_(static_cast<int>(e.ifindex))) continue;
    absl::Status st = table_->Delete(addr);
    if (!st.ok() && !absl::IsNotFound(st)) {
      if (first.ok()) first = st;
      continue;
    }
    ++ch.deleted;
    CNINET_LOG(kInfo, "endpoint ", addr.ToString(), " removed");
  }
  if (!first.ok()) return first;
  return ch;
}

}  // namespace cninet::agent
