#include "tc.h"

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::ebpf_chain {
namespace {

// An rtnetlink socket closed on destruction.
class RtnlSocket {
 public:
  RtnlSocket() : fd_(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) {}
  ~RtnlSocket() {
    if (fd_ >= 0) close(fd_);
  }
  RtnlSocket(const RtnlSocket&) = delete;
  RtnlSocket& operator=(const RtnlSocket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A request: header, tcmsg and room for a few attributes.
struct TcRequest {
  nlmsghdr nh;
  tcmsg tc;
  char attrs[256];
};

// Appends attribute `type` with `len` bytes of `data`; returns it (for nesting).
rtattr* AddAttr(TcRequest* req, uint16_t type, const void* data, size_t len) {
  auto* rta =
      reinterpret_cast<rtattr*>(reinterpret_cast<char*>(req) + NLMSG_ALIGN(req->nh.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  if (len > 0) std::memcpy(RTA_DATA(rta), data, len);
  req->nh.nlmsg_len = NLMSG_ALIGN(req->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
  return rta;
}

void AddStringAttr(TcRequest* req, uint16_t type, const char* value) {
  AddAttr(req, type, value, std::strlen(value) + 1);
}

// Closes a nested attribute opened with AddAttr(req, type, nullptr, 0).
void EndNest(TcRequest* req, rtattr* nest) {
  nest->rta_len = static_cast<uint16_t>(reinterpret_cast<char*>(req) + req->nh.nlmsg_len -
                                        reinterpret_cast<char*>(nest));
}

long Bpf(int cmd, bpf_attr* attr) { return syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

absl::Status Send(const RtnlSocket& s, TcRequest* req) {
  if (s.fd() < 0) return ErrnoStatus(errno, "rtnetlink socket");
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(s.fd(), req, req->nh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    return ErrnoStatus(errno, "rtnetlink send");
  }
  return absl::OkStatus();
}

// Reads replies to sequence `seq` until NLMSG_DONE (dumps) or the ACK/error (requests), calling
// `on_msg` for every other message. Returns the kernel's errno as a status.
template <typename F>
absl::Status Receive(const RtnlSocket& s, uint32_t seq, bool dump, F on_msg) {
  alignas(nlmsghdr) char buf[32768];
  while (true) {
    ssize_t n = recv(s.fd(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "rtnetlink receive");
    }
    int len = static_cast<int>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_seq != seq) continue;
      if (nh->nlmsg_type == NLMSG_DONE) {
        int err = 0;
        if (nh->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
          std::memcpy(&err, NLMSG_DATA(nh), sizeof(int));
        return err < 0 ? ErrnoStatus(-err, "rtnetlink dump") : absl::OkStatus();
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
        if (e->error == 0 && !dump) return absl::OkStatus();
        if (e->error != 0) return ErrnoStatus(-e->error, "rtnetlink");
        continue;
      }
      on_msg(nh);
    }
  }
}

bool InterfaceExists(int ifindex) {
  char name[IF_NAMESIZE];
  return if_indextoname(static_cast<unsigned>(ifindex), name) != nullptr;
}

}  // namespace

absl::StatusOr<std::vector<TcBpfFilter>> ListTcBpfFilters(int ifindex, bool ingress) {
  if (!InterfaceExists(ifindex))
    return absl::NotFoundError(StrCat("no interface with index ", ifindex));
  RtnlSocket s;
  TcRequest req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
  req.nh.nlmsg_type = RTM_GETTFILTER;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.tc.tcm_family = AF_UNSPEC;
  req.tc.tcm_ifindex = ifindex;
  req.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  CNINET_RETURN_IF_ERROR(Send(s, &req));
  std::vector<TcBpfFilter> out;
  absl::Status st = Receive(s, 1, /*dump=*/true, [&](const nlmsghdr* nh) {
    if (nh->nlmsg_type != RTM_NEWTFILTER) return;
    const auto* t = static_cast<const tcmsg*>(NLMSG_DATA(nh));
    if (t->tcm_handle == 0) return;  // The per-priority chain entry, not a filter.
    TcBpfFilter f;
    f.priority = TC_H_MAJ(t->tcm_info) >> 16;
    f.handle = t->tcm_handle;
    bool is_bpf = false;
    int len = static_cast<int>(nh->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(tcmsg)));
    const auto* rta = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(t) +
                                                      NLMSG_ALIGN(sizeof(tcmsg)));
    for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
      if (rta->rta_type == TCA_KIND) {
        is_bpf =
            std::strncmp(static_cast<const char*>(RTA_DATA(rta)), "bpf", RTA_PAYLOAD(rta)) == 0;
      } else if (rta->rta_type == TCA_OPTIONS) {
        int ilen = static_cast<int>(RTA_PAYLOAD(rta));
        for (const auto* in = static_cast<const rtattr*>(RTA_DATA(rta)); RTA_OK(in, ilen);
             in = RTA_NEXT(in, ilen)) {
          if (in->rta_type == TCA_BPF_NAME) {
            f.name.assign(static_cast<const char*>(RTA_DATA(in)),
                          strnlen(static_cast<const char*>(RTA_DATA(in)), RTA_PAYLOAD(in)));
          } else if (in->rta_type == TCA_BPF_ID && RTA_PAYLOAD(in) >= sizeof(uint32_t)) {
            std::memcpy(&f.prog_id, RTA_DATA(in), sizeof(uint32_t));
          }
        }
      }
    }
    if (is_bpf) out.push_back(std::move(f));
  });
  // No clsact qdisc (or the interface vanished meanwhile): no filters.
  if (!st.ok() && (absl::IsInvalidArgument(st) || absl::IsNotFound(st))) return out;
  CNINET_RETURN_IF_ERROR(Annotate(st, StrCat("list tc filters of ifindex ", ifindex)));
  return out;
}

absl::StatusOr<bool> HasTcProgram(int ifindex, bool ingress, const std::string& program) {
  CNINET_ASSIGN_OR_RETURN(auto filters, ListTcBpfFilters(ifindex, ingress));
  for (const auto& f : filters) {
    if (f.name.compare(0, program.size(), program) == 0 &&
        (f.name.size() == program.size() || f.name[program.size()] == ':')) {
      return true;
    }
  }
  return false;
}

absl::Status AttachTcBpf(int ifindex, bool ingress, int prog_fd, uint32_t handle, uint32_t priority,
                         const std::string& name) {
  if (!InterfaceExists(ifindex))
    return absl::NotFoundError(StrCat("no interface with index ", ifindex));
  RtnlSocket s;
  {
    TcRequest q{};
    q.nh.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
    q.nh.nlmsg_type = RTM_NEWQDISC;
    q.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    q.nh.nlmsg_seq = 3;
    q.tc.tcm_family = AF_UNSPEC;
    q.tc.tcm_ifindex = ifindex;
    q.tc.tcm_parent = TC_H_CLSACT;
    q.tc.tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
    AddStringAttr(&q, TCA_KIND, "clsact");
    CNINET_RETURN_IF_ERROR(Send(s, &q));
    absl::Status st = Receive(s, 3, /*dump=*/false, [](const nlmsghdr*) {});
    if (!st.ok() && !absl::IsAlreadyExists(st))
      return Annotate(st, StrCat("create clsact on ifindex ", ifindex));
  }
  TcRequest req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
  req.nh.nlmsg_type = RTM_NEWTFILTER;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
  req.nh.nlmsg_seq = 4;
  req.tc.tcm_family = AF_UNSPEC;
  req.tc.tcm_ifindex = ifindex;
  req.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  req.tc.tcm_handle = handle;
  req.tc.tcm_info = TC_H_MAKE(priority << 16, htons(ETH_P_ALL));
  AddStringAttr(&req, TCA_KIND, "bpf");
  rtattr* opts = AddAttr(&req, TCA_OPTIONS, nullptr, 0);
  uint32_t fd = static_cast<uint32_t>(prog_fd);
  uint32_t flags = TCA_BPF_FLAG_ACT_DIRECT;
  AddAttr(&req, TCA_BPF_FD, &fd, sizeof(fd));
  AddStringAttr(&req, TCA_BPF_NAME, name.c_str());
  AddAttr(&req, TCA_BPF_FLAGS, &flags, sizeof(flags));
  EndNest(&req, opts);
  CNINET_RETURN_IF_ERROR(Send(s, &req));
  return Annotate(Receive(s, 4, /*dump=*/false, [](const nlmsghdr*) {}),
                  StrCat("attach ", name, " to ifindex ", ifindex));
}

BpfFd& BpfFd::operator=(BpfFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

BpfFd::~BpfFd() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<BpfFd> ProgramById(uint32_t id) {
  bpf_attr attr{};
  attr.prog_id = id;
  attr.open_flags = 0;
  long fd = Bpf(BPF_PROG_GET_FD_BY_ID, &attr);
  if (fd < 0) return ErrnoStatus(errno, StrCat("open BPF program id ", id));
  return BpfFd(static_cast<int>(fd));
}

absl::StatusOr<BpfFd> OpenPinnedObject(const std::string& path) {
  bpf_attr attr{};
  attr.pathname = reinterpret_cast<uint64_t>(path.c_str());
  long fd = Bpf(BPF_OBJ_GET, &attr);
  if (fd < 0) return ErrnoStatus(errno, StrCat("open pinned ", path));
  return BpfFd(static_cast<int>(fd));
}

absl::Status PinObject(int fd, const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return ErrnoStatus(errno, StrCat("unlink ", path));
  bpf_attr attr{};
  attr.pathname = reinterpret_cast<uint64_t>(path.c_str());
  attr.bpf_fd = static_cast<uint32_t>(fd);
  if (Bpf(BPF_OBJ_PIN, &attr) != 0) return ErrnoStatus(errno, StrCat("pin ", path));
  return absl::OkStatus();
}

absl::Status RemoveClsactIfUnused(int ifindex) {
  if (!InterfaceExists(ifindex)) return absl::OkStatus();
  for (bool ingress : {true, false}) {
    auto filters = ListTcBpfFilters(ifindex, ingress);
    if (absl::IsNotFound(filters.status())) return absl::OkStatus();
    if (!filters.ok()) return filters.status();
    if (!filters->empty()) return absl::OkStatus();
  }
  RtnlSocket s;
  TcRequest req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
  req.nh.nlmsg_type = RTM_DELQDISC;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 2;
  req.tc.tcm_family = AF_UNSPEC;
  req.tc.tcm_ifindex = ifindex;
  req.tc.tcm_parent = TC_H_CLSACT;
  req.tc.tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
  AddStringAttr(&req, TCA_KIND, "clsact");
  CNINET_RETURN_IF_ERROR(Send(s, &req));
  absl::Status st = Receive(s, 2, /*dump=*/false, [](const nlmsghdr*) {});
  // No clsact (EINVAL: another ingress qdisc kind; ENOENT: none; ENODEV: interface gone).
  if (absl::IsInvalidArgument(st) || absl::IsNotFound(st)) return absl::OkStatus();
  return Annotate(st, StrCat("delete clsact qdisc of ifindex ", ifindex));
}

}  // namespace cninet::ebpf_chain
