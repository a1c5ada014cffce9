#include "cninet/ipam/host_local.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/ipam/allocator.h"
#include "cninet/ipam/errors.h"
#include "cninet/ipam/names.h"

namespace cninet::ipam {
namespace {

using cni::ErrorCode;
using cni::IPAddress;

absl::Status ValidateOwner(std::string_view container_id, std::string_view ifname) {
  CNINET_RETURN_IF_ERROR(ValidateContainerId(container_id));
  return ValidateIfname(ifname);
}

}  // namespace

absl::StatusOr<cni::Result> HostLocal::Add(std::string_view container_id, std::string_view ifname) {
  CNINET_RETURN_IF_ERROR(ValidateOwner(container_id, ifname));

  // Match requested addresses to range sets (each set takes the first one it contains, as
  // host-local does) and check them before anything is written: a bad request changes nothing.
  std::vector<std::optional<IPAddress>> wanted(config_.ranges.size());
  std::vector<IPAddress> left = config_.requested_ips;
  for (size_t idx = 0; idx < config_.ranges.size(); ++idx) {
    const RangeSet& set = config_.ranges[idx];
    auto it = std::find_if(left.begin(), left.end(),
                           [&](const IPAddress& ip) { return set.Contains(ip); });
    if (it == left.end()) continue;
    const Range* r = set.RangeFor(*it);
    if (!r->IsAllocatable(*it)) {
      return cni::CniError(
          ErrorCode::kInvalidConfig,
          StrCat(
              "failed to allocate for range ", idx, ": requested ip ", it->ToString(),
              *it == r->gateway ? " is subnet's gateway" : " is the network or broadcast address"));
    }
    wanted[idx] = *it;
    left.erase(it);
  }
  if (!left.empty()) {
    std::vector<std::string> names;
    for (const IPAddress& ip : left) names.push_back(ip.ToString());
    return cni::CniError(ErrorCode::kInvalidConfig,
                         StrCat("failed to allocate all requested IPs: ", StrJoin(names, " ")));
  }

  cni::Result result;
  result.cni_version = config_.cni_version;
  if (!config_.resolv_conf.empty()) {
    CNINET_ASSIGN_OR_RETURN(result.dns, ParseResolvConf(config_.resolv_conf));
  }

  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_.Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> owned, store_.FindByOwner(container_id, ifname));
  std::vector<IPAddress> taken;
  for (size_t idx = 0; idx < config_.ranges.size(); ++idx) {
    Allocator allocator(config_.ranges[idx], store_, static_cast<int>(idx));
    auto ip = allocator.Allocate(lock, container_id, ifname, wanted[idx], &owned);
    if (!ip.ok()) {
      // All or nothing: give back what this call took.
      for (const IPAddress& t : taken) {
        if (absl::Status s = store_.Release(t); !s.ok()) {
          CNINET_LOG(kError, "releasing ", t.ToString(), " after a failed ADD: ", s.ToString());
        }
      }
      return Annotate(ip.status(), StrCat("failed to allocate for range ", idx));
    }
    taken.push_back(ip->address.address());
    result.ips.push_back(*std::move(ip));
  }
  result.routes = config_.routes;
  return result;
}

absl::Status HostLocal::Del(std::string_view container_id, std::string_view ifname) {
  CNINET_RETURN_IF_ERROR(ValidateOwner(container_id, ifname));
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_.Lock());
  return ReleaseOwner(lock, store_, container_id, ifname).status();
}

absl::Status HostLocal::Check(std::string_view container_id, std::string_view ifname,
                              const cni::Result* prev) {
  CNINET_RETURN_IF_ERROR(ValidateOwner(container_id, ifname));
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_.Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> owned, store_.FindByOwner(container_id, ifname));
  if (owned.empty()) {
    return cni::CniError(
        kLeaseMissing,
        StrCat("host-local: Failed to find address added by container ", container_id));
  }
  if (prev == nullptr) return absl::OkStatus();
  for (const cni::IPConfig& ipc : prev->ips) {
    const IPAddress& ip = ipc.address.address();
    bool ours = std::any_of(config_.ranges.begin(), config_.ranges.end(),
                            [&](const RangeSet& s) { return s.Contains(ip); });
    if (!ours) continue;
    bool leased =
        std::any_of(owned.begin(), owned.end(), [&](const Lease& l) { return l.address == ip; });
    if (!leased) {
      return cni::CniError(kLeaseMissing, StrCat("address ", ip.ToString(), " of container ",
                                                 container_id, " is not leased to it"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Lease>> HostLocal::Gc(const std::vector<cni::GcAttachment>& valid) {
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_.Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, store_.List());
  std::vector<Lease> freed;
  for (const Lease& l : all) {
    bool keep = std::any_of(valid.begin(), valid.end(), [&](const cni::GcAttachment& a) {
      return a.container_id == l.container_id && (l.ifname.empty() || a.ifname == l.ifname);
    });
    if (keep) continue;
    CNINET_RETURN_IF_ERROR(store_.Release(l.address));
    freed.push_back(l);
  }
  CNINET_RETURN_IF_ERROR(store_.Cleanup());
  return freed;
}

absl::Status HostLocal::Status() {
  auto lock = store_.Lock();
  if (!lock.ok()) {
    return cni::CniError(ErrorCode::kNotAvailable,
                         StrCat("lease store unusable: ", lock.status().message()));
  }
  for (size_t idx = 0; idx < config_.ranges.size(); ++idx) {
    Allocator allocator(config_.ranges[idx], store_, static_cast<int>(idx));
    auto free = allocator.HasFree(*lock);
    if (!free.ok()) {
      return cni::CniError(ErrorCode::kNotAvailable,
                           StrCat("lease store unreadable: ", free.status().message()));
    }
    if (!*free) {
      return cni::CniError(ErrorCode::kNotAvailable,
                           StrCat("no IP addresses available in range set ", idx, ": ",
                                  config_.ranges[idx].ToString()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LeaseInfo>> HostLocal::Leases() {
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_.Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, store_.List());
  std::vector<LeaseInfo> out;
  out.reserve(all.size());
  for (Lease& l : all) {
    LeaseInfo info;
    for (size_t idx = 0; idx < config_.ranges.size(); ++idx) {
      if (config_.ranges[idx].Contains(l.address)) {
        info.range_set = static_cast<int>(idx);
        break;
      }
    }
    info.lease = std::move(l);
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<DiskStore>> OpenStore(const IpamConfig& config,
                                                     DiskStoreOptions options) {
  options.sync = options.sync && config.fsync;
  return DiskStore::Open(config.data_dir, config.network, options);
}

}  // namespace cninet::ipam
