#include "cninet/cni/conf.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/cni/version.h"
#include "json_util.h"

namespace cninet::cni {
namespace {

using internal::ReadBool;
using internal::ReadString;
using internal::TypeError;

bool IsNameChar(char c, bool first) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return !first && (c == '_' || c == '.' || c == '-');
}

bool MatchesNameRule(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsNameChar(s[i], i == 0)) return false;
  }
  return true;
}

absl::Status ReadObject(const nlohmann::json& j, std::string_view where, const char* key,
                        nlohmann::json* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return TypeError(where, key, "an object", *it);
  *out = *it;
  return absl::OkStatus();
}

// libcni accepts disableCheck/disableGC as booleans or as the strings "true"/"false".
absl::Status ReadLooseBool(const nlohmann::json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (it->is_boolean()) {
    *out = it->get<bool>();
    return absl::OkStatus();
  }
  if (it->is_string()) {
    std::string v = absl::AsciiStrToLower(it->get<std::string>());
    if (v == "true" || v == "1") {
      *out = true;
      return absl::OkStatus();
    }
    if (v == "false" || v == "0") {
      *out = false;
      return absl::OkStatus();
    }
  }
  if (it->is_string()) {
    return CniError(ErrorCode::kInvalidConfig,
                    cninet::StrCat("invalid value for \"", key, "\": ", internal::Dump(*it)));
  }
  return CniError(
      ErrorCode::kDecodeFailure,
      cninet::StrCat("cannot decode \"", key, "\": want a boolean, got ", internal::Dump(*it)));
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return CniError(ErrorCode::kIoFailure, cninet::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool HasSuffix(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

absl::Status ValidateContainerId(std::string_view id) {
  if (id.empty()) return CniError(ErrorCode::kUnknownContainer, "missing containerID");
  if (!MatchesNameRule(id)) {
    return CniError(ErrorCode::kInvalidEnvironment,
                    "invalid characters in containerID (CNI_CONTAINERID)", id);
  }
  return absl::OkStatus();
}

absl::Status ValidateInterfaceName(std::string_view ifname) {
  if (ifname.empty()) {
    return CniError(ErrorCode::kInvalidEnvironment, "interface name (CNI_IFNAME) is empty");
  }
  if (ifname.size() > 15) {
    return CniError(ErrorCode::kInvalidEnvironment, "interface name (CNI_IFNAME) is too long",
                    cninet::StrCat("\"", ifname, "\" has ", ifname.size(),
                                   " characters; at most 15 are allowed"));
  }
  if (!IsValidUtf8(ifname)) {
    return CniError(ErrorCode::kInvalidEnvironment,
                    "interface name (CNI_IFNAME) is not valid UTF-8");
  }
  if (ifname == "." || ifname == "..") {
    return CniError(ErrorCode::kInvalidEnvironment, "interface name (CNI_IFNAME) is . or ..");
  }
  for (char c : ifname) {
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) || c == '\0') {
      return CniError(ErrorCode::kInvalidEnvironment,
                      "interface name (CNI_IFNAME) contains / or : or whitespace", ifname);
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNetworkName(std::string_view name) {
  if (name.empty()) return CniError(ErrorCode::kInvalidConfig, "missing network name");
  if (!MatchesNameRule(name)) {
    return CniError(ErrorCode::kInvalidConfig, "invalid characters found in network name", name);
  }
  return absl::OkStatus();
}

absl::Status ValidatePluginType(std::string_view type) {
  if (type.empty()) return CniError(ErrorCode::kInvalidConfig, "missing plugin \"type\"");
  if (type == "." || type == ".." ||
      type.find_first_of(std::string_view("/\\\0", 3)) != std::string_view::npos) {
    return CniError(ErrorCode::kInvalidConfig, "invalid plugin type", type);
  }
  return absl::OkStatus();
}

// ---- RuntimeConfig ----

namespace {

bool ReadPort(const nlohmann::json& v, uint16_t* out) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 65535) return false;
  *out = static_cast<uint16_t>(v.get<int64_t>());
  return true;
}

// runtimeConfig.portMappings (the portMappings capability); protocols lowercased, default tcp.
absl::Status ReadPortMappings(const nlohmann::json& list, std::vector<PortMapping>& out) {
  if (!list.is_array()) return TypeError("runtimeConfig", "portMappings", "a list", list);
  for (const auto& e : list) {
    PortMapping pm;
    if (!e.is_object() || !e.contains("hostPort") || !e.contains("containerPort") ||
        !ReadPort(e["hostPort"], &pm.host_port) ||
        !ReadPort(e["containerPort"], &pm.container_port)) {
      return CniError(
          ErrorCode::kDecodeFailure,
          cninet::StrCat("cannot decode runtimeConfig.portMappings entry ", internal::Dump(e)));
    }
    CNINET_RETURN_IF_ERROR(ReadString(e, "portMappings", "protocol", &pm.protocol));
    pm.protocol = absl::AsciiStrToLower(pm.protocol);
    if (pm.protocol.empty()) pm.protocol = "tcp";
    CNINET_RETURN_IF_ERROR(ReadString(e, "portMappings", "hostIP", &pm.host_ip));
    out.push_back(std::move(pm));
  }
  return absl::OkStatus();
}

// runtimeConfig.bandwidth (the bandwidth capability).
absl::StatusOr<BandwidthLimits> ReadBandwidth(const nlohmann::json& j) {
  if (!j.is_object()) return TypeError("runtimeConfig", "bandwidth", "an object", j);
  BandwidthLimits b;
  for (auto [key, field] :
       {std::pair{"ingressRate", &b.ingress_rate}, std::pair{"ingressBurst", &b.ingress_burst},
        std::pair{"egressRate", &b.egress_rate}, std::pair{"egressBurst", &b.egress_burst}}) {
    if (auto f = j.find(key); f != j.end() && !f->is_null()) {
      if (!f->is_number_unsigned())
        return TypeError("runtimeConfig.bandwidth", key, "an unsigned integer", *f);
      *field = f->get<uint64_t>();
    }
  }
  return b;
}

// runtimeConfig.dns: the runtime's dns capability uses "servers"/"searches" (CONVENTIONS.md).
absl::StatusOr<DNS> ReadDnsCapability(const nlohmann::json& j) {
  if (!j.is_object()) return TypeError("runtimeConfig", "dns", "an object", j);
  DNS d;
  CNINET_RETURN_IF_ERROR(
      internal::ReadStringList(j, "runtimeConfig.dns", "servers", &d.nameservers));
  CNINET_RETURN_IF_ERROR(internal::ReadStringList(j, "runtimeConfig.dns", "searches", &d.search));
  CNINET_RETURN_IF_ERROR(internal::ReadStringList(j, "runtimeConfig.dns", "options", &d.options));
  return d;
}

}  // namespace

absl::StatusOr<RuntimeConfig> RuntimeConfig::FromJson(const nlohmann::json& j) {
  constexpr std::string_view kWhere = "runtimeConfig";
  RuntimeConfig rc;
  if (j.is_null()) return rc;
  if (!j.is_object()) return TypeError("network config", "runtimeConfig", "an object", j);
  if (auto it = j.find("portMappings"); it != j.end() && !it->is_null()) {
    CNINET_RETURN_IF_ERROR(ReadPortMappings(*it, rc.port_mappings));
  }
  CNINET_RETURN_IF_ERROR(internal::ReadStringList(j, kWhere, "ips", &rc.ips));
  if (auto it = j.find("mac"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return TypeError(kWhere, "mac", "a string", *it);
    rc.mac = it->get<std::string>();
  }
  if (auto it = j.find("bandwidth"); it != j.end() && !it->is_null()) {
    CNINET_ASSIGN_OR_RETURN(rc.bandwidth, ReadBandwidth(*it));
  }
  if (auto it = j.find("dns"); it != j.end() && !it->is_null()) {
    CNINET_ASSIGN_OR_RETURN(rc.dns, ReadDnsCapability(*it));
  }
  CNINET_RETURN_IF_ERROR(internal::ReadStringList(j, kWhere, "aliases", &rc.aliases));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "cgroupPath", &rc.cgroup_path));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "deviceID", &rc.device_id));
  return rc;
}

