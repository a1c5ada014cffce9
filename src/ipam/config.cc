#include "cninet/ipam/config.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/ipam/names.h"

namespace cninet::ipam {
namespace {

using cni::ErrorCode;
using cni::IPAddress;
using cni::IPPrefix;
using nlohmann::json;

absl::Status Decode(std::string_view msg) { return cni::CniError(ErrorCode::kDecodeFailure, msg); }
absl::Status Invalid(std::string_view msg) { return cni::CniError(ErrorCode::kInvalidConfig, msg); }

// Looks `key` up like Go's encoding/json: the exact key, else a case-insensitive match.
// nullptr when absent or null.
const json* Find(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(std::string(key));
  if (it != obj.end()) return it->is_null() ? nullptr : &*it;
  for (auto i = obj.begin(); i != obj.end(); ++i) {
    if (absl::EqualsIgnoreCase(i.key(), ToAbsl(key))) return i->is_null() ? nullptr : &*i;
  }
  return nullptr;
}

absl::StatusOr<std::string> GetString(const json& obj, std::string_view key,
                                      std::string_view where) {
  const json* v = Find(obj, key);
  if (v == nullptr) return std::string();
  if (!v->is_string()) return Decode(StrCat(where, key, " must be a string"));
  return v->get<std::string>();
}

absl::StatusOr<const json*> GetArray(const json& obj, std::string_view key,
                                     std::string_view where) {
  const json* v = Find(obj, key);
  if (v != nullptr && !v->is_array()) return Decode(StrCat(where, key, " must be a list"));
  return v;
}

absl::StatusOr<Range> RangeFromJson(const json& j, std::string_view where) {
  if (!j.is_object()) return Decode(StrCat(where, " must be an object"));
  CNINET_ASSIGN_OR_RETURN(std::string subnet, GetString(j, "subnet", StrCat(where, ".")));
  CNINET_ASSIGN_OR_RETURN(std::string start, GetString(j, "rangeStart", StrCat(where, ".")));
  CNINET_ASSIGN_OR_RETURN(std::string end, GetString(j, "rangeEnd", StrCat(where, ".")));
  CNINET_ASSIGN_OR_RETURN(std::string gw, GetString(j, "gateway", StrCat(where, ".")));
  if (subnet.empty()) return Invalid(StrCat(where, ": missing subnet"));
  auto r = Range::Parse(subnet, start, end, gw);
  if (!r.ok()) return Annotate(r.status(), where);
  return r;
}

absl::StatusOr<std::vector<RangeSet>> RangeSetsFromJson(const json& list, std::string_view where) {
  std::vector<RangeSet> sets;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& set = list[i];
    std::string set_where = StrCat(where, "[", i, "]");
    if (!set.is_array()) return Decode(StrCat(set_where, " must be a list of ranges"));
    RangeSet rs;
    for (size_t k = 0; k < set.size(); ++k) {
      CNINET_ASSIGN_OR_RETURN(Range r, RangeFromJson(set[k], StrCat(set_where, "[", k, "]")));
      rs.ranges.push_back(std::move(r));
    }
    sets.push_back(std::move(rs));
  }
  return sets;
}

// "10.1.0.5" or "10.1.0.5/24" (the address part is what is requested), as host-local reads IPs.
absl::StatusOr<IPAddress> RequestedIp(std::string_view text) {
  auto p = IPPrefix::Parse(text, /*allow_bare=*/true);
  if (!p.ok()) return Invalid(StrCat("cannot understand ip \"", text, "\""));
  return p->address();
}

absl::Status AddRequested(const json* list, std::string_view where, std::vector<IPAddress>& out) {
  if (list == nullptr) return absl::OkStatus();
  if (!list->is_array()) return Decode(StrCat(where, " must be a list"));
  for (const json& v : *list) {
    if (!v.is_string()) return Decode(StrCat(where, " entries must be strings"));
    CNINET_ASSIGN_OR_RETURN(IPAddress ip, RequestedIp(v.get<std::string>()));
    out.push_back(ip);
  }
  return absl::OkStatus();
}

// CNI_ARGS as host-local reads them: "K=V;K=V", keys IP and IgnoreUnknown.
absl::Status ParseCniArgs(std::string_view args, std::vector<IPAddress>& out) {
  if (args.empty()) return absl::OkStatus();
  std::vector<std::string> unknown;
  bool ignore_unknown = false;
  std::vector<IPAddress> ips;
  for (absl::string_view pair : absl::StrSplit(ToAbsl(args), ';')) {
    if (pair.empty()) continue;
    std::vector<absl::string_view> kv = absl::StrSplit(pair, '=');
    if (kv.size() != 2 || kv[0].empty()) {
      return cni::CniError(ErrorCode::kInvalidEnvironment,
                           StrCat("CNI_ARGS: invalid pair \"", ToStd(pair), "\""));
    }
    if (kv[0] == "IP") {
      for (absl::string_view one : absl::StrSplit(kv[1], ',', absl::SkipEmpty())) {
        auto ip = RequestedIp(ToStd(one));
        if (!ip.ok()) {
          return cni::CniError(ErrorCode::kInvalidEnvironment,
                               StrCat("CNI_ARGS: invalid IP \"", ToStd(one), "\""));
        }
        ips.push_back(*ip);
      }
    } else if (kv[0] == "IgnoreUnknown") {
      std::string v = absl::AsciiStrToLower(kv[1]);
      if (v == "1" || v == "true") {
        ignore_unknown = true;
      } else if (v == "0" || v == "false") {
        ignore_unknown = false;
      } else {
        return cni::CniError(
            ErrorCode::kInvalidEnvironment,
            StrCat("CNI_ARGS: invalid IgnoreUnknown value \"", ToStd(kv[1]), "\""));
      }
    } else {
      unknown.emplace_back(pair);
    }
  }
  if (!unknown.empty() && !ignore_unknown) {
    return cni::CniError(ErrorCode::kUnsupportedField,
                         StrCat("CNI_ARGS: unknown args [", StrJoin(unknown, " "), "]"));
  }
  out.insert(out.end(), ips.begin(), ips.end());
  return absl::OkStatus();
}

absl::StatusOr<std::optional<uint32_t>> OptionalU32(const json& obj, std::string_view key) {
  const json* v = Find(obj, key);
  if (v == nullptr) return std::optional<uint32_t>();
  if (!v->is_number_unsigned() || v->get<uint64_t>() > UINT32_MAX) {
    return Decode(StrCat("route ", key, " must be an unsigned 32-bit number"));
  }
  return std::optional<uint32_t>(v->get<uint32_t>());
}

absl::StatusOr<cni::Route> RouteFromJson(const json& j) {
  if (!j.is_object()) return Decode("ipam.routes entries must be objects");
  CNINET_ASSIGN_OR_RETURN(std::string dst, GetString(j, "dst", "route "));
  CNINET_ASSIGN_OR_RETURN(std::string gw, GetString(j, "gw", "route "));
  auto prefix = IPPrefix::Parse(dst);
  if (!prefix.ok()) return Invalid(StrCat("invalid route dst \"", dst, "\""));
  cni::Route r;
  r.dst = *prefix;
  if (!gw.empty()) {
    auto ip = IPAddress::Parse(gw);
    if (!ip.ok()) return Invalid(StrCat("invalid route gw \"", gw, "\""));
    if (ip->family() != prefix->address().family()) {
      return Invalid(StrCat("route gw ", gw, " is not of the family of ", dst));
    }
    r.gw = *ip;
  }
  CNINET_ASSIGN_OR_RETURN(r.mtu, OptionalU32(j, "mtu"));
  CNINET_ASSIGN_OR_RETURN(r.advmss, OptionalU32(j, "advmss"));
  CNINET_ASSIGN_OR_RETURN(r.priority, OptionalU32(j, "priority"));
  CNINET_ASSIGN_OR_RETURN(r.table, OptionalU32(j, "table"));
  CNINET_ASSIGN_OR_RETURN(r.scope, OptionalU32(j, "scope"));
  return r;
}

}  // namespace

