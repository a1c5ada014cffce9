// What cninet-ebpf remembers per attachment (container ID + ifname), so DEL, CHECK and GC work
// without prevResult and after the pod's namespace and interface are gone: one small JSON file
// per attachment under <stateDir>/<instance>/, written atomically, guarded by an flock.
#ifndef CNINET_EXAMPLES_EBPF_CHAIN_STATE_H_
#define CNINET_EXAMPLES_EBPF_CHAIN_STATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/conf.h"
#include "cninet/cni/ip.h"
#include "nlohmann/json.hpp"

namespace cninet::ebpf_chain {

// One attachment's datapath state.
struct AttachmentRecord {
  std::string container_id;
  std::string ifname;
  std::string netns;        // CNI_NETNS at ADD (informational).
  std::string host_ifname;  // Host side of the pod's veth (from-pod attached here).
  int host_ifindex = 0;
  std::string mac;                        // Pod interface MAC.
  std::vector<cni::IPAddress> addresses;  // Endpoints registered (both families).
  std::vector<uint32_t> service_ids;      // hostPort services programmed.
  std::vector<cni::PortMapping> port_mappings;
  // Netns cookie registered with the instance's socket LB (socketLb), 0 = none.
  uint64_t socket_lb_netns_cookie = 0;

  nlohmann::json ToJson() const;
  // Code 6 when a field is missing or has the wrong type.
  static absl::StatusOr<AttachmentRecord> FromJson(const nlohmann::json& j);
};

// An exclusive flock held until destruction.
class StateLock {
 public:
  StateLock() = default;
  explicit StateLock(int fd) : fd_(fd) {}
  StateLock(StateLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  StateLock& operator=(StateLock&& o) noexcept;
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  ~StateLock();

 private:
  int fd_ = -1;
};

// The records of one datapath instance.
class StateStore {
 public:
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}
  // Creates the directory when needed and takes the instance lock (blocking).
  absl::StatusOr<StateLock> Lock() const;
  // Writes (replaces) the record of rec.container_id/rec.ifname atomically.
  absl::Status Write(const AttachmentRecord& rec) const;
  // The record, nullopt when there is none. A corrupt file counts as none (and is logged).
  absl::StatusOr<std::optional<AttachmentRecord>> Read(std::string_view container_id,
                                                       std::string_view ifname) const;
  // Removes the record; OK when absent.
  absl::Status Remove(std::string_view container_id, std::string_view ifname) const;
  // Every readable record (corrupt files are logged and skipped), sorted by file name.
  absl::StatusOr<std::vector<AttachmentRecord>> List() const;
  // The uplink the instance's world programs were attached to ("" when none recorded).
  absl::StatusOr<std::string> ReadUplink() const;
  // Records (or with "" forgets) the uplink.
  absl::Status WriteUplink(std::string_view name) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string PathFor(std::string_view container_id, std::string_view ifname) const;
  std::string dir_;
};

}  // namespace cninet::ebpf_chain

#endif  // CNINET_EXAMPLES_EBPF_CHAIN_STATE_H_
