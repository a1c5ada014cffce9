// Private glue between Datapath (which owns the loaded sock object) and socket_lb.cc.
#ifndef CNINET_SRC_DATAPATH_SOCKET_LB_INTERNAL_H_
#define CNINET_SRC_DATAPATH_SOCKET_LB_INTERNAL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/datapath/socket_lb.h"

namespace cninet::datapath {

// One program of the sock object and where it attaches.
struct SockProgram {
  int fd = -1;
  int attach_type = 0;  // enum bpf_attach_type
  const char* pin_name = "";
};

// Creates (or, when pinned links exist, updates to the new programs) one cgroup link per
// program on `cgroup_path`, pinned under `pin_dir` when not empty.
absl::StatusOr<SocketLbAttachment> AttachSockPrograms(const std::vector<SockProgram>& progs,
                                                      const std::string& cgroup_path,
                                                      const std::string& pin_dir);

}  // namespace cninet::datapath

#endif  // CNINET_SRC_DATAPATH_SOCKET_LB_INTERNAL_H_