absl::StatusOr<IpamConfig> IpamConfig::Parse(std::string_view net_conf, std::string_view cni_args) {
  json j = json::parse(net_conf.begin(), net_conf.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Decode("failed to decode the network configuration (not JSON)");
  return FromJson(j, cni_args);
}

absl::StatusOr<IpamConfig> IpamConfig::FromJson(const json& net, std::string_view cni_args) {
  if (!net.is_object()) return Decode("the network configuration must be a JSON object");
  IpamConfig c;
  CNINET_ASSIGN_OR_RETURN(c.network, GetString(net, "name", ""));
  CNINET_ASSIGN_OR_RETURN(c.cni_version, GetString(net, "cniVersion", ""));
  const json* ipam = Find(net, "ipam");
  if (ipam == nullptr) return Invalid("IPAM config missing 'ipam' key");
  if (!ipam->is_object()) return Decode("ipam must be an object");
  CNINET_ASSIGN_OR_RETURN(c.type, GetString(*ipam, "type", "ipam."));
  CNINET_ASSIGN_OR_RETURN(std::string data_dir, GetString(*ipam, "dataDir", "ipam."));
  if (!data_dir.empty()) c.data_dir = data_dir;
  CNINET_ASSIGN_OR_RETURN(c.resolv_conf, GetString(*ipam, "resolvConf", "ipam."));
  if (const json* sync = Find(*ipam, "fsync"); sync != nullptr) {
    if (!sync->is_boolean()) return Decode("ipam.fsync must be true or false");
    c.fsync = sync->get<bool>();
  }

  CNINET_ASSIGN_OR_RETURN(const json* routes, GetArray(*ipam, "routes", "ipam."));
  if (routes != nullptr) {
    for (const json& r : *routes) {
      CNINET_ASSIGN_OR_RETURN(cni::Route route, RouteFromJson(r));
      c.routes.push_back(std::move(route));
    }
  }

  // Requested addresses: CNI_ARGS, then args.cni.ips, then runtimeConfig.ips.
  std::vector<IPAddress> requested;
  CNINET_RETURN_IF_ERROR(ParseCniArgs(cni_args, requested));
  const json* args = Find(net, "args");
  if (args != nullptr) {
    if (!args->is_object()) return Decode("args must be an object");
    const json* cni = Find(*args, "cni");
    if (cni != nullptr) {
      if (!cni->is_object()) return Decode("args.cni must be an object");
      CNINET_RETURN_IF_ERROR(AddRequested(Find(*cni, "ips"), "args.cni.ips", requested));
    }
  }
  const json* rt = Find(net, "runtimeConfig");
  if (rt != nullptr && !rt->is_object()) return Decode("runtimeConfig must be an object");
  if (rt != nullptr) {
    CNINET_RETURN_IF_ERROR(AddRequested(Find(*rt, "ips"), "runtimeConfig.ips", requested));
  }
  for (const IPAddress& ip : requested) {
    if (std::find(c.requested_ips.begin(), c.requested_ips.end(), ip) == c.requested_ips.end()) {
      c.requested_ips.push_back(ip);
    }
  }

  // Range sets: runtimeConfig.ipRanges, the legacy single range, then ipam.ranges.
  if (rt != nullptr) {
    CNINET_ASSIGN_OR_RETURN(const json* rt_ranges, GetArray(*rt, "ipRanges", "runtimeConfig."));
    if (rt_ranges != nullptr) {
      CNINET_ASSIGN_OR_RETURN(auto sets, RangeSetsFromJson(*rt_ranges, "runtimeConfig.ipRanges"));
      c.ranges.insert(c.ranges.end(), sets.begin(), sets.end());
    }
  }
  CNINET_ASSIGN_OR_RETURN(std::string subnet, GetString(*ipam, "subnet", "ipam."));
  if (!subnet.empty()) {
    CNINET_ASSIGN_OR_RETURN(Range legacy, RangeFromJson(*ipam, "ipam"));
    c.ranges.push_back(RangeSet{{legacy}});
  }
  CNINET_ASSIGN_OR_RETURN(const json* ranges, GetArray(*ipam, "ranges", "ipam."));
  if (ranges != nullptr) {
    CNINET_ASSIGN_OR_RETURN(auto sets, RangeSetsFromJson(*ranges, "ipam.ranges"));
    c.ranges.insert(c.ranges.end(), sets.begin(), sets.end());
  }
  CNINET_RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::Status IpamConfig::Validate() const {
  CNINET_RETURN_IF_ERROR(ValidateNetworkName(network));
  CNINET_RETURN_IF_ERROR(ValidateDataDir(data_dir));
  if (ranges.empty()) return Invalid("no IP ranges specified");
  for (size_t i = 0; i < ranges.size(); ++i) {
    CNINET_RETURN_IF_ERROR(Annotate(ranges[i].Validate(), StrCat("invalid range set ", i)));
  }
  for (size_t i = 0; i < ranges.size(); ++i) {
    for (size_t k = i + 1; k < ranges.size(); ++k) {
      if (ranges[i].Overlaps(ranges[k])) {
        return Invalid(StrCat("range set ", i, " overlaps with ", k));
      }
    }
  }
  return absl::OkStatus();
}

cni::DNS ParseResolvConfText(std::string_view text) {
  cni::DNS dns;
  for (absl::string_view raw : absl::StrSplit(ToAbsl(text), '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 2) continue;
    if (f[0] == "nameserver") {
      dns.nameservers.push_back(f[1]);
    } else if (f[0] == "domain") {
      dns.domain = f[1];
    } else if (f[0] == "search") {
      dns.search.insert(dns.search.end(), f.begin() + 1, f.end());
    } else if (f[0] == "options") {
      dns.options.insert(dns.options.end(), f.begin() + 1, f.end());
    }
  }
  return dns;
}

absl::StatusOr<cni::DNS> ParseResolvConf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return cni::CniError(ErrorCode::kIoFailure, StrCat("cannot read resolvConf ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseResolvConfText(ss.str());
}

}  // namespace cninet::ipam
