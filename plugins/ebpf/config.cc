#include "config.h"

#include <algorithm>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/config_reader.h"
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

// Optional unsigned `key` of `r` within [min, max] into *out (unchanged when absent).
absl::Status ReadUint(const cni::ConfigReader& r, const char* key, uint32_t min, uint32_t max,
                      uint32_t* out) {
  if (!r.Has(key)) return absl::OkStatus();
  CNINET_ASSIGN_OR_RETURN(*out, r.Get<uint32_t>(key));
  if (*out < min || *out > max) {
    return Invalid(r.PathOf(key), StrCat("must be an integer in ", min, "..", max, ", not ", *out));
  }
  return absl::OkStatus();
}

bool AbsolutePath(const std::string& p) { return !p.empty() && p[0] == '/'; }

// clusterCIDR (required), masquerade, uplink and nodeAddresses: what the datapath serves.
absl::Status ReadNetwork(const cni::ConfigReader& r, ChainConfig& c) {
  CNINET_ASSIGN_OR_RETURN(std::string cidr, r.Optional<std::string>("clusterCIDR", ""));
  CNINET_ASSIGN_OR_RETURN(std::vector<std::string> cidrs,
                          r.Optional<std::vector<std::string>>("clusterCIDRs", {}));
  if (!cidr.empty()) cidrs.insert(cidrs.begin(), cidr);
  if (cidrs.empty())
    return Invalid("clusterCIDR", "is required (the pods' prefix, e.g. \"10.88.0.0/16\")");
  for (const std::string& text : cidrs) {
    auto prefix = cni::IPPrefix::Parse(text);
    if (!prefix.ok() || prefix->prefix_len() < 1)
      return Invalid("clusterCIDR", StrCat("\"", text, "\" is not a prefix"));
    cni::IPPrefix p = prefix->Masked();
    if (std::find(c.cluster_cidrs.begin(), c.cluster_cidrs.end(), p) != c.cluster_cidrs.end())
      continue;
    for (const auto& have : c.cluster_cidrs)
      if (have.is_v4() == p.is_v4())
        return Invalid("clusterCIDRs", "at most one prefix per address family");
    c.cluster_cidrs.push_back(p);
  }
  c.cluster_cidr = c.cluster_cidrs.front();
  // The datapath keeps them per family, IPv4 first (what a pinned instance reports back).
  std::stable_sort(
      c.cluster_cidrs.begin(), c.cluster_cidrs.end(),
      [](const cni::IPPrefix& a, const cni::IPPrefix& b) { return a.is_v4() && !b.is_v4(); });
  CNINET_ASSIGN_OR_RETURN(c.masquerade, r.Optional<bool>("masquerade", c.masquerade));
  CNINET_ASSIGN_OR_RETURN(c.uplink, r.Optional<std::string>("uplink", c.uplink));
  if (!c.uplink.empty() &&
      (c.uplink.size() > 15 || c.uplink.find_first_of("/: \t\n") != std::string::npos)) {
    return Invalid("uplink", StrCat("\"", c.uplink, "\" is not an interface name"));
  }
  CNINET_ASSIGN_OR_RETURN(std::vector<std::string> addresses,
                          r.Optional<std::vector<std::string>>("nodeAddresses", {}));
  for (const std::string& a : addresses) {
    auto ip = cni::IPAddress::Parse(a);
    if (!ip.ok() || ip->IsUnspecified())
      return Invalid("nodeAddresses", StrCat("\"", a, "\" is not an address"));
    c.node_addresses.push_back(*ip);
  }
  if (c.node_addresses.size() > 4) return Invalid("nodeAddresses", "at most 4 addresses");
  return absl::OkStatus();
}

// bpffsRoot, instance and stateDir: where the instance's pins and records live.
absl::Status ReadPlaces(const cni::ConfigReader& r, const cni::NetConf& conf, ChainConfig& c) {
  CNINET_ASSIGN_OR_RETURN(c.bpffs_root, r.Optional<std::string>("bpffsRoot", c.bpffs_root));
  if (!AbsolutePath(c.bpffs_root)) return Invalid("bpffsRoot", "must be an absolute path");
  std::string instance = conf.name;
  std::replace(instance.begin(), instance.end(), '.', '-');
  CNINET_ASSIGN_OR_RETURN(c.instance, r.Optional<std::string>("instance", instance));
  if (!cni::ValidateNetworkName(c.instance).ok() || c.instance.find('.') != std::string::npos) {
    return Invalid("instance", StrCat("\"", c.instance,
                                      "\" must match [a-zA-Z0-9][a-zA-Z0-9_-]* (a bpffs name)"));
  }
  CNINET_ASSIGN_OR_RETURN(c.state_dir, r.Optional<std::string>("stateDir", c.state_dir));
  if (!AbsolutePath(c.state_dir)) return Invalid("stateDir", "must be an absolute path");
  return absl::OkStatus();
}

// mapSizes: every map's capacity, each within what the datapath supports.
absl::Status ReadMapSizes(const cni::ConfigReader& r, datapath::MapSizes& m) {
  CNINET_ASSIGN_OR_RETURN(std::optional<cni::ConfigReader> sizes, r.OptionalObject("mapSizes"));
  if (!sizes) return absl::OkStatus();
  constexpr uint32_t kMax = 1u << 24;
  CNINET_RETURN_IF_ERROR(ReadUint(*sizes, "conntrack", 16, kMax, &m.conntrack));
  CNINET_RETURN_IF_ERROR(ReadUint(*sizes, "nat", 16, kMax, &m.nat));
  CNINET_RETURN_IF_ERROR(ReadUint(*sizes, "services", 1, kMax, &m.services));
  CNINET_RETURN_IF_ERROR(
      ReadUint(*sizes, "serviceSlots", 2, datapath::kMaxServiceId + 1, &m.service_slots));
  CNINET_RETURN_IF_ERROR(ReadUint(*sizes, "backends", 1, kMax, &m.backends));
  CNINET_RETURN_IF_ERROR(ReadUint(*sizes, "affinity", 1, kMax, &m.affinity));
  CNINET_RETURN_IF_ERROR(ReadUint(*sizes, "endpoints", 1, kMax, &m.endpoints));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ChainConfig> ChainConfig::FromNetConf(const cni::NetConf& conf) {
  cni::ConfigReader r(conf.raw);
  ChainConfig c;
  CNINET_RETURN_IF_ERROR(ReadNetwork(r, c));
  CNINET_RETURN_IF_ERROR(ReadPlaces(r, conf, c));
  CNINET_ASSIGN_OR_RETURN(c.teardown_when_idle,
                          r.Optional<bool>("teardownWhenIdle", c.teardown_when_idle));
  CNINET_RETURN_IF_ERROR(ReadUint(r, "serviceMark", 0, 0xffff, &c.service_mark));
  CNINET_ASSIGN_OR_RETURN(c.socket_lb, r.Optional<bool>("socketLb", c.socket_lb));
  CNINET_RETURN_IF_ERROR(ReadMapSizes(r, c.map_sizes));
  CNINET_RETURN_IF_ERROR(ReadUint(r, "hostPortIds", 1, datapath::kMaxServiceId, &c.host_port_ids));
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
  d.cluster_cidrs = cluster_cidrs;
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
