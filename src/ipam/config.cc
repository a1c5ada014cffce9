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
#include "cninet/cni/config_reader.h"
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

using cni::ConfigReader;

absl::StatusOr<Range> RangeFromJson(const ConfigReader& r) {
  if (!r.json().is_object()) return r.Error("must be an object");
  CNINET_ASSIGN_OR_RETURN(std::string subnet, r.Optional<std::string>("subnet", ""));
  CNINET_ASSIGN_OR_RETURN(std::string start, r.Optional<std::string>("rangeStart", ""));
  CNINET_ASSIGN_OR_RETURN(std::string end, r.Optional<std::string>("rangeEnd", ""));
  CNINET_ASSIGN_OR_RETURN(std::string gw, r.Optional<std::string>("gateway", ""));
  if (subnet.empty()) return Invalid(StrCat(r.path(), ": missing subnet"));
  auto range = Range::Parse(subnet, start, end, gw);
  if (!range.ok()) return Annotate(range.status(), r.path());
  return range;
}

// A list of range sets (`ipam.ranges`, `runtimeConfig.ipRanges`), each a list of ranges.
absl::StatusOr<std::vector<RangeSet>> RangeSetsFromJson(const std::vector<ConfigReader>& list) {
  std::vector<RangeSet> sets;
  for (const ConfigReader& set : list) {
    if (!set.json().is_array()) return set.Error("must be a list of ranges");
    CNINET_ASSIGN_OR_RETURN(std::vector<ConfigReader> ranges, set.Elements());
    RangeSet rs;
    for (const ConfigReader& range : ranges) {
      CNINET_ASSIGN_OR_RETURN(Range r, RangeFromJson(range));
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

// The addresses of list `key` of `parent` (`args.cni.ips`, `runtimeConfig.ips`) appended to out.
absl::Status AddRequested(const ConfigReader& parent, std::string_view key,
                          std::vector<IPAddress>& out) {
  CNINET_ASSIGN_OR_RETURN(std::vector<std::string> ips,
                          parent.Optional<std::vector<std::string>>(key, {}));
  for (const std::string& text : ips) {
    CNINET_ASSIGN_OR_RETURN(IPAddress ip, RequestedIp(text));
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

absl::StatusOr<cni::Route> RouteFromJson(const ConfigReader& j) {
  if (!j.json().is_object()) return j.Error("must be an object");
  CNINET_ASSIGN_OR_RETURN(std::string dst, j.Optional<std::string>("dst", ""));
  CNINET_ASSIGN_OR_RETURN(std::string gw, j.Optional<std::string>("gw", ""));
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
  CNINET_ASSIGN_OR_RETURN(r.mtu, j.Maybe<uint32_t>("mtu"));
  CNINET_ASSIGN_OR_RETURN(r.advmss, j.Maybe<uint32_t>("advmss"));
  CNINET_ASSIGN_OR_RETURN(r.priority, j.Maybe<uint32_t>("priority"));
  CNINET_ASSIGN_OR_RETURN(r.table, j.Maybe<uint32_t>("table"));
  CNINET_ASSIGN_OR_RETURN(r.scope, j.Maybe<uint32_t>("scope"));
  return r;
}

// The ipam section's own keys: type, dataDir, resolvConf, fsync and routes.
absl::Status ReadIpamKeys(const ConfigReader& ipam, IpamConfig& c) {
  CNINET_ASSIGN_OR_RETURN(c.type, ipam.Optional<std::string>("type", ""));
  CNINET_ASSIGN_OR_RETURN(std::string data_dir, ipam.Optional<std::string>("dataDir", ""));
  if (!data_dir.empty()) c.data_dir = data_dir;
  CNINET_ASSIGN_OR_RETURN(c.resolv_conf, ipam.Optional<std::string>("resolvConf", ""));
  CNINET_ASSIGN_OR_RETURN(c.fsync, ipam.Optional<bool>("fsync", c.fsync));
  CNINET_ASSIGN_OR_RETURN(std::vector<ConfigReader> routes, ipam.List("routes"));
  for (const ConfigReader& r : routes) {
    CNINET_ASSIGN_OR_RETURN(cni::Route route, RouteFromJson(r));
    c.routes.push_back(std::move(route));
  }
  return absl::OkStatus();
}

// Requested addresses, without repeats: CNI_ARGS IP=, then args.cni.ips, then runtimeConfig.ips.
absl::Status ReadRequestedIps(const ConfigReader& net, std::string_view cni_args, IpamConfig& c) {
  std::vector<IPAddress> requested;
  CNINET_RETURN_IF_ERROR(ParseCniArgs(cni_args, requested));
  CNINET_ASSIGN_OR_RETURN(std::optional<ConfigReader> args, net.OptionalObject("args"));
  if (args) {
    CNINET_ASSIGN_OR_RETURN(std::optional<ConfigReader> cni, args->OptionalObject("cni"));
    if (cni) CNINET_RETURN_IF_ERROR(AddRequested(*cni, "ips", requested));
  }
  CNINET_ASSIGN_OR_RETURN(std::optional<ConfigReader> rt, net.OptionalObject("runtimeConfig"));
  if (rt) CNINET_RETURN_IF_ERROR(AddRequested(*rt, "ips", requested));
  for (const IPAddress& ip : requested) {
    if (std::find(c.requested_ips.begin(), c.requested_ips.end(), ip) == c.requested_ips.end()) {
      c.requested_ips.push_back(ip);
    }
  }
  return absl::OkStatus();
}

// Range sets: runtimeConfig.ipRanges, the legacy single range, then ipam.ranges.
absl::Status ReadRanges(const ConfigReader& net, const ConfigReader& ipam, IpamConfig& c) {
  CNINET_ASSIGN_OR_RETURN(std::optional<ConfigReader> rt, net.OptionalObject("runtimeConfig"));
  if (rt) {
    CNINET_ASSIGN_OR_RETURN(std::vector<ConfigReader> rt_ranges, rt->List("ipRanges"));
    CNINET_ASSIGN_OR_RETURN(auto sets, RangeSetsFromJson(rt_ranges));
    c.ranges.insert(c.ranges.end(), sets.begin(), sets.end());
  }
  CNINET_ASSIGN_OR_RETURN(std::string subnet, ipam.Optional<std::string>("subnet", ""));
  if (!subnet.empty()) {
    CNINET_ASSIGN_OR_RETURN(Range legacy, RangeFromJson(ipam));
    c.ranges.push_back(RangeSet{{legacy}});
  }
  CNINET_ASSIGN_OR_RETURN(std::vector<ConfigReader> ranges, ipam.List("ranges"));
  CNINET_ASSIGN_OR_RETURN(auto sets, RangeSetsFromJson(ranges));
  c.ranges.insert(c.ranges.end(), sets.begin(), sets.end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<IpamConfig> IpamConfig::Parse(std::string_view net_conf, std::string_view cni_args) {
  json j = json::parse(net_conf.begin(), net_conf.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Decode("failed to decode the network configuration (not JSON)");
  return FromJson(j, cni_args);
}

absl::StatusOr<IpamConfig> IpamConfig::FromJson(const json& net, std::string_view cni_args) {
  if (!net.is_object()) return Decode("the network configuration must be a JSON object");
  // Keys are matched as the reference host-local's Go decoder matches them.
  ConfigReader reader(net, "", cni::KeyMatch::kGoJson);
  IpamConfig c;
  CNINET_ASSIGN_OR_RETURN(c.network, reader.Optional<std::string>("name", ""));
  CNINET_ASSIGN_OR_RETURN(c.cni_version, reader.Optional<std::string>("cniVersion", ""));
  if (!reader.Has("ipam")) return Invalid("IPAM config missing 'ipam' key");
  CNINET_ASSIGN_OR_RETURN(ConfigReader ipam, reader.Object("ipam"));
  CNINET_RETURN_IF_ERROR(ReadIpamKeys(ipam, c));
  CNINET_RETURN_IF_ERROR(ReadRequestedIps(reader, cni_args, c));
  CNINET_RETURN_IF_ERROR(ReadRanges(reader, ipam, c));
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
