// Private to the datapath component: attaching a program by descriptor (Datapath and BpfProgram
// share it) and building a TcAttachment.
#ifndef CNINET_SRC_DATAPATH_TC_INTERNAL_H_
#define CNINET_SRC_DATAPATH_TC_INTERNAL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cninet/base/fd.h"
#include "cninet/datapath/tc.h"

namespace cninet::datapath {

// Builds a TcAttachment owning the filter described.
struct TcAttachmentAccess {
  static TcAttachment Make(std::string ifname, int ifindex, Hook hook, UniqueFd netns);
};

// Attaches program `prog_fd` as cninet's filter for `hook` on `ifname` (calling thread's netns),
// creating (and recording) the clsact qdisc when missing.
absl::StatusOr<TcAttachment> AttachProgramFd(int prog_fd, Hook hook, std::string_view ifname);

}  // namespace cninet::datapath

#endif  // CNINET_SRC_DATAPATH_TC_INTERNAL_H_
