// Kernel helpers the datapath API does not offer, built on rtnetlink and bpf(2) directly: which BPF
// filters sit on an interface's clsact hooks, attaching an already loaded program to another
// interface (so a pod ADD does not re-verify the programs), pinning and reopening a program, and
// removing a clsact qdisc nobody uses anymore. tc calls act in the calling thread's namespace.
#ifndef CNINET_EXAMPLES_EBPF_CHAIN_TC_H_
#define CNINET_EXAMPLES_EBPF_CHAIN_TC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet::ebpf_chain {

// One tc BPF filter as the kernel reports it.
struct TcBpfFilter {
  uint32_t priority = 0;
  uint32_t handle = 0;
  std::string name;      // TCA_BPF_NAME: "<program name>:[<id>]" when attached by libbpf.
  uint32_t prog_id = 0;  // TCA_BPF_ID.
};

// The BPF filters on the clsact ingress (or egress) hook of `ifindex`. An interface without a
// clsact qdisc has none (empty list); NotFound when the interface does not exist.
absl::StatusOr<std::vector<TcBpfFilter>> ListTcBpfFilters(int ifindex, bool ingress);

// True when a filter whose program name starts with `program` (e.g. "cn_from_pod") is attached
// to the hook.
absl::StatusOr<bool> HasTcProgram(int ifindex, bool ingress, const std::string& program);

// Attaches program `prog_fd` to the clsact ingress (or egress) hook of `ifindex` as a
// direct-action BPF filter with `handle` and `priority`, replacing a filter with the same
// handle/priority; creates the clsact qdisc when missing.
absl::Status AttachTcBpf(int ifindex, bool ingress, int prog_fd, uint32_t handle, uint32_t priority,
                         const std::string& name);

// An owned BPF object file descriptor.
class BpfFd {
 public:
  BpfFd() = default;
  explicit BpfFd(int fd) : fd_(fd) {}
  BpfFd(BpfFd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  BpfFd& operator=(BpfFd&& o) noexcept;
  BpfFd(const BpfFd&) = delete;
  BpfFd& operator=(const BpfFd&) = delete;
  ~BpfFd();
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// A descriptor for the loaded program with kernel id `id` (NotFound when it is gone).
absl::StatusOr<BpfFd> ProgramById(uint32_t id);
// Opens the object pinned at `path` (NotFound when there is none).
absl::StatusOr<BpfFd> OpenPinnedObject(const std::string& path);
// Pins `fd` at `path`, replacing an existing pin.
absl::Status PinObject(int fd, const std::string& path);

// Deletes the clsact qdisc of `ifindex` when neither hook has a filter left. OK when there is no
// clsact qdisc or no interface.
absl::Status RemoveClsactIfUnused(int ifindex);

}  // namespace cninet::ebpf_chain

#endif  // CNINET_EXAMPLES_EBPF_CHAIN_TC_H_