// ---- NetConf ----

absl::StatusOr<NetConf> NetConf::FromJson(const nlohmann::json& j) {
  constexpr std::string_view kWhere = "network config";
  if (!j.is_object()) {
    return CniError(
        ErrorCode::kDecodeFailure,
        cninet::StrCat("cannot decode network config: expected an object, got ", j.type_name()));
  }
  NetConf c;
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "cniVersion", &c.cni_version));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "name", &c.name));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "type", &c.type));
  if (auto it = j.find("capabilities"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return TypeError(kWhere, "capabilities", "an object", *it);
    for (auto cap = it->begin(); cap != it->end(); ++cap) {
      if (!cap->is_boolean())
        return TypeError(kWhere, "capabilities", "an object of booleans", *it);
      c.capabilities[cap.key()] = cap->get<bool>();
    }
  }
  CNINET_RETURN_IF_ERROR(ReadObject(j, kWhere, "ipam", &c.ipam));
  if (c.ipam.contains("type") && !c.ipam["type"].is_string()) {
    return TypeError("ipam", "type", "a string", c.ipam["type"]);
  }
  if (auto it = j.find("dns"); it != j.end() && !it->is_null()) {
    CNINET_ASSIGN_OR_RETURN(DNS dns, DNS::FromJson(*it));
    c.dns = std::move(dns);
  }
  CNINET_RETURN_IF_ERROR(ReadObject(j, kWhere, "runtimeConfig", &c.runtime_config));
  CNINET_RETURN_IF_ERROR(ReadObject(j, kWhere, "args", &c.args));
  CNINET_RETURN_IF_ERROR(ReadBool(j, kWhere, "ipMasq", &c.ip_masq));
  if (auto it = j.find("prevResult"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return TypeError(kWhere, "prevResult", "an object", *it);
    c.raw_prev_result = *it;
    // libcni parses prevResult in the configuration's version.
    nlohmann::json pr = *it;
    if (!pr.contains("cniVersion") && !c.cni_version.empty()) pr["cniVersion"] = c.cni_version;
    auto parsed = Result::FromJson(pr);
    if (!parsed.ok()) {
      return CniError(GetErrorCode(parsed.status()),
                      cninet::StrCat("could not parse prevResult: ", parsed.status().message()));
    }
    c.prev_result = std::move(*parsed);
  }
  CNINET_RETURN_IF_ERROR(ValidateNetworkName(c.name));
  c.raw = j;
  return c;
}

absl::StatusOr<NetConf> NetConf::Parse(std::string_view text) {
  CNINET_ASSIGN_OR_RETURN(nlohmann::json j, internal::ParseJson(text, "network config"));
  return FromJson(j);
}

std::string NetConf::IpamType() const {
  if (ipam.is_object()) {
    if (auto it = ipam.find("type"); it != ipam.end() && it->is_string())
      return it->get<std::string>();
  }
  return "";
}

// ---- NetConfList ----

absl::StatusOr<NetConfList> NetConfList::FromJson(const nlohmann::json& j) {
  constexpr std::string_view kWhere = "network config list";
  if (!j.is_object()) {
    return CniError(ErrorCode::kDecodeFailure,
                    cninet::StrCat("cannot decode network config list: expected an object, got ",
                                   j.type_name()));
  }
  NetConfList l;
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "cniVersion", &l.cni_version));
  CNINET_RETURN_IF_ERROR(internal::ReadStringList(j, kWhere, "cniVersions", &l.cni_versions));
  CNINET_RETURN_IF_ERROR(ReadString(j, kWhere, "name", &l.name));
  CNINET_RETURN_IF_ERROR(ValidateNetworkName(l.name));
  CNINET_RETURN_IF_ERROR(ReadLooseBool(j, "disableCheck", &l.disable_check));
  CNINET_RETURN_IF_ERROR(ReadLooseBool(j, "disableGC", &l.disable_gc));
  auto it = j.find("plugins");
  if (it == j.end() || it->is_null()) {
    return CniError(ErrorCode::kInvalidConfig,
                    cninet::StrCat("network config list \"", l.name, "\" has no \"plugins\""));
  }
  if (!it->is_array()) return TypeError(kWhere, "plugins", "a list", *it);
  if (it->empty()) {
    return CniError(ErrorCode::kInvalidConfig,
                    cninet::StrCat("network config list \"", l.name, "\" has no plugins"));
  }
  for (const auto& p : *it) {
    if (!p.is_object()) return TypeError(kWhere, "plugins", "a list of objects", p);
    std::string type;
    CNINET_RETURN_IF_ERROR(ReadString(p, "plugin config", "type", &type));
    CNINET_RETURN_IF_ERROR(ValidatePluginType(type));
    l.plugins.push_back(p);
  }
  for (const std::string& v : l.cni_versions)
    CNINET_RETURN_IF_ERROR(SpecVersion::Parse(v).status());
  if (!l.cni_version.empty()) CNINET_RETURN_IF_ERROR(SpecVersion::Parse(l.cni_version).status());
  l.raw = j;
  return l;
}

