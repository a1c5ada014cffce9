#include "cninet/ipam/store.h"

#include <string>

#include "cninet/base/status.h"

namespace cninet::ipam {

StoreLock& StoreLock::operator=(StoreLock&& other) noexcept {
  if (this != &other) {
    Unlock();
    unlock_ = std::exchange(other.unlock_, nullptr);
  }
  return *this;
}

void StoreLock::Unlock() {
  if (unlock_) std::exchange(unlock_, nullptr)();
}

absl::StatusOr<std::optional<Lease>> Store::Get(const cni::IPAddress& address) {
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, List());
  for (Lease& l : all) {
    if (l.address == address) return std::optional<Lease>(std::move(l));
  }
  return std::optional<Lease>();
}

absl::StatusOr<std::vector<Lease>> Store::FindByOwner(std::string_view container_id,
                                                      std::string_view ifname) {
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, List());
  return MatchOwner(all, container_id, ifname);
}

std::vector<Lease> MatchOwner(const std::vector<Lease>& leases, std::string_view container_id,
                              std::string_view ifname) {
  std::vector<Lease> exact, legacy;
  for (const Lease& l : leases) {
    if (l.container_id != container_id) continue;
    if (l.ifname == ifname) {
      exact.push_back(l);
    } else if (l.ifname.empty()) {
      legacy.push_back(l);
    }
  }
  return exact.empty() ? legacy : exact;
}

absl::StatusOr<StoreLock> MemoryStore::Lock() {
  lock_.lock();
  return StoreLock([this] { lock_.unlock(); });
}

absl::StatusOr<bool> MemoryStore::Reserve(const Lease& lease, std::string_view range_id) {
  std::lock_guard<std::mutex> g(data_mu_);
  auto [it, inserted] = leases_.emplace(lease.address, lease);
  if (!inserted) return false;
  by_container_.emplace(lease.container_id, lease.address);
  auto last = last_.find(range_id);
  if (last == last_.end()) {
    last_.emplace(std::string(range_id), lease.address);
  } else {
    last->second = lease.address;
  }
  return true;
}

absl::StatusOr<std::optional<cni::IPAddress>> MemoryStore::LastReserved(std::string_view range_id) {
  std::lock_guard<std::mutex> g(data_mu_);
  auto it = last_.find(range_id);
  if (it == last_.end()) return std::optional<cni::IPAddress>();
  return std::optional<cni::IPAddress>(it->second);
}

absl::Status MemoryStore::Release(const cni::IPAddress& address) {
  std::lock_guard<std::mutex> g(data_mu_);
  auto it = leases_.find(address);
  if (it == leases_.end()) return absl::OkStatus();
  auto [b, e] = by_container_.equal_range(it->second.container_id);
  for (auto i = b; i != e; ++i) {
    if (i->second == address) {
      by_container_.erase(i);
      break;
    }
  }
  leases_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Lease>> MemoryStore::List() {
  std::lock_guard<std::mutex> g(data_mu_);
  std::vector<Lease> out;
  out.reserve(leases_.size());
  for (const auto& [ip, lease] : leases_) out.push_back(lease);
  return out;
}

absl::StatusOr<std::optional<Lease>> MemoryStore::Get(const cni::IPAddress& address) {
  std::lock_guard<std::mutex> g(data_mu_);
  auto it = leases_.find(address);
  if (it == leases_.end()) return std::optional<Lease>();
  return std::optional<Lease>(it->second);
}

absl::StatusOr<std::vector<Lease>> MemoryStore::FindByOwner(std::string_view container_id,
                                                            std::string_view ifname) {
  std::vector<Lease> candidates;
  {
    std::lock_guard<std::mutex> g(data_mu_);
    auto [b, e] = by_container_.equal_range(std::string(container_id));
    for (auto i = b; i != e; ++i) candidates.push_back(leases_.at(i->second));
  }
  return MatchOwner(candidates, container_id, ifname);
}

}  // namespace cninet::ipam
