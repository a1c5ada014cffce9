#include "plugin_env.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "cninet/base/strings.h"

namespace cninet::testing {

std::string OurPlugin(std::string_view name) {
  return cninet::StrCat(CNINET_PLUGIN_DIR, "/", name);
}
std::string RefPlugin(std::string_view name) { return cninet::StrCat("/usr/lib/cni/", name); }

bool HaveCninetHostLocal() {
#ifdef CNINET_HAVE_HOST_LOCAL
  return true;
#else
  return false;
#endif
}

Node::Node() {
  auto n = netlink::NamedNetns::Create(UniqueName("pnode"));
  if (!n.ok()) {
    ADD_FAILURE() << "node namespace: " << n.status();
    return;
  }
  ns_ = std::make_unique<netlink::NamedNetns>(std::move(*n));
  auto h = netlink::Handle::OpenIn(ns_->ns());
  if (!h.ok()) {
    ADD_FAILURE() << "node handle: " << h.status();
    return;
  }
  h_ = std::make_unique<netlink::Handle>(std::move(*h));
}

Pod Node::NewPod() {
  Pod p;
  auto n = netlink::NamedNetns::Create(UniqueName("ppod"));
  if (!n.ok()) {
    ADD_FAILURE() << "pod namespace: " << n.status();
    return p;
  }
  p.ns = std::make_unique<netlink::NamedNetns>(std::move(*n));
  auto h = netlink::Handle::OpenIn(p.ns->ns());
  if (!h.ok()) {
    ADD_FAILURE() << "pod handle: " << h.status();
    return p;
  }
  p.h = std::make_unique<netlink::Handle>(std::move(*h));
  return p;
}

PluginRun Node::Exec(const std::string& binary, std::string_view command,
                     std::string_view container_id, const std::string& netns,
                     std::string_view config, std::string_view ifname, std::string_view cni_args,
                     std::string path) {
  PluginCall call;
  call.command = std::string(command);
  call.container_id = std::string(container_id);
  call.netns = netns;
  call.ifname = std::string(ifname);
  call.args = std::string(cni_args);
  if (!path.empty()) call.path = std::move(path);
  PluginRun run;
  run.raw = RunCniPlugin(binary, call, config, ns_->name());
  if (run.raw.ok()) {
    run.status = absl::OkStatus();
    if (command == "ADD") run.result = cni::Result::Parse(run.raw.out);
  } else {
    run.status = cni::ErrorFromJson(run.raw.out);
    run.result = run.status;
  }
  return run;
}

nlohmann::json HostLocalIpam(const std::string& data_dir, std::string_view ranges,
                             std::string_view routes, std::string_view type) {
  return {{"type", std::string(type)},
          {"dataDir", data_dir},
          {"ranges", nlohmann::json::parse(ranges)},
          {"routes", nlohmann::json::parse(routes)}};
}

namespace {

std::map<int, std::string> LinkNames(netlink::Handle& h) {
  std::map<int, std::string> names;
  if (auto links = h.ListLinks(); links.ok()) {
    for (const auto& l : *links) names[l.index] = l.name;
  }
  return names;
}

std::string RouteText(const netlink::Route& r, const std::map<int, std::string>& names,
                      std::string_view dev_override = {}) {
  std::string dev;
  if (!dev_override.empty()) {
    dev = std::string(dev_override);
  } else if (auto it = names.find(r.oif); it != names.end()) {
    dev = it->second;
  } else {
    dev = cninet::StrCat("#", r.oif);
  }
  return cninet::StrCat(
      "route ", r.dst.ToString(), r.gateway ? " via " + r.gateway->ToString() : "", " dev ", dev,
      " scope ", static_cast<int>(r.scope.value_or(0)), " table ", r.table, " metric ", r.metric,
      r.src ? " src " + r.src->ToString() : "", r.mtu ? cninet::StrCat(" mtu ", r.mtu) : "",
      " proto ", static_cast<int>(r.protocol), " type ", static_cast<int>(r.type),
      r.onlink ? " onlink" : "");
}

bool IsLinkLocal6(const cni::IPPrefix& p) {
  return p.address().is_v6() && p.address().bytes()[0] == 0xfe &&
         (p.address().bytes()[1] & 0xc0) == 0x80;
}

}  // namespace

std::vector<std::string> PodView(netlink::Handle& h, std::string_view ifname) {
  std::vector<std::string> out;
  auto link = h.GetLink(ifname);
  if (!link.ok()) return {cninet::StrCat("no link ", ifname, ": ", link.status().ToString())};
  out.push_back(cninet::StrCat("link ", link->name, " kind ", link->kind, " mtu ", link->mtu,
                               link->admin_up ? " up" : " down"));
  if (auto addrs = h.ListAddresses(link->index); addrs.ok()) {
    for (const auto& a : *addrs) {
      if (IsLinkLocal6(a.prefix)) continue;
      out.push_back(cninet::StrCat("addr ", a.prefix.ToString(), " scope ",
                                   static_cast<int>(a.scope), " flags 0x", absl::Hex(a.flags)));
    }
  }
  auto names = LinkNames(h);
  if (auto routes = h.ListRoutes({.table = netlink::kTableMain}); routes.ok()) {
    for (const auto& r : *routes) out.push_back(RouteText(r, names));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> NodeView(netlink::Handle& h) {
  std::vector<std::string> out;
  auto names = LinkNames(h);
  if (auto links = h.ListLinks(); links.ok()) {
    for (const auto& l : *links) {
      std::string master = l.master_index ? names[l.master_index] : "-";
      out.push_back(cninet::StrCat("link ", l.name, " kind ", l.kind, " master ", master));
    }
  }
  if (auto addrs = h.ListAddresses(); addrs.ok()) {
    for (const auto& a : *addrs) {
      if (IsLinkLocal6(a.prefix)) continue;
      out.push_back(cninet::StrCat("addr ", a.prefix.ToString(), " dev ", names[a.ifindex]));
    }
  }
  if (auto routes = h.ListRoutes({.table = 0}); routes.ok()) {
    for (const auto& r : *routes) {
      if (r.table == 255) continue;  // "local": follows the addresses listed above.
      if (r.dst.address().is_v6() && IsLinkLocal6(r.dst)) continue;
      out.push_back(RouteText(r, names));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Leases(const std::string& data_dir, std::string_view network) {
  std::vector<std::string> out;
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(data_dir) / std::string(network);
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (cni::IPAddress::Parse(name).ok()) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json NormalizedResult(const std::string& stdout_json) {
  nlohmann::json j = nlohmann::json::parse(stdout_json, nullptr, false);
  if (!j.is_object()) return j;
  if (j.contains("interfaces")) {
    for (auto& itf : j["interfaces"]) {
      if (itf.contains("mac")) itf["mac"] = "<mac>";
      if (itf.contains("sandbox")) itf["sandbox"] = "<sandbox>";
      if (itf.contains("name") && itf["name"].get<std::string>().rfind("veth", 0) == 0) {
        itf["name"] = "<veth>";
      }
    }
  }
  if (j.contains("dns") && j["dns"].is_object() && j["dns"].empty()) j.erase("dns");
  return j;
}

}  // namespace cninet::testing
