/// @file
/// The lease store interface the allocator and the SubnetPool work on, and an in-memory
/// implementation. DiskStore (disk_store.h) is the file-backed one with host-local's layout.
///
/// Every mutating call and every listing that feeds a decision must be made while holding the
/// store's lock (Lock()), which excludes other threads and other processes (host-local too).
#ifndef CNINET_IPAM_STORE_H_
#define CNINET_IPAM_STORE_H_

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"

namespace cninet::ipam {

/// One leased address and its owner. Leases written by old host-local versions carry only the
/// container ID; their `ifname` is empty.
struct Lease {
  cni::IPAddress address;    ///< The leased address (the record's file name on disk).
  std::string container_id;  ///< Owner: CNI_CONTAINERID (a node name for SubnetPool leases).
  std::string ifname;        ///< Owner: CNI_IFNAME; empty for legacy records.

  /// Field-wise equality.
  friend bool operator==(const Lease&, const Lease&) = default;
};

/// Holds a store's exclusive lock until destroyed or Unlock()ed. Move-only; must not outlive
/// the store it came from.
class StoreLock {
 public:
  StoreLock() = default;
  /// Adopts a held lock; `unlock` is called exactly once to release it.
  explicit StoreLock(std::function<void()> unlock) : unlock_(std::move(unlock)) {}
  /// Takes over `other`'s lock.
  StoreLock(StoreLock&& other) noexcept : unlock_(std::exchange(other.unlock_, nullptr)) {}
  /// Releases the lock held (if any), then takes over `other`'s.
  StoreLock& operator=(StoreLock&& other) noexcept;
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  ~StoreLock() { Unlock(); }

  /// True while the lock is held.
  bool held() const { return static_cast<bool>(unlock_); }
  /// Releases the lock now (idempotent).
  void Unlock();

 private:
  std::function<void()> unlock_;
};

/// Where leases live. Implementations: MemoryStore, DiskStore; the agent adds its own.
class Store {
 public:
  virtual ~Store() = default;

  /// Takes the exclusive lock (blocking). Must not be called again by the same thread while held.
  virtual absl::StatusOr<StoreLock> Lock() = 0;
  /// Records `lease` if its address is free: true when taken now, false when already leased.
  /// Also remembers the address as the last one reserved for `range_id` (round-robin hint).
  virtual absl::StatusOr<bool> Reserve(const Lease& lease, std::string_view range_id) = 0;
  /// The last address reserved for `range_id`, nullopt when none (or unreadable).
  virtual absl::StatusOr<std::optional<cni::IPAddress>> LastReserved(std::string_view range_id) = 0;
  /// Frees `address`; OK when it was not leased.
  virtual absl::Status Release(const cni::IPAddress& address) = 0;
  /// Every lease, ordered by address.
  virtual absl::StatusOr<std::vector<Lease>> List() = 0;
  /// The lease of `address`, nullopt when free.
  virtual absl::StatusOr<std::optional<Lease>> Get(const cni::IPAddress& address);
  /// Leases held by (container_id, ifname); when there is none, leases written with only
  /// `container_id` (old host-local format), as host-local matches them.
  virtual absl::StatusOr<std::vector<Lease>> FindByOwner(std::string_view container_id,
                                                         std::string_view ifname);
  /// Removes debris left by crashed writers (e.g. temporary files). Default: nothing to do.
  virtual absl::Status Cleanup() { return absl::OkStatus(); }
};

/// Keeps only the leases of `leases` owned by (container_id, ifname), falling back to legacy
/// leases (no ifname) of container_id when there is no exact match: host-local's rule.
std::vector<Lease> MatchOwner(const std::vector<Lease>& leases, std::string_view container_id,
                              std::string_view ifname);

/// A Store in process memory, for tests, benchmarks and embedders that persist elsewhere.
/// Thread-safe; the lock excludes other threads of this process only.
class MemoryStore final : public Store {
 public:
  MemoryStore() = default;

  absl::StatusOr<StoreLock> Lock() override;
  absl::StatusOr<bool> Reserve(const Lease& lease, std::string_view range_id) override;
  absl::StatusOr<std::optional<cni::IPAddress>> LastReserved(std::string_view range_id) override;
  absl::Status Release(const cni::IPAddress& address) override;
  absl::StatusOr<std::vector<Lease>> List() override;
  absl::StatusOr<std::optional<Lease>> Get(const cni::IPAddress& address) override;
  absl::StatusOr<std::vector<Lease>> FindByOwner(std::string_view container_id,
                                                 std::string_view ifname) override;

 private:
  std::mutex lock_;     ///< The store lock (Lock()).
  std::mutex data_mu_;  ///< Guards the maps (calls may come without Lock()).
  std::map<cni::IPAddress, Lease> leases_;
  std::multimap<std::string, cni::IPAddress> by_container_;
  std::map<std::string, cni::IPAddress, std::less<>> last_;
};

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_STORE_H_
