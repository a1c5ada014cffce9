#include "cninet/datapath/config.h"

#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/pins.h"
#include "cninet/datapath/service_table.h"

namespace cninet::datapath {
namespace {

absl::Status Invalid(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(StrCat("datapath config: ", field, ": ", why));
}

}  // namespace

absl::Status DatapathConfig::Validate() const {
  if (pin_maps) {
    if (bpffs_root.empty() || bpffs_root[0] != '/')
      return Invalid("bpffs_root", "must be an absolute path");
    if (instance.empty() || instance.find('/') != std::string::npos || instance == "." ||
        instance == "..")
      return Invalid("instance", "must be a non-empty name without '/'");
  }
  bool have_v4 = false, have_v6 = false;
  for (const cni::IPPrefix& c : ClusterCidrs()) {
    if (c.prefix_len() < 1 || c.prefix_len() > c.address().bit_length())
      return Invalid("cluster_cidr",
                     StrCat(c.ToString(), ": prefix length must be 1..", c.address().bit_length()));
    bool& have = c.is_v4() ? have_v4 : have_v6;
    if (have) return Invalid("cluster_cidrs", "at most one prefix per address family");
    have = true;
  }
  if (node_addresses.empty() || node_addresses.size() > CN_MAX_NODE_ADDRS)
    return Invalid("node_addresses", StrCat("need 1..", CN_MAX_NODE_ADDRS, " addresses"));
  for (const auto& a : node_addresses) {
    if (a.IsUnspecified())
      return Invalid("node_addresses", StrCat(a.ToString(), " is not a usable address"));
  }
  if (nat_port_min == 0 || nat_port_min > nat_port_max)
    return Invalid("nat_port_min/max", "need 1 <= min <= max");
  if (nat_retries > 63) return Invalid("nat_retries", "at most 63 (BPF loop bound)");
  if (service_mark > 0xffff)
    return Invalid("service_mark", "must fit the 16 bits VXLAN GBP carries (0 = off)");
  auto check_timeout = [](std::string_view name, std::chrono::seconds s) -> absl::Status {
    if (s.count() < 1 || s.count() > 7 * 24 * 3600) return Invalid(name, "must be 1 s .. 7 days");
    return absl::OkStatus();
  };
  if (auto s = check_timeout("timeouts.tcp_syn", timeouts.tcp_syn); !s.ok()) return s;
  if (auto s = check_timeout("timeouts.tcp_established", timeouts.tcp_established); !s.ok())
    return s;
  if (auto s = check_timeout("timeouts.tcp_closing", timeouts.tcp_closing); !s.ok()) return s;
  if (auto s = check_timeout("timeouts.udp", timeouts.udp); !s.ok()) return s;
  if (auto s = check_timeout("timeouts.other", timeouts.other); !s.ok()) return s;
  const MapSizes& m = map_sizes;
  if (m.conntrack < 16 || m.nat < 16 || m.services < 1 || m.backends < 1 || m.affinity < 1 ||
      m.endpoints < 1)
    return Invalid("map_sizes", "conntrack and nat need >= 16 entries, the others >= 1");
  if (m.service_slots < 2 || m.service_slots > kMaxServiceId + 1)
    return Invalid("map_sizes.service_slots", StrCat("must be 2..", kMaxServiceId + 1));
  if (m.policy_endpoints < 1 || m.policy_identities < 1 || m.policy_prefixes < 1 ||
      m.policy_rules < 1 || m.policy_counters < 16)
    return Invalid("map_sizes.policy_*", "need >= 1 entry (policy_counters >= 16)");
  if (m.monitor_ring_bytes < 4096 || (m.monitor_ring_bytes & (m.monitor_ring_bytes - 1)) != 0)
    return Invalid("map_sizes.monitor_ring_bytes", "must be a power of two >= 4096");
  return absl::OkStatus();
}

std::vector<cni::IPPrefix> DatapathConfig::ClusterCidrs() const {
  if (!cluster_cidrs.empty()) return cluster_cidrs;
  return {cluster_cidr};
}

std::string DatapathConfig::PinDir() const { return PinLayout::For(bpffs_root, instance).MapDir(); }

PinLayout PinLayout::For(std::string_view bpffs_root, std::string_view instance) {
  return PinLayout{std::string(bpffs_root), std::string(instance)};
}

std::string PinLayout::Root() const { return StrCat(bpffs_root, "/cninet"); }
std::string PinLayout::MapDir() const { return StrCat(Root(), "/", instance); }
std::string PinLayout::SocketLbDir() const { return StrCat(MapDir(), "/socklb"); }
std::string PinLayout::SocketLbLinkDir(uint64_t cgroup_id) const {
  return StrCat(SocketLbDir(), "/cgroup_", cgroup_id);
}
std::string PinLayout::MapPath(std::string_view map_name) const {
  return StrCat(MapDir(), "/", map_name);
}
std::string PinLayout::ProgramDir() const { return StrCat(MapDir(), "/programs"); }
std::string PinLayout::ProgramPath(std::string_view program_name) const {
  return StrCat(ProgramDir(), "/", program_name);
}

}  // namespace cninet::datapath
