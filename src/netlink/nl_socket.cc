#include "netlink/nl_socket.h"

#include <errno.h>
#include <netlink/attr.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace cninet::netlink::internal {

absl::StatusOr<MsgPtr> NewMessage(int type, int flags, const void* hdr, size_t hdr_len) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) return absl::ResourceExhaustedError("netlink: cannot allocate a message");
  if (hdr_len > 0 && nlmsg_append(msg.get(), const_cast<void*>(hdr), hdr_len, NLMSG_ALIGNTO) < 0) {
    return absl::ResourceExhaustedError("netlink: message header does not fit");
  }
  return msg;
}

absl::Status KernelError(int err, std::string_view what, std::string_view extack) {
  std::string context(what);
  absl::Status st = ErrnoStatus(err, context);
  if (extack.empty()) return st;
  return absl::Status(st.code(), cninet::StrCat(st.message(), " (kernel: ", extack, ")"));
}

absl::StatusOr<std::unique_ptr<Socket>> Socket::Create() {
  nl_sock* sk = nl_socket_alloc();
  if (sk == nullptr) return absl::ResourceExhaustedError("netlink: cannot allocate a socket");
  // We match replies by sequence number ourselves; libnl's own seq checking is not used.
  nl_socket_disable_seq_check(sk);
  int err = nl_connect(sk, NETLINK_ROUTE);  // libnl opens it with SOCK_CLOEXEC.
  if (err < 0) {
    nl_socket_free(sk);
    return absl::UnavailableError(cninet::StrCat("netlink: connect: ", nl_geterror(err)));
  }
  int fd = nl_socket_get_fd(sk);
  int one = 1;
  // Best effort: older kernels simply do not send extended acks.
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  auto s = std::unique_ptr<Socket>(new Socket(sk));
  s->seq_ = static_cast<uint32_t>(time(nullptr));
  return s;
}

Socket::~Socket() { nl_socket_free(sk_); }

absl::Status Socket::Request(nl_msg* msg, std::string_view what, const MessageFn& on_reply) {
  return Transact(msg, what, on_reply, /*dump=*/false, nullptr);
}

absl::Status Socket::Dump(nl_msg* msg, std::string_view what, const MessageFn& on_reply,
                          const std::function<void()>& reset) {
  constexpr int kAttempts = 5;
  for (int attempt = 0;; ++attempt) {
    bool interrupted = false;
    CNINET_RETURN_IF_ERROR(Transact(msg, what, on_reply, /*dump=*/true, &interrupted));
    if (!interrupted) return absl::OkStatus();
    if (attempt + 1 >= kAttempts) {
      return absl::AbortedError(cninet::StrCat(what, ": dump kept being interrupted"));
    }
    if (reset) reset();
  }
}

namespace {

// The extended-ack message of an NLMSG_ERROR message, if any.
std::string ExtackMessage(nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  auto* err = static_cast<nlmsgerr*>(nlmsg_data(h));
  size_t offset = sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED))
    offset += NLMSG_ALIGN(err->msg.nlmsg_len) - sizeof(nlmsghdr);
  int payload = nlmsg_datalen(h);
  if (static_cast<int>(offset) >= payload) return {};
  nlattr* tb[NLMSGERR_ATTR_MAX + 1] = {};
  auto* head = reinterpret_cast<nlattr*>(static_cast<char*>(nlmsg_data(h)) + offset);
  if (nla_parse(tb, NLMSGERR_ATTR_MAX, head, payload - static_cast<int>(offset), nullptr) < 0) {
    return {};
  }
  if (tb[NLMSGERR_ATTR_MSG] == nullptr || nla_len(tb[NLMSGERR_ATTR_MSG]) <= 0) return {};
  const char* s = static_cast<const char*>(nla_data(tb[NLMSGERR_ATTR_MSG]));
  return std::string(s, strnlen(s, static_cast<size_t>(nla_len(tb[NLMSGERR_ATTR_MSG]))));
}

// Sends the request, retrying EINTR.
absl::Status SendRequest(int fd, const nlmsghdr* req, std::string_view what) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n =
        sendto(fd, req, req->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
    if (n >= 0) return absl::OkStatus();
    if (errno == EINTR) continue;
    return ErrnoStatus(errno, cninet::StrCat(what, ": netlink send"));
  }
}

// Receives one datagram into `buf` (grown to the datagram's real size first, so nothing is ever
// truncated); returns its length.
absl::StatusOr<int> ReceiveDatagram(int fd, std::vector<char>& buf, std::string_view what) {
  for (;;) {
    ssize_t len = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC);
    if (len >= 0) {
      if (buf.size() < static_cast<size_t>(len)) buf.resize(static_cast<size_t>(len));
      len = recv(fd, buf.data(), buf.size(), 0);
    }
    if (len >= 0) return static_cast<int>(len);
    if (errno == EINTR) continue;
    return ErrnoStatus(errno, cninet::StrCat(what, ": netlink receive"));
  }
}

}  // namespace

std::optional<absl::Status> Socket::HandleReply(nlmsghdr* h, std::string_view what,
                                                const MessageFn& on_reply,
                                                absl::Status& callback_status) {
  switch (h->nlmsg_type) {
    case NLMSG_NOOP:
      return std::nullopt;
    case NLMSG_ERROR: {
      if (nlmsg_datalen(h) < static_cast<int>(sizeof(int))) {
        return absl::InternalError(cninet::StrCat(what, ": truncated netlink error"));
      }
      auto* e = static_cast<nlmsgerr*>(nlmsg_data(h));
      if (e->error == 0) return callback_status;  // The ack.
      last_errno_ = -e->error;
      return KernelError(-e->error, what, ExtackMessage(h));
    }
    case NLMSG_DONE: {
      if (nlmsg_datalen(h) >= static_cast<int>(sizeof(int))) {
        int err = *static_cast<int*>(nlmsg_data(h));
        if (err < 0) {
          last_errno_ = -err;
          return KernelError(-err, what);
        }
      }
      return callback_status;
    }
    default:
      if (on_reply && callback_status.ok()) callback_status = on_reply(h);
      return std::nullopt;
  }
}

absl::Status Socket::Transact(nl_msg* msg, std::string_view what, const MessageFn& on_reply,
                              bool dump, bool* interrupted) {
  nlmsghdr* req = nlmsg_hdr(msg);
  uint32_t seq = ++seq_;
  req->nlmsg_seq = seq;
  req->nlmsg_pid = 0;
  req->nlmsg_flags |= NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
  int fd = nl_socket_get_fd(sk_);
  last_errno_ = 0;
  CNINET_RETURN_IF_ERROR(SendRequest(fd, req, what));
  absl::Status callback_status;
  for (;;) {
    CNINET_ASSIGN_OR_RETURN(int remaining, ReceiveDatagram(fd, buf_, what));
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf_.data()); nlmsg_ok(h, remaining);
         h = nlmsg_next(h, &remaining)) {
      if (h->nlmsg_seq != seq) continue;  // A late reply to an earlier, abandoned request.
      if ((h->nlmsg_flags & NLM_F_DUMP_INTR) && interrupted != nullptr) *interrupted = true;
      if (std::optional<absl::Status> done = HandleReply(h, what, on_reply, callback_status)) {
        return *done;
      }
    }
  }
}

}  // namespace cninet::netlink::internal
