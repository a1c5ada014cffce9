#include "cninet/netlink/attach.h"

#include <sys/socket.h>

#include <system_error>
#include <thread>
#include <utility>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/config_reader.h"
#include "cninet/cni/error.h"
#include "cninet/cni/exec.h"
#include "cninet/netlink/sysctl.h"

namespace cninet::netlink {

using cni::CniError;
using cni::ErrorCode;

absl::StatusOr<std::optional<MacAddress>> RequestedMac(const cni::CmdArgs& args) {
  std::optional<std::string> text;
  std::string source;
  if (auto mac = args.args.Get("MAC"); mac && !mac->empty()) {
    text = *mac;
    source = "CNI_ARGS MAC";
  }
  const nlohmann::json& raw = args.conf.raw;
  if (auto a = raw.find("args"); a != raw.end() && a->is_object()) {
    if (auto c = a->find("cni"); c != a->end() && c->is_object()) {
      if (auto m = c->find("mac"); m != c->end()) {
        if (!m->is_string())
          return CniError(ErrorCode::kInvalidConfig, "args.cni.mac must be a string");
        if (!m->get<std::string>().empty()) {
          text = m->get<std::string>();
          source = "args.cni.mac";
        }
      }
    }
  }
  if (auto m = args.conf.runtime_config.find("mac"); m != args.conf.runtime_config.end()) {
    if (!m->is_string())
      return CniError(ErrorCode::kInvalidConfig, "runtimeConfig.mac must be a string");
    if (!m->get<std::string>().empty()) {
      text = m->get<std::string>();
      source = "runtimeConfig.mac";
    }
  }
  if (!text) return std::optional<MacAddress>();
  auto mac = MacAddress::Parse(*text);
  if (!mac.ok() || mac->IsZero() || !mac->IsUnicast()) {
    return CniError(ErrorCode::kInvalidConfig,
                    cninet::StrCat(source, " \"", *text, "\" is not a unicast MAC address"));
  }
  return std::optional<MacAddress>(*mac);
}

absl::StatusOr<Link> CreatePodVeth(Handle& host, Netns& pod_ns, const cni::CmdArgs& args,
                                   uint32_t mtu, std::optional<MacAddress> mac,
                                   Rollback& rollback) {
  std::string host_name = VethNameFor(args.container_id, args.ifname);
  CNINET_ASSIGN_OR_RETURN(Link host_veth, host.CreateVeth({.name = host_name,
                                                           .peer_name = args.ifname,
                                                           .peer_netns = &pod_ns,
                                                           .mtu = mtu,
                                                           .peer_mac = mac}));
  rollback.Add(cninet::StrCat("veth ", host_name), [&host, index = host_veth.index] {
    absl::Status st = host.DeleteLink(index);
    return absl::IsNotFound(st) ? absl::OkStatus() : st;
  });
  return host_veth;
}

absl::StatusOr<uint32_t> ConfigMtu(const nlohmann::json& conf) {
  cni::ConfigReader reader(conf);
  CNINET_ASSIGN_OR_RETURN(uint32_t mtu, reader.Optional<uint32_t>("mtu", 0));
  if (mtu != 0 && (mtu < 68 || mtu > 65535)) {
    return reader.At("mtu").Error(cninet::StrCat(mtu, " is outside 68..65535"));
  }
  return mtu;
}

absl::Status PreparePodInterfaceSysctls(std::string_view ifname, bool has_ipv6, bool dad,
                                        bool arp_notify) {
  if (has_ipv6) {
    // The kernel removes a device's IPv6 configuration when IPv6 cannot run on it (MTU below
    // 1280, or disabled for the namespace): say so instead of failing on a missing file.
    if (!GetSysctl(cninet::StrCat("net/ipv6/conf/", ifname, "/disable_ipv6")).ok()) {
      return absl::FailedPreconditionError(cninet::StrCat("IPv6 is not available on ", ifname,
                                                          " (MTU below 1280, or IPv6 disabled)"));
    }
    for (std::string_view dev : {std::string_view("lo"), ifname}) {
      std::string key = cninet::StrCat("net/ipv6/conf/", dev, "/disable_ipv6");
      auto v = GetSysctl(key);
      if (v.ok() && *v != "0") CNINET_RETURN_IF_ERROR(SetSysctl(key, "0"));
    }
  }
  // Missing IPv6 support (no net/ipv6) is not an error for IPv4-only pods.
  absl::Status dad_st =
      SetSysctl(cninet::StrCat("net/ipv6/conf/", ifname, "/accept_dad"), dad ? "1" : "0");
  if (!dad_st.ok() && has_ipv6) return dad_st;
  if (arp_notify) {
    CNINET_RETURN_IF_ERROR(SetSysctl(cninet::StrCat("net/ipv4/conf/", ifname, "/arp_notify"), "1"));
  }
  return absl::OkStatus();
}

std::optional<cni::IPAddress> FirstGateway(const std::vector<cni::IPConfig>& ips, bool v4) {
  for (const auto& ip : ips) {
    if (ip.address.is_v4() == v4 && ip.gateway) return ip.gateway;
  }
  return std::nullopt;
}

absl::Status ConfigureInterface(Handle& h, const Link& link, const std::vector<cni::IPConfig>& ips,
                                const std::vector<cni::Route>& routes) {
  CNINET_RETURN_IF_ERROR(h.SetLinkUp(link.index));
  bool has_v6 = false;
  for (const auto& ip : ips) {
    CNINET_RETURN_IF_ERROR(h.AddAddress(link.index, ip.address));
    has_v6 |= !ip.address.is_v4();
  }
  // Routes with an IPv6 source or gateway need the addresses usable first.
  if (has_v6) CNINET_RETURN_IF_ERROR(WaitAddressesSettled(h, link.index, std::chrono::seconds(10)));
  std::optional<cni::IPAddress> v4gw = FirstGateway(ips, true), v6gw = FirstGateway(ips, false);
  for (const auto& r : routes) {
    Route route = RouteFromCni(r, link.index);
    if (!route.gateway) route.gateway = r.dst.is_v4() ? v4gw : v6gw;
    CNINET_RETURN_IF_ERROR(h.AddRoute(route));
  }
  return absl::OkStatus();
}

absl::Status WaitOperUp(Handle& h, int ifindex, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::milliseconds pause(1);
  for (;;) {
    CNINET_ASSIGN_OR_RETURN(Link l, h.GetLinkByIndex(ifindex));
    constexpr uint8_t kOperUnknown = 0, kOperUp = 6;
    if (l.oper_state == kOperUp || l.oper_state == kOperUnknown) return absl::OkStatus();
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(cninet::StrCat(
          "link ", l.name, " did not come up (operstate ", static_cast<int>(l.oper_state), ")"));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
}

absl::Status WaitAddressesSettled(Handle& h, int ifindex, std::chrono::milliseconds timeout) {
  constexpr uint32_t kTentative = 0x40, kDadFailed = 0x08;  // IFA_F_TENTATIVE, IFA_F_DADFAILED
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::microseconds pause(200);
  for (;;) {
    CNINET_ASSIGN_OR_RETURN(auto addrs, h.ListAddresses(ifindex, AF_INET6));
    bool tentative = false;
    for (const auto& a : addrs) {
      if (a.flags & kDadFailed) {
        return absl::AlreadyExistsError(
            cninet::StrCat("duplicate address detection failed for ", a.prefix.ToString()));
      }
      tentative |= (a.flags & kTentative) != 0 && a.scope == kScopeUniverse;
    }
    if (!tentative) return absl::OkStatus();
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError("IPv6 addresses are still tentative");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(50000));
  }
}

absl::Status CheckNetnsUnchanged(std::string_view path, const Netns& ns) {
  auto now = Netns::Open(path);
  if (!now.ok() || !now->SameAs(ns)) {
    return CniError(
        ErrorCode::kUnknownContainer,
        cninet::StrCat("network namespace ", path, " was removed while the plugin ran"));
  }
  return absl::OkStatus();
}

absl::Status CheckAddresses(Handle& h, const Link& link, const std::vector<cni::IPConfig>& ips,
                            int iface_index) {
  CNINET_ASSIGN_OR_RETURN(auto addrs, h.ListAddresses(link.index));
  for (const auto& ip : ips) {
    if (ip.interface && *ip.interface != iface_index) continue;
    bool found = false;
    for (const auto& a : addrs) found |= a.prefix == ip.address;
    if (!found) {
      return CniError(ErrorCode::kCheckMismatch,
                      cninet::StrCat("address ", ip.address.ToString(), " is not on ", link.name));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRoutes(Handle& h, const std::vector<cni::Route>& routes) {
  if (routes.empty()) return absl::OkStatus();
  CNINET_ASSIGN_OR_RETURN(auto have, h.ListRoutes({.table = 0}));
  for (const auto& want : routes) {
    bool found = false;
    for (const auto& r : have) {
      if (r.dst.Masked() != want.dst.Masked()) continue;
      if (want.gw && r.gateway != want.gw) continue;
      found = true;
      break;
    }
    if (!found) {
      return CniError(ErrorCode::kCheckMismatch,
                      cninet::StrCat("route ", want.dst.ToString(),
                                     want.gw ? cninet::StrCat(" via ", want.gw->ToString()) : "",
                                     " is missing"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLink(const Link& link, const cni::Interface& expected, std::string_view kind) {
  if (link.kind != kind) {
    return CniError(ErrorCode::kCheckMismatch,
                    cninet::StrCat("interface ", link.name, " is a \"", link.kind,
                                   "\", expected \"", kind, "\""));
  }
  if (!expected.mac.empty()) {
    auto mac = MacAddress::Parse(expected.mac);
    if (!mac.ok() || *mac != link.mac) {
      return CniError(ErrorCode::kCheckMismatch,
                      cninet::StrCat("interface ", link.name, " has MAC ", link.mac.ToString(),
                                     ", prevResult says ", expected.mac));
    }
  }
  if (expected.mtu && *expected.mtu != link.mtu) {
    return CniError(ErrorCode::kCheckMismatch,
                    cninet::StrCat("interface ", link.name, " has MTU ", link.mtu,
                                   ", prevResult says ", *expected.mtu));
  }
  return absl::OkStatus();
}

BackgroundIpamAdd::BackgroundIpamAdd(std::string type, const cni::CmdArgs& args)
    : type_(std::move(type)), args_(args), result_(absl::UnknownError("IPAM ADD did not run")) {
  try {
    thread_ = std::thread([this] { result_ = cni::DelegateAdd(type_, args_); });
  } catch (const std::system_error& e) {
    result_ = absl::ResourceExhaustedError(cninet::StrCat("cannot start a thread: ", e.what()));
  }
}

BackgroundIpamAdd::~BackgroundIpamAdd() {
  Wait();
  if (!committed_ && result_.ok()) {
    absl::Status st = cni::DelegateDel(type_, args_);
    if (!st.ok()) CNINET_LOG(kWarning, "releasing the IPAM allocation failed: ", st.ToString());
  }
}

absl::StatusOr<cni::Result>& BackgroundIpamAdd::Wait() {
  if (thread_.joinable()) thread_.join();
  return result_;
}

absl::StatusOr<bool> DelegateSupportsVersion(std::string_view type, std::string_view version,
                                             const cni::CmdArgs& args) {
  CNINET_ASSIGN_OR_RETURN(std::string binary, cni::FindInPath(type, args.path));
  cni::ExecOptions opts;
  opts.env = args.DelegateEnv(cni::Command::kVersion);
  opts.timeout = std::chrono::seconds(10);
  nlohmann::json request = {{"cniVersion", std::string(version)}};
  auto out = cni::ExecPlugin(binary, request.dump(), opts);
  if (!out.ok()) return false;  // A plugin that cannot even answer VERSION for it: no.
  nlohmann::json j = nlohmann::json::parse(*out, nullptr, false);
  if (!j.is_object() || !j.contains("supportedVersions") || !j["supportedVersions"].is_array()) {
    return false;
  }
  for (const auto& v : j["supportedVersions"]) {
    if (v.is_string() && v.get<std::string>() == version) return true;
  }
  return false;
}

absl::Status DelegatedIpamStatus(const cni::CmdArgs& args) {
  CNINET_RETURN_IF_ERROR(Handle::Open().status());
  std::string type = args.conf.IpamType();
  if (type.empty()) return absl::OkStatus();
  absl::StatusOr<bool> supports = DelegateSupportsVersion(type, args.conf.cni_version, args);
  if (!supports.ok()) {
    return cni::CniError(cni::ErrorCode::kNotAvailable, cninet::ToStd(supports.status().message()));
  }
  if (!*supports) return absl::OkStatus();  // IPAM older than CNI 1.1: installed is all we know.
  return cni::DelegateStatus(type, args);
}

absl::Status DelegatedIpamGc(const cni::CmdArgs& args) {
  std::string type = args.conf.IpamType();
  if (type.empty()) return absl::OkStatus();
  CNINET_ASSIGN_OR_RETURN(bool supports,
                          DelegateSupportsVersion(type, args.conf.cni_version, args));
  if (!supports) return absl::OkStatus();
  return cni::DelegateGc(type, args);
}

absl::Status RunConcurrently(absl::FunctionRef<absl::Status()> a,
                             absl::FunctionRef<absl::Status()> b) {
  absl::Status sa;
  std::thread t;
  try {
    t = std::thread([&] { sa = a(); });
  } catch (const std::system_error&) {
    sa = a();  // No thread to be had: run them one after the other.
  }
  absl::Status sb = b();
  if (t.joinable()) t.join();
  return !sa.ok() ? sa : sb;
}

absl::StatusOr<std::vector<cni::IPPrefix>> DeleteVethAttachment(Handle& host,
                                                                std::string_view netns_path,
                                                                std::string_view ifname,
                                                                std::string_view host_veth) {
  std::vector<cni::IPPrefix> addresses;
  if (!netns_path.empty()) {
    auto ns = Netns::Open(netns_path);
    if (ns.ok()) {
      CNINET_ASSIGN_OR_RETURN(Handle pod, Handle::OpenIn(*ns));
      auto link = pod.GetLink(ifname);
      if (link.ok()) {
        if (auto addrs = pod.ListAddresses(link->index); addrs.ok()) {
          for (const auto& a : *addrs) {
            if (a.scope == kScopeUniverse) addresses.push_back(a.prefix);
          }
        }
        absl::Status st = pod.DeleteLink(link->index);
        if (!st.ok() && !absl::IsNotFound(st)) return st;
      } else if (!absl::IsNotFound(link.status())) {
        return link.status();
      }
    } else if (!absl::IsNotFound(ns.status()) && !absl::IsInvalidArgument(ns.status())) {
      return ns.status();
    }
  }
  if (!host_veth.empty()) {
    auto link = host.GetLink(host_veth);
    if (link.ok() && link->kind == "veth") {
      absl::Status st = host.DeleteLink(link->index);
      if (!st.ok() && !absl::IsNotFound(st)) return st;
    } else if (!link.ok() && !absl::IsNotFound(link.status())) {
      return link.status();
    }
  }
  return addresses;
}

}  // namespace cninet::netlink
