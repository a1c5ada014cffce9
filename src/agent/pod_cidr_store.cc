#include "cninet/agent/pod_cidr_store.h"

#include <chrono>
#include <thread>

#include "cninet/agent/state.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/ipam/errors.h"
#include "cninet/ipam/subnet_pool.h"

namespace cninet::agent {

using cni::IPAddress;
using cni::IPPrefix;

absl::StatusOr<ipam::StoreLock> PodCIDRLeaseStore::Lock() {
  mu_.lock();
  return ipam::StoreLock([this] { mu_.unlock(); });
}

absl::StatusOr<bool> PodCIDRLeaseStore::Reserve(const ipam::Lease& lease, std::string_view) {
  v1::PodCIDRAllocation alloc;
  alloc.set_cidr(IPPrefix(lease.address, node_prefix_len_).ToString());
  alloc.set_node(lease.container_id);
  absl::StatusOr<int64_t> rev = CreateObject(*store_, alloc);
  if (absl::IsAlreadyExists(rev.status())) return false;
  if (!rev.ok()) return rev.status();
  return true;
}

absl::StatusOr<std::optional<IPAddress>> PodCIDRLeaseStore::LastReserved(std::string_view) {
  return std::optional<IPAddress>();
}

absl::Status PodCIDRLeaseStore::Release(const IPAddress& address) {
  return store_->Delete(keys::PodCIDR(IPPrefix(address, node_prefix_len_).ToString())).status();
}

absl::StatusOr<std::vector<ipam::Lease>> PodCIDRLeaseStore::List() {
  CNINET_ASSIGN_OR_RETURN(ListResult list, store_->List(KeyPrefix(ObjectKind::kPodCIDRAllocation)));
  std::vector<ipam::Lease> out;
  for (const KeyValue& kv : list.kvs) {
    absl::StatusOr<Object<v1::PodCIDRAllocation>> obj = DecodeKeyValue<v1::PodCIDRAllocation>(kv);
    std::string owner;
    std::string cidr;
    if (obj.ok()) {
      owner = obj->value.node();
      cidr = obj->value.cidr();
    } else {
      // The subnet stays taken: its identity is in the key even when the value is garbage.
      v1::PodCIDRAllocation id;
      if (!IdentityFromKey(ObjectKind::kPodCIDRAllocation, kv.key, &id).ok()) continue;
      CNINET_LOG(kWarning, "podCIDR allocation ", kv.key, " is unreadable (",
                 obj.status().message(), "); its subnet stays taken");
      owner = "<unreadable>";
      cidr = id.cidr();
    }
    auto prefix = IPPrefix::Parse(cidr);
    if (!prefix.ok()) continue;
    out.push_back(ipam::Lease{prefix->address(), owner, ""});
  }
  return out;
}

absl::StatusOr<IPPrefix> AllocatePodCIDR(Store& store, const v1::ClusterConfig& cluster,
                                         std::string_view node, std::optional<IPPrefix> existing,
                                         IPAddress::Family family) {
  const bool v6 = family == IPAddress::Family::kV6;
  CNINET_ASSIGN_OR_RETURN(IPPrefix cluster_cidr, IPPrefix::Parse(v6 ? cluster.cluster_cidr_ipv6()
                                                                    : cluster.cluster_cidr()));
  if (cluster_cidr.is_v4() == v6) {
    return absl::InvalidArgumentError(StrCat("cluster CIDR ", cluster_cidr.ToString(),
                                             " is not of family IPv", static_cast<int>(family)));
  }
  int len =
      static_cast<int>(v6 ? cluster.node_cidr_mask_size_ipv6() : cluster.node_cidr_mask_size());
  PodCIDRLeaseStore leases(&store, len);
  CNINET_ASSIGN_OR_RETURN(ipam::SubnetPool pool,
                          ipam::SubnetPool::Create(cluster_cidr.Masked(), len, &leases));
  if (existing) {
    absl::Status st = pool.Claim(node, *existing);
    if (st.ok()) return *existing;
    CNINET_LOG(kWarning, "node ", node, " recorded podCIDR ", existing->ToString(),
               " cannot be kept (", st.message(), "); allocating one");
  }
  absl::Status last;
  for (int attempt = 0; attempt < 8; ++attempt) {
    absl::StatusOr<IPPrefix> got = pool.Allocate(node);
    if (got.ok()) return got;
    last = got.status();
    if (cni::GetErrorCode(last) != ipam::kAddressUnavailable) break;
    // Another node created the same subnet between our list and our create: list again.
    std::this_thread::sleep_for(std::chrono::milliseconds(20 * (attempt + 1)));
  }
  return Annotate(last, StrCat("allocate a podCIDR for node ", node));
}

}  // namespace cninet::agent
