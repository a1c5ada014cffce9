#include "cninet/cni/types.h"

#include <string>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/cni/version.h"
#include "json_util.h"

namespace cninet::cni {
namespace {

using internal::Extras;
using internal::MergeExtras;
using internal::ReadString;
using internal::ReadStringList;
using internal::ReadUint;
using internal::TypeError;

absl::Status DecodeError(std::string_view msg) { return CniError(ErrorCode::kDecodeFailure, msg); }

absl::StatusOr<IPPrefix> ReadPrefix(const nlohmann::json& j, std::string_view where,
                                    const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return DecodeError(cninet::StrCat("cannot decode ", where, ": missing \"", key, "\""));
  }
  if (!it->is_string()) return TypeError(where, key, "a CIDR string", *it);
  auto p = IPPrefix::Parse(it->get<std::string>());
  if (!p.ok())
    return DecodeError(cninet::StrCat("cannot decode ", where, ": ", p.status().message()));
  return *p;
}

absl::Status ReadAddress(const nlohmann::json& j, std::string_view where, const char* key,
                         std::optional<IPAddress>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return TypeError(where, key, "an IP address string", *it);
  if (it->get<std::string>().empty()) return absl::OkStatus();
  auto a = IPAddress::Parse(it->get<std::string>());
  if (!a.ok())
    return DecodeError(cninet::StrCat("cannot decode ", where, ": ", a.status().message()));
  *out = *a;
  return absl::OkStatus();
}

absl::StatusOr<Interface> InterfaceFromJson(const nlohmann::json& j) {
  constexpr std::string_view kWhere = "interface";
  if (!j.is_object()) return TypeError("result", "interfaces", "a list of objects", j);
  Interface i;
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "name", &i.name));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "mac", &i.mac));
  CNINET_RETURN_IF_ERROR(ReadUint(j, kWhere, "mtu", &i.mtu));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "sandbox", &i.sandbox));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "socketPath", &i.socket_path));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "pciID", &i.pci_id));
  i.extra = Extras(j, {"name", "mac", "mtu", "sandbox", "socketPath", "pciID"});
  return i;
}

absl::StatusOr<IPConfig> IPConfigFromJson(const nlohmann::json& j) {
  constexpr std::string_view kWhere = "ip";
  if (!j.is_object()) return TypeError("result", "ips", "a list of objects", j);
  IPConfig ip;
  CNINET_ASSIGN_OR_RETURN(ip.address, ReadPrefix(j, kWhere, "address"));
  CNINET_RETURN_IF_ERROR(ReadAddress(j, kWhere, "gateway", &ip.gateway));
  if (auto it = j.find("interface"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) return TypeError(kWhere, "interface", "an integer", *it);
    int64_t idx = it->get<int64_t>();
    if (idx < 0 || idx > INT32_MAX) {
      return DecodeError(cninet::StrCat("cannot decode ip: interface index ", idx, " is negative"));
    }
    ip.interface = static_cast<int>(idx);
  }
  // 0.3.x/0.4.0 "version" is derived from the address on output; a present value must be valid.
  if (auto it = j.find("version"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || (*it != "4" && *it != "6")) {
      return DecodeError("cannot decode ip: \"version\" must be \"4\" or \"6\"");
    }
  }
  ip.extra = Extras(j, {"address", "gateway", "interface", "version"});
  return ip;
}

absl::StatusOr<Route> RouteFromJson(const nlohmann::json& j) {
  constexpr std::string_view kWhere = "route";
  if (!j.is_object()) return TypeError("result", "routes", "a list of objects", j);
  Route r;
  CNINET_ASSIGN_OR_RETURN(r.dst, ReadPrefix(j, kWhere, "dst"));
  CNINET_RETURN_IF_ERROR(ReadAddress(j, kWhere, "gw", &r.gw));
  CNINET_RETURN_IF_ERROR(ReadUint(j, kWhere, "mtu", &r.mtu));
  CNINET_RETURN_IF_ERROR(ReadUint(j, kWhere, "advmss", &r.advmss));
  CNINET_RETURN_IF_ERROR(ReadUint(j, kWhere, "priority", &r.priority));
  CNINET_RETURN_IF_ERROR(ReadUint(j, kWhere, "table", &r.table));
  CNINET_RETURN_IF_ERROR(ReadUint(j, kWhere, "scope", &r.scope));
  r.extra = Extras(j, {"dst", "gw", "mtu", "advmss", "priority", "table", "scope"});
  return r;
}

template <typename T, typename F>
absl::Status ReadList(const nlohmann::json& j, const char* key, F parse, std::vector<T>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return TypeError("result", key, "a list", *it);
  for (const auto& e : *it) {
    CNINET_ASSIGN_OR_RETURN(T v, parse(e));
    out->push_back(std::move(v));
  }
  return absl::OkStatus();
}

}  // namespace

bool DNS::empty() const {
  return nameservers.empty() && domain.empty() && search.empty() && options.empty() &&
         (extra.is_null() || extra.empty());
}

absl::StatusOr<DNS> DNS::FromJson(const nlohmann::json& j) {
  constexpr std::string_view kWhere = "dns";
  if (j.is_null()) return DNS{};
  if (!j.is_object()) return TypeError("result", "dns", "an object", j);
  DNS d;
  CNINET_RETURN_IF_ERROR(ReadStringList(j, kWhere, "nameservers", &d.nameservers));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "domain", &d.domain));
  CNINET_RETURN_IF_ERROR(ReadStringList(j, kWhere, "search", &d.search));
  CNINET_RETURN_IF_ERROR(ReadStringList(j, kWhere, "options", &d.options));
  d.extra = Extras(j, {"nameservers", "domain", "search", "options"});
  return d;
}

