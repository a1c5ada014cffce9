/// @file
/// DiskStore: the file-backed Store, byte-compatible with the reference host-local plugin, so
/// both plugins can share one dataDir:
/// - `DATADIR/NETWORK/IP`: `CONTAINERID\r\nIFNAME` (legacy: `CONTAINERID`)
/// - `DATADIR/NETWORK/last_reserved_ip.N`: the last address reserved from range set N
/// - `DATADIR/NETWORK/lock`: flock(LOCK_EX) held around every operation
///
/// Leases appear atomically with their full content (written to an unnamed O_TMPFILE, fsync'ed,
/// then linked in place; link() fails if the address is taken) and the directory is fsync'ed
/// after a reservation, so a crash at any moment leaves only complete lease records. The
/// last_reserved_ip hint is advisory and rewritten in place, as host-local does (any torn value
/// is harmless: unparsable ones are ignored). Releases are not fsync'ed: one lost to a power
/// failure only brings back a dead container's lease (freed by DEL or GC), never a duplicate
/// address. Every file is opened relative to the network directory with O_NOFOLLOW.
#ifndef CNINET_IPAM_DISK_STORE_H_
#define CNINET_IPAM_DISK_STORE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cninet/ipam/store.h"

namespace cninet::ipam {

/// host-local's default dataDir.
inline constexpr std::string_view kDefaultDataDir = "/var/lib/cni/networks";

/// How a DiskStore is opened.
struct DiskStoreOptions {
  /// Create dataDir (mode 0700 for each directory created) and the network directory when
  /// missing. When false, a missing network directory is NotFound (CNI code 3) and nothing is
  /// created on disk.
  bool create = true;
  /// fsync each new lease file and the directory after each reservation (power-loss durability;
  /// atomicity against killed processes does not depend on it). Tests of pure
  /// allocation speed may turn it off.
  bool sync = true;
  /// Write new leases through an unnamed O_TMPFILE (nothing is left behind by a crash). False, or
  /// a filesystem without O_TMPFILE, uses a named temporary file linked into place instead
  /// (a crash may leave it behind; GC removes it).
  bool use_tmpfile = true;
};

/// The host-local compatible file store of one network. Thread-safe.
class DiskStore final : public Store {
 public:
  /// Opens `<data_dir>/<network>`. `network` must pass ValidateNetworkName (code 7) and
  /// `data_dir` ValidateDataDir (code 7); the network directory must not be a symlink.
  static absl::StatusOr<std::unique_ptr<DiskStore>> Open(std::string_view data_dir,
                                                         std::string_view network,
                                                         DiskStoreOptions options = {});
  ~DiskStore() override;
  DiskStore(const DiskStore&) = delete;
  DiskStore& operator=(const DiskStore&) = delete;

  /// The network directory's path.
  const std::string& dir() const;

  absl::StatusOr<StoreLock> Lock() override;
  absl::StatusOr<bool> Reserve(const Lease& lease, std::string_view range_id) override;
  absl::StatusOr<std::optional<cni::IPAddress>> LastReserved(std::string_view range_id) override;
  absl::Status Release(const cni::IPAddress& address) override;
  absl::StatusOr<std::vector<Lease>> List() override;
  absl::StatusOr<std::optional<Lease>> Get(const cni::IPAddress& address) override;
  /// Removes temporary files left by writers that crashed (call with the lock held).
  absl::Status Cleanup() override;

 private:
  struct Impl;
  explicit DiskStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_DISK_STORE_H_
