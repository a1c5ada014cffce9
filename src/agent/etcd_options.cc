#include "cninet/agent/etcd_store.h"

namespace cninet::agent {

absl::Status EtcdStoreOptions::Validate() const {
  if (endpoints.empty()) return absl::InvalidArgumentError("etcd store: no endpoints");
  for (const std::string& endpoint : endpoints) {
    if (endpoint.empty()) return absl::InvalidArgumentError("etcd store: empty endpoint");
  }
  if (request_timeout.count() <= 0) {
    return absl::InvalidArgumentError("etcd store: request_timeout must be positive");
  }
  if (connect_timeout.count() < 0) {
    return absl::InvalidArgumentError("etcd store: connect_timeout must not be negative");
  }
  if (initial_backoff.count() <= 0 || max_backoff < initial_backoff) {
    return absl::InvalidArgumentError("etcd store: need 0 < initial_backoff <= max_backoff");
  }
  if (list_page_size <= 0) {
    return absl::InvalidArgumentError("etcd store: list_page_size must be positive");
  }
  return absl::OkStatus();
}

}  // namespace cninet::agent