nlohmann::json DNS::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  if (!nameservers.empty()) j["nameservers"] = nameservers;
  if (!domain.empty()) j["domain"] = domain;
  if (!search.empty()) j["search"] = search;
  if (!options.empty()) j["options"] = options;
  MergeExtras(extra, j);
  return j;
}

absl::StatusOr<Result> Result::FromJson(const nlohmann::json& j) {
  if (!j.is_object())
    return DecodeError(
        cninet::StrCat("cannot decode result: expected an object, got ", j.type_name()));
  Result r;
  CNINET_RETURN_IF_ERROR(ReadString(j, "result", "cniVersion", &r.cni_version));
  if (!r.cni_version.empty()) {
    CNINET_RETURN_IF_ERROR(SpecVersion::Parse(r.cni_version).status());
    if (!IsSupportedVersion(r.cni_version)) {
      return CniError(ErrorCode::kIncompatibleVersion,
                      cninet::StrCat("unsupported result version \"", r.cni_version, "\""),
                      cninet::StrCat("supported: ", cninet::StrJoin(SupportedVersions(), " ")));
    }
  }
  CNINET_RETURN_IF_ERROR(ReadList<Interface>(j, "interfaces", InterfaceFromJson, &r.interfaces));
  CNINET_RETURN_IF_ERROR(ReadList<IPConfig>(j, "ips", IPConfigFromJson, &r.ips));
  CNINET_RETURN_IF_ERROR(ReadList<Route>(j, "routes", RouteFromJson, &r.routes));
  if (auto it = j.find("dns"); it != j.end()) {
    CNINET_ASSIGN_OR_RETURN(r.dns, DNS::FromJson(*it));
  }
  r.extra = Extras(j, {"cniVersion", "interfaces", "ips", "routes", "dns"});
  return r;
}

absl::StatusOr<Result> Result::Parse(std::string_view text) {
  CNINET_ASSIGN_OR_RETURN(nlohmann::json j, internal::ParseJson(text, "result"));
  return FromJson(j);
}

absl::Status Result::Validate() const {
  for (const IPConfig& ip : ips) {
    if (ip.interface.has_value() &&
        (*ip.interface < 0 || static_cast<size_t>(*ip.interface) >= interfaces.size())) {
      return CniError(
          ErrorCode::kInvalidConfig,
          cninet::StrCat("result: ip ", ip.address.ToString(), " refers to interface ",
                         *ip.interface, " but there are ", interfaces.size(), " interfaces"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> Result::ToJson(std::string_view version) const {
  std::string v(version.empty() ? std::string_view(cni_version) : version);
  if (v.empty()) v = std::string(kCurrentVersion);
  CNINET_RETURN_IF_ERROR(CheckSupportedVersion(v));
  CNINET_RETURN_IF_ERROR(Validate());
  const bool legacy = CompareVersions(v, "1.0.0") < 0;  // 0.3.x / 0.4.0: ips carry "version".
  const bool has_11 = CompareVersions(v, "1.1.0") >= 0;

  nlohmann::json j = nlohmann::json::object();
  j["cniVersion"] = v;
  if (!interfaces.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const Interface& i : interfaces) {
      nlohmann::json o = nlohmann::json::object();
      o["name"] = i.name;
      if (!i.mac.empty()) o["mac"] = i.mac;
      if (has_11 && i.mtu.has_value()) o["mtu"] = *i.mtu;
      if (!i.sandbox.empty()) o["sandbox"] = i.sandbox;
      if (has_11 && !i.socket_path.empty()) o["socketPath"] = i.socket_path;
      if (has_11 && !i.pci_id.empty()) o["pciID"] = i.pci_id;
      MergeExtras(i.extra, o);
      list.push_back(std::move(o));
    }
    j["interfaces"] = std::move(list);
  }
  if (!ips.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const IPConfig& ip : ips) {
      nlohmann::json o = nlohmann::json::object();
      if (legacy) o["version"] = ip.address.is_v4() ? "4" : "6";
      o["address"] = ip.address.ToString();
      if (ip.gateway.has_value()) o["gateway"] = ip.gateway->ToString();
      if (ip.interface.has_value()) o["interface"] = *ip.interface;
      MergeExtras(ip.extra, o);
      list.push_back(std::move(o));
    }
    j["ips"] = std::move(list);
  }
  if (!routes.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const Route& r : routes) {
      nlohmann::json o = nlohmann::json::object();
      o["dst"] = r.dst.ToString();
      if (r.gw.has_value()) o["gw"] = r.gw->ToString();
      if (has_11) {
        if (r.mtu) o["mtu"] = *r.mtu;
        if (r.advmss) o["advmss"] = *r.advmss;
        if (r.priority) o["priority"] = *r.priority;
        if (r.table) o["table"] = *r.table;
        if (r.scope) o["scope"] = *r.scope;
      }
      MergeExtras(r.extra, o);
      list.push_back(std::move(o));
    }
    j["routes"] = std::move(list);
  }
  if (!dns.empty()) j["dns"] = dns.ToJson();
  MergeExtras(extra, j);
  return j;
}

absl::StatusOr<std::string> Result::ToString(std::string_view version) const {
  CNINET_ASSIGN_OR_RETURN(nlohmann::json j, ToJson(version));
  return internal::Dump(j);
}

}  // namespace cninet::cni
