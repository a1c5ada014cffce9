// cninet-ebpf: a chained CNI plugin that puts a pod on the cninet eBPF datapath. It runs after an
// interface plugin (cninet-bridge, cninet-ptp, or the reference bridge/ptp) and:
//   ADD    finds the host side of the pod's veth (prevResult's host interfaces, else the peer of
//          the container interface), attaches from-pod there and from-world/to-world to the node
//          uplink, registers the pod's IPv4 addresses as endpoints, programs
//          runtimeConfig.portMappings as hostPort services, records the attachment, and returns
//          prevResult unchanged;
//   DEL    undoes that from the record (works without netns, interface or prevResult; idempotent)
//          and flushes the pod's conntrack and NAT entries; the last one out detaches the uplink
//          and unpins the maps (teardownWhenIdle);
//   CHECK  verifies filters, endpoints and hostPort services; GC removes attachments missing
//          from cni.dev/valid-attachments; STATUS reports 50 when the datapath cannot be loaded.
#ifndef CNINET_EXAMPLES_EBPF_CHAIN_PLUGIN_H_
#define CNINET_EXAMPLES_EBPF_CHAIN_PLUGIN_H_

#include <cstdint>

#include "cninet/cni/plugin.h"

namespace cninet::ebpf_chain {

// Its plugin-specific CNI error codes are cni::ErrorCode::kCheckMismatch, kNoHostInterface,
// kHostPortConflict and kDatapathFailure.

// The plugin (see the file comment).
class EbpfChainPlugin : public cni::Plugin {
 public:
  absl::StatusOr<cni::Result> Add(const cni::CmdArgs& args) override;
  absl::Status Del(const cni::CmdArgs& args) override;
  absl::Status Check(const cni::CmdArgs& args) override;
  absl::Status Gc(const cni::CmdArgs& args) override;
  absl::Status Status(const cni::CmdArgs& args) override;
};

}  // namespace cninet::ebpf_chain

#endif  // CNINET_EXAMPLES_EBPF_CHAIN_PLUGIN_H_
