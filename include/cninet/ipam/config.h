/// @file
/// The IPAM configuration, read the way the reference host-local plugin reads it: from the whole
/// network configuration (IPAM plugins receive their parent's config), its "ipam" section
/// (ranges, legacy subnet/rangeStart/rangeEnd/gateway, routes, dataDir, resolvConf), requested
/// addresses (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips) and runtimeConfig.ipRanges.
///
/// Error codes: 6 when the text is not JSON or a field has the wrong JSON type; 7 for invalid
/// values (bad CIDR, host bits, overlapping range sets, bad names, no ranges); 4 for a malformed
/// CNI_ARGS; 2 for an unknown CNI_ARGS key without IgnoreUnknown=1.
#ifndef CNINET_IPAM_CONFIG_H_
#define CNINET_IPAM_CONFIG_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/cni/types.h"
#include "cninet/ipam/disk_store.h"
#include "cninet/ipam/range.h"
#include "nlohmann/json.hpp"

namespace cninet::ipam {

/// A parsed, canonical host-local configuration. Defaults are documented per field.
struct IpamConfig {
  std::string cni_version;  ///< Top-level cniVersion, as given ("" when absent).
  std::string network;      ///< Top-level "name": the directory under data_dir.
  std::string type;         ///< ipam.type (the plugin's own name; informative).
  /// One address is handed out per range set. Order: runtimeConfig.ipRanges, then the legacy
  /// single range, then ipam.ranges (host-local's order).
  std::vector<RangeSet> ranges;
  std::vector<cni::Route> routes;                       ///< ipam.routes, copied into results.
  std::string data_dir = std::string(kDefaultDataDir);  ///< ipam.dataDir.
  std::string resolv_conf;                              ///< ipam.resolvConf: file parsed into DNS.
  /// ipam.fsync (cninet extension, default true): fsync lease files and the directory so leases
  /// survive power loss. Atomicity against killed processes does not depend on it.
  bool fsync = true;
  /// Addresses asked for, deduplicated, in order: CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips.
  std::vector<cni::IPAddress> requested_ips;

  /// Parses the network configuration text and CNI_ARGS. Nothing on disk is touched.
  static absl::StatusOr<IpamConfig> Parse(std::string_view net_conf,
                                          std::string_view cni_args = {});
  /// Same, from an already decoded object.
  static absl::StatusOr<IpamConfig> FromJson(const nlohmann::json& net_conf,
                                             std::string_view cni_args = {});
  /// Checks names, data_dir, every range set and that no two range sets overlap (code 7).
  absl::Status Validate() const;
};

/// Parses a resolv.conf file into a DNS object (nameserver, domain, search, options), as
/// host-local's resolvConf option does. Unreadable file: CNI code 5.
absl::StatusOr<cni::DNS> ParseResolvConf(const std::string& path);
/// Parses resolv.conf text.
cni::DNS ParseResolvConfText(std::string_view text);

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_CONFIG_H_
