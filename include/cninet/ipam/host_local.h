/// @file
/// HostLocal: the complete host-local IPAM behaviour over a configuration and a store, what the
/// cninet-host-local plugin runs for ADD, DEL, CHECK, GC and STATUS (and what an embedder calls
/// in process). Each operation takes the store's lock once, so it is atomic with respect to other
/// processes, including the reference host-local plugin on the same dataDir.
#ifndef CNINET_IPAM_HOST_LOCAL_H_
#define CNINET_IPAM_HOST_LOCAL_H_

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/plugin.h"
#include "cninet/cni/types.h"
#include "cninet/ipam/config.h"
#include "cninet/ipam/store.h"

namespace cninet::ipam {

/// A lease with the configuration's view of it.
struct LeaseInfo {
  Lease lease;                   ///< The lease as stored.
  std::optional<int> range_set;  ///< Index of the range set containing it, if any.
  /// Field-wise equality.
  friend bool operator==(const LeaseInfo&, const LeaseInfo&) = default;
};

/// Runs host-local operations for `config` on `store` (normally OpenStore(config)).
class HostLocal {
 public:
  /// Both must outlive this object.
  HostLocal(const IpamConfig& config, Store& store) : config_(config), store_(store) {}

  /// Leases one address per range set to (container_id, ifname), honouring the configuration's
  /// requested addresses; all-or-nothing (addresses taken by a failed call are released).
  /// The result has the config's cniVersion, ips (no interface index), routes and the DNS read
  /// from resolvConf. Codes: 4 bad names, 7 bad request, 100/101/102 (see errors.h), 5 I/O.
  absl::StatusOr<cni::Result> Add(std::string_view container_id, std::string_view ifname);
  /// Frees every lease of (container_id, ifname) in the network (host-local frees across all
  /// range sets). Idempotent: OK when there is nothing to free.
  absl::Status Del(std::string_view container_id, std::string_view ifname);
  /// Verifies the attachment holds a lease, and that every address of `prev` that lies in one of
  /// the range sets is leased to it. Code 103 otherwise.
  absl::Status Check(std::string_view container_id, std::string_view ifname,
                     const cni::Result* prev = nullptr);
  /// CNI 1.1 GC: frees every lease whose owner is not in `valid` (legacy leases are kept when
  /// their container ID is), then removes debris of crashed writers. Returns the leases freed.
  absl::StatusOr<std::vector<Lease>> Gc(const std::vector<cni::GcAttachment>& valid);
  /// CNI 1.1 STATUS: OK when every range set has a free address, else code 50; code 50 too
  /// when the store cannot be read.
  absl::Status Status();
  /// Every lease of the network, with the range set it falls in.
  absl::StatusOr<std::vector<LeaseInfo>> Leases();

  /// The configuration this object runs.
  const IpamConfig& config() const { return config_; }

 private:
  const IpamConfig& config_;
  Store& store_;
};

/// Opens the DiskStore of `config` (`data_dir/network`); fsync only when config.fsync too.
absl::StatusOr<std::unique_ptr<DiskStore>> OpenStore(const IpamConfig& config,
                                                     DiskStoreOptions options = {});

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_HOST_LOCAL_H_
