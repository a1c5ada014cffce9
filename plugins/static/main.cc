// cninet-static: a drop-in for the reference `static` IPAM plugin (containernetworking/plugins,
// plugins/ipam/static). ADD reports the configured addresses, routes and DNS; nothing is
// allocated or stored, so DEL has nothing to undo, and CNI_NETNS is never entered.
//
// Where the addresses come from, as the reference decides it (a higher source replaces the lower
// ones entirely when it lists at least one address):
//   1. runtimeConfig.ips (the "ips" capability),
//   2. args.cni.ips,
//   3. ipam.addresses followed by the CNI_ARGS IP= addresses; CNI_ARGS GATEWAY= becomes the
//      gateway of every IP= address whose subnet contains it (never of ipam.addresses).
// Configuration keys are matched as Go's encoding/json matches them (the exact key, else
// ignoring case), and error messages are the reference's. Error codes are specific where the
// reference always says 999: 7 invalid configuration, 4 malformed CNI_ARGS, 2 unknown CNI_ARGS
// keys, 100 CHECK mismatch (README.md lists every difference).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "cninet/cni/cni.h"

namespace {

using cninet::StrCat;
using cninet::cni::CmdArgs;
using cninet::cni::CniArgs;
using cninet::cni::CniError;
using cninet::cni::DNS;
using cninet::cni::ErrorCode;
using cninet::cni::IPAddress;
using cninet::cni::IPConfig;
using cninet::cni::IPPrefix;
using cninet::cni::Result;
using cninet::cni::Route;
using json = nlohmann::json;

/// CHECK: a configured address is in prevResult with another gateway (plugin-specific code).
constexpr uint32_t kAddressMismatch = 100;

// Addresses, parsed and printed as the reference (Go's net package) does.

/// `ip` with an IPv4-mapped IPv6 address (::ffff:a.b.c.d) turned into IPv4, as Go's To4() does
/// before the reference prints or compares it.
IPAddress Canonical(const IPAddress& ip) {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (ip.is_v6() &&
      std::equal(std::begin(kMappedPrefix), std::end(kMappedPrefix), ip.bytes().begin())) {
    return IPAddress::FromBytes(ip.bytes().data() + 12, 4);
  }
  return ip;
}

/// An address as Go's net.ParseIP reads it (no zone, no brackets), canonical; nullopt if invalid.
std::optional<IPAddress> ParseIp(std::string_view text) {
  absl::StatusOr<IPAddress> ip = IPAddress::Parse(text);
  if (!ip.ok()) return std::nullopt;
  return Canonical(*ip);
}

/// "addr/len" as Go's net.ParseCIDR reads it (host bits kept, leading zeros in len allowed);
/// an IPv4-mapped address becomes IPv4 with len - 96, as the reference prints it.
std::optional<IPPrefix> ParseCidr(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash + 1 == text.size()) return std::nullopt;
  absl::StatusOr<IPAddress> ip = IPAddress::Parse(text.substr(0, slash));
  if (!ip.ok()) return std::nullopt;
  int len = 0;
  for (char c : text.substr(slash + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    len = len * 10 + (c - '0');
    if (len > ip->bit_length()) return std::nullopt;
  }
  IPAddress canonical = Canonical(*ip);
  if (canonical.is_v4() && ip->is_v6()) len = std::max(0, len - 96);
  return IPPrefix(canonical, len);
}

// Configuration JSON, read as Go's encoding/json reads it into the reference's structs.

/// Member `name` of `obj` as encoding/json finds it: the exact key, else the first key equal to
/// it ignoring ASCII case. nullptr when absent; JSON null is returned as is. (The reference's
/// own type-error messages below are kept: side-by-side tests compare them.)
const json* FindKey(const json& obj, std::string_view name) {
  return cninet::cni::ConfigReader(obj, "", cninet::cni::KeyMatch::kGoJson).Find(name);
}

/// FindKey, with JSON null treated as absent (Go keeps the zero value for null).
const json* Field(const json& obj, std::string_view name) {
  const json* v = FindKey(obj, name);
  return v != nullptr && !v->is_null() ? v : nullptr;
}

/// The JSON kind as Go names it in type errors.
std::string_view GoKind(const json& v) {
  if (v.is_string()) return "string";
  if (v.is_number()) return "number";
  if (v.is_boolean()) return "bool";
  if (v.is_array()) return "array";
  return "object";
}

/// encoding/json's type error for `v` decoded into Go struct field `field` of type `go_type`.
absl::Status TypeError(const json& v, std::string_view field, std::string_view go_type) {
  return CniError(ErrorCode::kInvalidConfig,
                  StrCat("json: cannot unmarshal ", GoKind(v), " into Go struct field ", field,
                         " of type ", go_type));
}

/// String member `key` of `obj` ("" when absent or null); `field` names it in type errors.
absl::StatusOr<std::string> GetString(const json& obj, std::string_view key,
                                      std::string_view field) {
  const json* v = Field(obj, key);
  if (v == nullptr) return std::string();
  if (!v->is_string()) return TypeError(*v, field, "string");
  return v->get<std::string>();
}

/// List-of-strings member `key` of `obj` (empty when absent or null; null entries are "").
absl::StatusOr<std::vector<std::string>> GetStrings(const json& obj, std::string_view key,
                                                    std::string_view field) {
  std::vector<std::string> out;
  const json* v = Field(obj, key);
  if (v == nullptr) return out;
  if (!v->is_array()) return TypeError(*v, field, "[]string");
  for (const json& e : *v) {
    if (!e.is_null() && !e.is_string()) return TypeError(e, field, "string");
    out.push_back(e.is_null() ? std::string() : e.get<std::string>());
  }
  return out;
}

/// Optional IP member `key` of `obj` (a net.IP: "" or null is none); `field` for type errors.
absl::StatusOr<std::optional<IPAddress>> GetIp(const json& obj, std::string_view key,
                                               std::string_view field) {
  const json* v = Field(obj, key);
  if (v == nullptr) return std::optional<IPAddress>();
  if (!v->is_string()) return TypeError(*v, field, "net.IP");
  const std::string& text = v->get_ref<const std::string&>();
  if (text.empty()) return std::optional<IPAddress>();
  std::optional<IPAddress> ip = ParseIp(text);
  if (!ip) return CniError(ErrorCode::kInvalidConfig, StrCat("invalid IP address: ", text));
  return ip;
}

// The configuration model.

/// One address of the result being assembled.
struct Address {
  std::string text;                  ///< As given (error messages quote it).
  std::optional<IPPrefix> prefix;    ///< Parsed; ipam.addresses are parsed last, as the
                                     ///< reference does (an overridden bad entry is no error).
  std::optional<IPAddress> gateway;  ///< Gateway of the address, if any.
};

/// The configuration decoded, before the address sources are combined.
struct StaticInput {
  bool has_ipam = false;                 ///< An "ipam" object was given.
  std::vector<Address> addresses;        ///< ipam.addresses.
  std::vector<Route> routes;             ///< ipam.routes.
  DNS dns;                               ///< ipam.dns.
  std::vector<std::string> args_ips;     ///< args.cni.ips.
  std::vector<std::string> runtime_ips;  ///< runtimeConfig.ips.
};

/// What ADD reports and CHECK verifies.
struct StaticConfig {
  std::vector<Address> addresses;  ///< Every address, parsed, in order.
  std::vector<Route> routes;       ///< ipam.routes.
  DNS dns;                         ///< ipam.dns.
};

/// One entry of ipam.addresses: {"address": CIDR, "gateway": IP}; the CIDR is parsed later.
absl::StatusOr<Address> DecodeAddress(const json& e) {
  Address a;
  if (e.is_null()) return a;
  if (!e.is_object()) return TypeError(e, "IPAMConfig.ipam.addresses", "main.Address");
  CNINET_ASSIGN_OR_RETURN(a.text, GetString(e, "address", "Address.ipam.addresses.address"));
  CNINET_ASSIGN_OR_RETURN(a.gateway, GetIp(e, "gateway", "Address.ipam.addresses.gateway"));
  // The reference's Address struct also has an untagged string field "Version".
  CNINET_RETURN_IF_ERROR(GetString(e, "Version", "Address.ipam.addresses.Version").status());
  return a;
}

/// Unsigned integer member `key` of route `e` into `out`; `keep_zero` for the pointer fields
/// (table, scope) that Go prints even when 0.
absl::Status DecodeRouteNumber(const json& e, std::string_view key, bool keep_zero,
                               std::optional<uint32_t>* out) {
  const json* v = Field(e, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number_unsigned() || v->get<uint64_t>() > UINT32_MAX) {
    return CniError(
        ErrorCode::kInvalidConfig,
        StrCat("route \"", key, "\" must be an unsigned 32-bit integer, got ", v->dump()));
  }
  uint32_t n = v->get<uint32_t>();
  if (n != 0 || keep_zero) *out = n;
  return absl::OkStatus();
}

/// One entry of ipam.routes: {"dst": CIDR, "gw": IP}, plus the CNI 1.1 route attributes when
/// the configuration is 1.1.0 or later (older results cannot carry them).
absl::StatusOr<Route> DecodeRoute(const json& e, bool v11) {
  constexpr std::string_view kField = "IPAMConfig.ipam.routes";
  if (e.is_null()) return CniError(ErrorCode::kInvalidConfig, "a route must not be null");
  if (!e.is_object()) return TypeError(e, kField, "types.route");
  if (FindKey(e, "dst") == nullptr) {
    return CniError(ErrorCode::kInvalidConfig, StrCat("route without \"dst\": ", e.dump()));
  }
  Route r;
  CNINET_ASSIGN_OR_RETURN(std::string dst, GetString(e, "dst", kField));
  std::optional<IPPrefix> prefix = ParseCidr(dst);
  if (!prefix) return CniError(ErrorCode::kInvalidConfig, StrCat("invalid CIDR address: ", dst));
  r.dst = *prefix;
  CNINET_ASSIGN_OR_RETURN(r.gw, GetIp(e, "gw", kField));
  if (v11) {
    CNINET_RETURN_IF_ERROR(DecodeRouteNumber(e, "mtu", false, &r.mtu));
    CNINET_RETURN_IF_ERROR(DecodeRouteNumber(e, "advmss", false, &r.advmss));
    CNINET_RETURN_IF_ERROR(DecodeRouteNumber(e, "priority", false, &r.priority));
    CNINET_RETURN_IF_ERROR(DecodeRouteNumber(e, "table", true, &r.table));
    CNINET_RETURN_IF_ERROR(DecodeRouteNumber(e, "scope", true, &r.scope));
  }
  return r;
}

/// ipam.dns: the four keys of types.DNS; anything else in it is dropped, as the reference does.
absl::StatusOr<DNS> DecodeDns(const json& ipam) {
  DNS d;
  const json* v = Field(ipam, "dns");
  if (v == nullptr) return d;
  if (!v->is_object()) return TypeError(*v, "IPAMConfig.ipam.dns", "types.DNS");
  CNINET_ASSIGN_OR_RETURN(d.nameservers, GetStrings(*v, "nameservers", "DNS.ipam.dns.nameservers"));
  CNINET_ASSIGN_OR_RETURN(d.domain, GetString(*v, "domain", "DNS.ipam.dns.domain"));
  CNINET_ASSIGN_OR_RETURN(d.search, GetStrings(*v, "search", "DNS.ipam.dns.search"));
  CNINET_ASSIGN_OR_RETURN(d.options, GetStrings(*v, "options", "DNS.ipam.dns.options"));
  return d;
}

/// The "ipam" object: addresses, routes, dns (and the types of "type" and "name").
absl::Status DecodeIpam(const json& ipam, bool v11, StaticInput* in) {
  if (!ipam.is_object()) return TypeError(ipam, "Net.ipam", "main.IPAMConfig");
  in->has_ipam = true;
  CNINET_RETURN_IF_ERROR(GetString(ipam, "type", "IPAMConfig.ipam.type").status());
  CNINET_RETURN_IF_ERROR(GetString(ipam, "Name", "IPAMConfig.ipam.Name").status());
  if (const json* list = Field(ipam, "addresses")) {
    if (!list->is_array()) return TypeError(*list, "IPAMConfig.ipam.addresses", "[]main.Address");
    for (const json& e : *list) {
      CNINET_ASSIGN_OR_RETURN(Address a, DecodeAddress(e));
      in->addresses.push_back(std::move(a));
    }
  }
  if (const json* list = Field(ipam, "routes")) {
    if (!list->is_array()) return TypeError(*list, "IPAMConfig.ipam.routes", "[]*types.Route");
    for (const json& e : *list) {
      CNINET_ASSIGN_OR_RETURN(Route r, DecodeRoute(e, v11));
      in->routes.push_back(std::move(r));
    }
  }
  CNINET_ASSIGN_OR_RETURN(in->dns, DecodeDns(ipam));
  return absl::OkStatus();
}

/// runtimeConfig.ips and args.cni.ips of the whole configuration.
absl::Status DecodeRequestedIps(const json& conf, StaticInput* in) {
  if (const json* rc = Field(conf, "runtimeConfig")) {
    if (!rc->is_object()) {
      return TypeError(*rc, "Net.runtimeConfig",
                       "struct { IPs []string \"json:\\\"ips,omitempty\\\"\" }");
    }
    CNINET_ASSIGN_OR_RETURN(in->runtime_ips, GetStrings(*rc, "ips", ".runtimeConfig.ips"));
  }
  const json* args = Field(conf, "args");
  if (args == nullptr) return absl::OkStatus();
  if (!args->is_object()) {
    return TypeError(*args, "Net.args", "struct { A *main.IPAMArgs \"json:\\\"cni\\\"\" }");
  }
  const json* cni = Field(*args, "cni");
  if (cni == nullptr) return absl::OkStatus();
  if (!cni->is_object()) return TypeError(*cni, ".args.cni", "main.IPAMArgs");
  CNINET_ASSIGN_OR_RETURN(in->args_ips, GetStrings(*cni, "ips", "IPAMArgs.args.cni.ips"));
  return absl::OkStatus();
}

/// Every input the configuration gives, type-checked (the reference's json.Unmarshal step).
absl::StatusOr<StaticInput> DecodeInput(const CmdArgs& args) {
  StaticInput in;
  bool v11 = cninet::cni::CompareVersions(args.conf.cni_version, "1.1.0") >= 0;
  if (const json* ipam = Field(args.conf.raw, "ipam")) {
    CNINET_RETURN_IF_ERROR(DecodeIpam(*ipam, v11, &in));
  }
  CNINET_RETURN_IF_ERROR(DecodeRequestedIps(args.conf.raw, &in));
  return in;
}

// CNI_ARGS, read as the reference's types.LoadArgs reads them into {IgnoreUnknown, IP, GATEWAY}.

/// Go's %q of `s`: double-quoted, with quotes, backslashes and control characters escaped.
std::string GoQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += StrCat("\\x", std::string(1, kHex[(c >> 4) & 0xf]), std::string(1, kHex[c & 0xf]));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

/// The IP= and GATEWAY= values of CNI_ARGS ("" when absent).
struct EnvArgs {
  std::string ip;       ///< IP=: comma-separated CIDRs.
  std::string gateway;  ///< GATEWAY=: comma-separated addresses.
};

/// The value of IgnoreUnknown= (1/true/0/false in any case), as Go's UnmarshallableBool.
absl::StatusOr<bool> ParseGoBool(std::string_view value, std::string_view pair) {
  std::string lower = absl::AsciiStrToLower(cninet::ToAbsl(value));
  if (lower == "1" || lower == "true") return true;
  if (lower == "0" || lower == "false") return false;
  return CniError(ErrorCode::kInvalidEnvironment,
                  StrCat("ARGS: error parsing value of pair ", GoQuote(pair),
                         ": boolean unmarshal error: invalid input ", lower));
}

/// IP, GATEWAY and IgnoreUnknown from CNI_ARGS (keys are case-sensitive; the last one wins);
/// any other key is an error unless IgnoreUnknown is true.
absl::StatusOr<EnvArgs> ParseEnvArgs(const CniArgs& cni_args) {
  EnvArgs env;
  bool ignore_unknown = false;
  std::vector<std::string> unknown;
  for (const auto& [key, value] : cni_args.pairs()) {
    std::string pair = StrCat(key, "=", value);
    if (value.find('=') != std::string::npos) {
      return CniError(ErrorCode::kInvalidEnvironment, StrCat("ARGS: invalid pair ", GoQuote(pair)));
    }
    if (key == "IP") {
      env.ip = value;
    } else if (key == "GATEWAY") {
      env.gateway = value;
    } else if (key == "IgnoreUnknown") {
      CNINET_ASSIGN_OR_RETURN(ignore_unknown, ParseGoBool(value, pair));
    } else {
      unknown.push_back(GoQuote(pair));
    }
  }
  if (!unknown.empty() && !ignore_unknown) {
    return CniError(ErrorCode::kUnsupportedField,
                    StrCat("ARGS: unknown args [", cninet::StrJoin(unknown, " "), "]"));
  }
  return env;
}

/// Appends the CNI_ARGS IP= addresses to `addresses`, then gives each GATEWAY= address to
/// every IP= address whose subnet contains it (later gateways win).
absl::Status ApplyEnvArgs(const CniArgs& cni_args, std::vector<Address>* addresses) {
  CNINET_ASSIGN_OR_RETURN(EnvArgs env, ParseEnvArgs(cni_args));
  if (!env.ip.empty()) {
    for (absl::string_view item : absl::StrSplit(env.ip, ',')) {
      std::string text(absl::StripAsciiWhitespace(item));
      std::optional<IPPrefix> prefix = ParseCidr(text);
      if (!prefix) {
        return CniError(
            ErrorCode::kInvalidEnvironment,
            StrCat("the 'ip' field is expected to be in CIDR notation, got: '", text, "'"));
      }
      addresses->push_back({text, prefix, std::nullopt});
    }
  }
  if (env.gateway.empty()) return absl::OkStatus();
  for (absl::string_view item : absl::StrSplit(env.gateway, ',')) {
    std::optional<IPAddress> gateway = ParseIp(cninet::ToStd(absl::StripAsciiWhitespace(item)));
    if (!gateway) {
      return CniError(ErrorCode::kInvalidEnvironment,
                      StrCat("invalid gateway address: ", cninet::ToStd(item)));
    }
    for (Address& a : *addresses) {
      // ipam.addresses are not parsed yet here, so (as in the reference) they never match.
      if (a.prefix && a.prefix->Contains(*gateway)) a.gateway = gateway;
    }
  }
  return absl::OkStatus();
}

/// Replaces `addresses` with `ips` (args.cni.ips or runtimeConfig.ips), without gateways.
absl::Status ReplaceAddresses(const std::vector<std::string>& ips,
                              std::vector<Address>* addresses) {
  std::vector<Address> out;
  for (const std::string& text : ips) {
    std::optional<IPPrefix> prefix = ParseCidr(text);
    if (!prefix) {
      return CniError(
          ErrorCode::kInvalidConfig,
          StrCat("an entry in the 'ips' field is NOT in CIDR notation, got: '", text, "'"));
    }
    out.push_back({text, prefix, std::nullopt});
  }
  *addresses = std::move(out);
  return absl::OkStatus();
}

/// Parses the addresses that are still text (those of ipam.addresses).
absl::Status ResolveAddresses(std::vector<Address>* addresses) {
  for (Address& a : *addresses) {
    if (a.prefix) continue;
    a.prefix = ParseCidr(a.text);
    if (!a.prefix) {
      return CniError(
          ErrorCode::kInvalidConfig,
          StrCat("the 'address' field is expected to be in CIDR notation, got: '", a.text, "'"));
    }
  }
  return absl::OkStatus();
}

/// The configuration of this call with every address source combined by precedence.
absl::StatusOr<StaticConfig> LoadConfig(const CmdArgs& args) {
  CNINET_ASSIGN_OR_RETURN(StaticInput in, DecodeInput(args));
  if (!in.has_ipam) return CniError(ErrorCode::kInvalidConfig, "IPAM config missing 'ipam' key");
  CNINET_RETURN_IF_ERROR(ApplyEnvArgs(args.args, &in.addresses));
  if (!in.args_ips.empty()) CNINET_RETURN_IF_ERROR(ReplaceAddresses(in.args_ips, &in.addresses));
  if (!in.runtime_ips.empty()) {
    CNINET_RETURN_IF_ERROR(ReplaceAddresses(in.runtime_ips, &in.addresses));
  }
  CNINET_RETURN_IF_ERROR(ResolveAddresses(&in.addresses));
  return StaticConfig{std::move(in.addresses), std::move(in.routes), std::move(in.dns)};
}

/// The static IPAM plugin: stateless, so DEL, GC and STATUS have nothing to do.
class StaticPlugin : public cninet::cni::Plugin {
 public:
  /// The configured addresses, routes and DNS as the result.
  absl::StatusOr<Result> Add(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(StaticConfig config, LoadConfig(args));
    Result result;
    for (const Address& a : config.addresses) {
      result.ips.push_back(IPConfig{.address = *a.prefix, .gateway = a.gateway});
    }
    result.routes = std::move(config.routes);
    result.dns = std::move(config.dns);
    // The reference always prints a "dns" object, empty or not.
    if (result.dns.empty()) result.extra["dns"] = json::object();
    return result;
  }

  /// Nothing was allocated: always succeeds without reading the configuration.
  absl::Status Del(const CmdArgs&) override { return absl::OkStatus(); }

  /// Validates the configuration; then each configured address found in prevResult (the first
  /// entry with the same IP) must carry the configured gateway, if one is configured. Addresses
  /// missing from prevResult are not an error, as in the reference.
  absl::Status Check(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(StaticConfig config, LoadConfig(args));
    const Result& prev = *args.conf.prev_result;
    for (const Address& a : config.addresses) {
      for (const IPConfig& ip : prev.ips) {
        IPAddress got = Canonical(ip.address.address());
        if (got != a.prefix->address()) continue;
        if (!a.gateway || (ip.gateway && Canonical(*ip.gateway) == *a.gateway)) break;
        return CniError(kAddressMismatch, StrCat("static: Failed to match addr ", got.ToString(),
                                                 " on interface ", args.ifname));
      }
    }
    return absl::OkStatus();
  }
};

}  // namespace

int main() {
  StaticPlugin plugin;
  return cninet::cni::PluginMain(
      plugin,
      {.about = "cninet-static: static IP addresses for CNI (cninet)", .needs_netns = false});
}
