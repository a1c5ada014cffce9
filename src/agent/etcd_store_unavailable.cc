// Built instead of etcd_store.cc when gRPC is not available (CNINET_WITH_ETCD off or not found).
#include "cninet/agent/etcd_store.h"

namespace cninet::agent {

bool EtcdStoreAvailable() { return false; }

absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(const EtcdStoreOptions&) {
  return absl::UnimplementedError(
      "this cninet was built without the etcd store (CNINET_WITH_ETCD=OFF or gRPC not found)");
}

}  // namespace cninet::agent