absl::StatusOr<NetConfList> NetConfList::Parse(std::string_view text) {
  CNINET_ASSIGN_OR_RETURN(nlohmann::json j, internal::ParseJson(text, "network config list"));
  return FromJson(j);
}

absl::StatusOr<NetConfList> NetConfList::FromSingle(const nlohmann::json& conf) {
  CNINET_ASSIGN_OR_RETURN(NetConf c, NetConf::FromJson(conf));
  CNINET_RETURN_IF_ERROR(ValidatePluginType(c.type));
  nlohmann::json list = nlohmann::json::object();
  list["cniVersion"] = c.cni_version;
  list["name"] = c.name;
  list["plugins"] = nlohmann::json::array({conf});
  return FromJson(list);
}

absl::StatusOr<std::string> NetConfList::SelectedVersion() const {
  std::vector<std::string> candidates = cni_versions;
  if (!cni_version.empty()) candidates.push_back(cni_version);
  std::string best;
  for (const std::string& v : candidates) {
    if (IsSupportedVersion(v) && (best.empty() || CompareVersions(v, best) > 0)) best = v;
  }
  if (best.empty()) {
    return CniError(ErrorCode::kIncompatibleVersion,
                    cninet::StrCat("network \"", name, "\": none of its versions is supported"),
                    cninet::StrCat("config: [", cninet::StrJoin(candidates, " "), "], supported: [",
                                   cninet::StrJoin(SupportedVersions(), " "), "]"));
  }
  return best;
}

