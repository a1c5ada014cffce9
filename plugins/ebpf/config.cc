#include "config.h"

#include <algorithm>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/datapath/service_table.h"
#include "cninet/datapath/tc.h"

namespace cninet::ebpf_chain {
namespace {

using cni::CniError;
using cni::ErrorCode;

absl::Status Invalid(std::string_view key, std::string_view why) {
  return CniError(ErrorCode::kInvalidConfig, StrCat("cninet-ebpf: ", key, ": ", why));
}

// Reads an optional key of `type`-checking kind into *out via `get`.
absl::Status ReadString(const nlohmann::json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return Invalid(key, StrCat("must be a string, not ", it->dump()));
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadBool(const nlohmann::json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return Invalid(key, StrCat("must be a boolean, not ", it->dump()));
  *out = it->get<bool>();
  return absl::OkStatus();
}

absl::Status ReadUint(const nlohmann::json& j, const char* key, uint32_t min, uint32_t max,
                      uint32_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > max) {
    return Invalid(key, StrCat("must be an integer in ", min, "..", max, ", not ", it->dump()));
  }
  *out = static_cast<uint32_t>(it->get<int64_t>());
  return absl::OkStatus();
}

bool AbsolutePath(const std::string& p) { return !p.empty() && p[0] == '/'; }

}  // namespace

absl::StatusOr<ChainConfig> ChainConfig::FromNetConf(const cni::NetConf& conf) {
  const nlohmann::json& j = conf.raw;
  ChainConfig c;
  std::string cidr;
  CNINET_RETURN_IF_ERROR(ReadString(j, "clusterCIDR", &cidr));
  if (cidr.empty())
    return Invalid("clusterCIDR", "is required (the pods' IPv4 prefix, e.g. \"10.88.0.0/16\")");
  auto prefix = cni::IPPrefix::Parse(cidr);
  if (!prefix.ok() || !prefix->is_v4() || prefix->prefix_len() < 1) {
    return Invalid("clusterCIDR", StrCat("\"", cidr, "\" is not an IPv4 prefix"));
  }
  c.cluster_cidr = prefix->Masked();
  CNINET_RETURN_IF_ERROR(ReadBool(j, "masquerade", &c.masquerade));
  CNINET_RETURN_IF_ERROR(ReadString(j, "uplink", &c.uplink));
  if (!c.uplink.empty() &&
      (c.uplink.size() > 15 || c.uplink.find_first_of("/: \t\n") != std::string::npos)) {
    return Invalid("uplink", StrCat("\"", c.uplink, "\" is not an interface name"));
  }
  if (auto it = j.find("nodeAddresses"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Invalid("nodeAddresses", "must be an array of IPv4 addresses");
    for (const auto& a : *it) {
      auto ip = a.is_string() ? cni::IPAddress::Parse(a.get<std::string>())
                              : absl::InvalidArgumentError("");
      if (!ip.ok() || !ip->is_v4() || ip->IsUnspecified())
        return Invalid("nodeAddresses", StrCat(a.dump(), " is not an IPv4 address"));
      c.node_addresses.push_back(*ip);
    }
    if (c.node_addresses.size() > 4) return Invalid("nodeAddresses", "at most 4 addresses");
  }
  CNINET_RETURN_IF_ERROR(ReadString(j, "bpffsRoot", &c.bpffs_root));
  if (!AbsolutePath(c.bpffs_root)) return Invalid("bpffsRoot", "must be an absolute path");
  c.instance = conf.name;
  std::replace(c.instance.begin(), c.instance.end(), '.', '-');
  CNINET_RETURN_IF_ERROR(ReadString(j, "instance", &c.instance));
  if (!cni::ValidateNetworkName(c.instance).ok() || c.instance.find('.') != std::string::npos) {
    return Invalid("instance", StrCat("\"", c.instance,
                                      "\" must match [a-zA-Z0-9][a-zA-Z0-9_-]* (a bpffs name)"));
  }
  CNINET_RETURN_IF_ERROR(ReadString(j, "stateDir", &c.state_dir));
  if (!AbsolutePath(c.state_dir)) return Invalid("stateDir", "must be an absolute path");
  CNINET_RETURN_IF_ERROR(ReadBool(j, "teardownWhenIdle", &c.teardown_when_idle));
  CNINET_RETURN_IF_ERROR(ReadUint(j, "serviceMark", 0, 0xffff, &c.service_mark));
  if (auto it = j.find("mapSizes"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Invalid("mapSizes", "must be an object");
    datapath::MapSizes& m = c.map_sizes;
    constexpr uint32_t kMax = 1u << 24;
    CNINET_RETURN_IF_ERROR(ReadUint(*it, "conntrack", 16, kMax, &m.conntrack));
    CNINET_RETURN_IF_ERROR(ReadUint(*it, "nat", 16, kMax, &m.nat));
    CNINET_RETURN_IF_ERROR(ReadUint(*it, "services", 1, kMax, &m.services));
    CNINET_RETURN_IF_ERROR(
        ReadUint(*it, "serviceSlots", 2, datapath::kMaxServiceId + 1, &m.service_slots));
    CNINET_RETURN_IF_ERROR(ReadUint(*it, "backends", 1, kMax, &m.backends));
    CNINET_RETURN_IF_ERROR(ReadUint(*it, "affinity", 1, kMax, &m.affinity));
    CNINET_RETURN_IF_ERROR(ReadUint(*it, "endpoints", 1, kMax, &m.endpoints));
  }
  CNINET_RETURN_IF_ERROR(ReadUint(j, "hostPortIds", 1, datapath::kMaxServiceId, &c.host_port_ids));
  if (c.host_port_ids >= c.map_sizes.service_slots) {
    return Invalid("hostPortIds",
                   StrCat("must be below mapSizes.serviceSlots (", c.map_sizes.service_slots, ")"));
  }
  return c;
}

std::string ChainConfig::InstanceStateDir() const { return StrCat(state_dir, "/", instance); }

datapath::PinLayout ChainConfig::Pins() const {
  return datapath::PinLayout::For(bpffs_root, instance);
}

std::string ChainConfig::PinDir() const { return Pins().MapDir(); }

std::string ChainConfig::ProgramPinDir() const { return Pins().ProgramDir(); }

std::string ChainConfig::ProgramPinPath() const {
  return Pins().ProgramPath(datapath::HookPinName(datapath::Hook::kFromPod));
}

datapath::DatapathConfig ChainConfig::ToDatapathConfig(
    const std::vector<cni::IPAddress>& addresses) const {
  datapath::DatapathConfig d;
  d.bpffs_root = bpffs_root;
  d.instance = instance;
  d.pin_maps = true;
  d.cluster_cidr = cluster_cidr;
  d.node_addresses = addresses;
  d.masquerade = masquerade;
  d.map_sizes = map_sizes;
  d.service_mark = service_mark;
  return d;
}

absl::Status ValidatePortMappings(const std::vector<cni::PortMapping>& mappings) {
  for (const auto& m : mappings) {
    std::string what =
        StrCat("portMappings ", m.host_port, "->", m.container_port, "/", m.protocol);
    if (m.protocol == "sctp") {
      return CniError(ErrorCode::kUnsupportedField,
                      StrCat(what, ": sctp is not supported by the datapath"));
    }
    if (m.protocol != "tcp" && m.protocol != "udp")
      return Invalid(what, "protocol must be tcp or udp");
    if (m.host_port == 0 || m.container_port == 0) return Invalid(what, "ports must be 1..65535");
    if (!m.host_ip.empty()) {
      auto ip = cni::IPAddress::Parse(m.host_ip);
      if (!ip.ok()) return Invalid(what, StrCat("hostIP \"", m.host_ip, "\" is not an address"));
    }
  }
  return absl::OkStatus();
}

}  // namespace cninet::ebpf_chain
