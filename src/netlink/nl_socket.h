// Private: a NETLINK_ROUTE socket (libnl-3's nl_sock) with one request/response primitive that
// reports the kernel's errno and extended-ack message.
#ifndef CNINET_SRC_NETLINK_NL_SOCKET_H_
#define CNINET_SRC_NETLINK_NL_SOCKET_H_

#include <linux/netlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet::netlink::internal {

// Owning pointer to a libnl message.
struct MsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;

// A new message of `type` with `flags` and the fixed header `hdr` (hdr_len bytes) appended.
absl::StatusOr<MsgPtr> NewMessage(int type, int flags, const void* hdr, size_t hdr_len);

// The status for kernel error `err` (a positive errno) on operation `what`, with the extack
// message appended when there is one.
absl::Status KernelError(int err, std::string_view what, std::string_view extack = {});

// Called with each reply message (RTM_NEW*) of a request or dump.
using MessageFn = std::function<absl::Status(nlmsghdr*)>;

class Socket {
 public:
  // A socket in the calling thread's current network namespace (CLOEXEC, extended acks on).
  static absl::StatusOr<std::unique_ptr<Socket>> Create();
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Sends `msg` with NLM_F_REQUEST|NLM_F_ACK and waits for the kernel's ack; every reply
  // message before it goes to `on_reply`. The kernel's error comes back as a status.
  absl::Status Request(nl_msg* msg, std::string_view what, const MessageFn& on_reply = {});
  // Sends `msg` as a dump (NLM_F_DUMP) and passes every message to `on_reply`. An interrupted
  // dump (NLM_F_DUMP_INTR) is retried a few times; `reset` runs before each retry.
  absl::Status Dump(nl_msg* msg, std::string_view what, const MessageFn& on_reply,
                    const std::function<void()>& reset);
  // The errno of the last request the kernel refused (0 after a success).
  int last_errno() const { return last_errno_; }

 private:
  explicit Socket(nl_sock* sk) : sk_(sk) {}
  absl::Status Transact(nl_msg* msg, std::string_view what, const MessageFn& on_reply, bool dump,
                        bool* interrupted);

  nl_sock* sk_;
  // One message of the reply: the final status once the request is answered (ack, error or
  // end of dump), nullopt while more follows. Data messages go to `on_reply`.
  std::optional<absl::Status> HandleReply(nlmsghdr* h, std::string_view what,
                                          const MessageFn& on_reply, absl::Status& callback_status);

  uint32_t seq_ = 0;
  int last_errno_ = 0;
  std::vector<char> buf_;
};

}  // namespace cninet::netlink::internal

#endif  // CNINET_SRC_NETLINK_NL_SOCKET_H_