// ---- Loading from disk ----

absl::StatusOr<NetConfList> LoadConfListFile(const std::string& path) {
  CNINET_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  absl::StatusOr<NetConfList> list;
  if (HasSuffix(path, ".conflist")) {
    list = NetConfList::Parse(text);
  } else {
    CNINET_ASSIGN_OR_RETURN(nlohmann::json j, internal::ParseJson(text, path));
    // A .conf/.json holding a list (has "plugins") is accepted as a list.
    list = j.is_object() && j.contains("plugins") ? NetConfList::FromJson(j)
                                                  : NetConfList::FromSingle(j);
  }
  if (!list.ok()) return Annotate(list.status(), path);
  list->source = path;
  return list;
}

absl::StatusOr<std::vector<std::string>> ConfFiles(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return CniError(ErrorCode::kIoFailure,
                    cninet::StrCat("cannot read configuration directory ", dir));
  }
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (!HasSuffix(name, ".conf") && !HasSuffix(name, ".conflist") && !HasSuffix(name, ".json"))
      continue;
    std::string path = dir + "/" + name;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) files.push_back(path);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<NetConfList> LoadConfList(const std::string& dir, std::string_view name) {
  CNINET_ASSIGN_OR_RETURN(std::vector<std::string> files, ConfFiles(dir));
  // Like libcni: .conflist files first, then single .conf/.json files.
  for (int pass = 0; pass < 2; ++pass) {
    for (const std::string& f : files) {
      if (HasSuffix(f, ".conflist") != (pass == 0)) continue;
      auto list = LoadConfListFile(f);
      if (!list.ok()) {
        CNINET_LOG(kWarning, "skipping ", f, ": ", list.status().message());
        continue;
      }
      if (list->name == name) return list;
    }
  }
  return absl::NotFoundError(cninet::StrCat("no network named \"", name, "\" in ", dir));
}

absl::StatusOr<NetConfList> LoadFirstConfList(const std::string& dir) {
  CNINET_ASSIGN_OR_RETURN(std::vector<std::string> files, ConfFiles(dir));
  if (files.empty())
    return absl::NotFoundError(cninet::StrCat("no network configuration in ", dir));
  return LoadConfListFile(files.front());
}

// ---- CNI_ARGS ----

absl::StatusOr<CniArgs> CniArgs::Parse(std::string_view text) {
  CniArgs a;
  if (!IsValidUtf8(text))
    return CniError(ErrorCode::kInvalidEnvironment, "CNI_ARGS is not valid UTF-8");
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view pair = text.substr(start, end - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return CniError(ErrorCode::kInvalidEnvironment,
                        cninet::StrCat("CNI_ARGS: invalid pair \"", pair, "\""),
                        "CNI_ARGS must be K=V pairs separated by ';'");
      }
      a.pairs_.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
    }
    start = end + 1;
  }
  return a;
}

std::optional<std::string> CniArgs::Get(std::string_view key) const {
  for (auto it = pairs_.rbegin(); it != pairs_.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return std::nullopt;
}

bool CniArgs::ignore_unknown() const {
  auto v = Get("IgnoreUnknown");
  if (!v) v = Get("IGNORE_UNKNOWN");
  if (!v) return false;
  std::string s = absl::AsciiStrToLower(*v);
  return s == "1" || s == "true";
}

absl::Status CniArgs::CheckKnown(const std::vector<std::string_view>& known) const {
  if (ignore_unknown()) return absl::OkStatus();
  for (const auto& [k, v] : pairs_) {
    if (k == "IgnoreUnknown" || k == "IGNORE_UNKNOWN") continue;
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      return CniError(ErrorCode::kUnsupportedField,
                      cninet::StrCat("CNI_ARGS: unknown key \"", k, "\" (value \"", v, "\")"));
    }
  }
  return absl::OkStatus();
}

std::string CniArgs::ToString() const {
  std::string out;
  for (const auto& [k, v] : pairs_) {
    if (!out.empty()) out += ";";
    out += k + "=" + v;
  }
  return out;
}

}  // namespace cninet::cni
