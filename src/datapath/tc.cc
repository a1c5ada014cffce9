#include "cninet/datapath/tc.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "tc_internal.h"

namespace cninet::datapath {
namespace {

constexpr uint32_t kTcHandle = 0xc1;  // "cninet" filter handle
constexpr uint32_t kTcPriority = 1;
// A clsact qdisc the datapath creates carries an owner filter: a two-instruction program that
// returns TC_ACT_UNSPEC (go on with the next filter), at the last priority of the ingress hook.
// It lives and dies with the qdisc, so any later process knows the qdisc is the datapath's.
constexpr uint32_t kOwnerHandle = 0xc1ff;
constexpr uint32_t kOwnerPriority = 0xffff;
constexpr char kOwnerProgram[] = "cn_clsact_owner";

int Err(int ret) { return ret < 0 ? -ret : errno; }

bpf_tc_attach_point AttachPoint(Hook hook) {
  return HookIsIngress(hook) ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

// ---- rtnetlink: listing the filters of a clsact hook ----

// A filter dump request: header and tcmsg.
struct TcDumpRequest {
  nlmsghdr nh;
  tcmsg tc;
};

absl::StatusOr<UniqueFd> SendDump(int ifindex, bool ingress) {
  UniqueFd s(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!s.valid()) return ErrnoStatus(errno, "rtnetlink socket");
  TcDumpRequest req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
  req.nh.nlmsg_type = RTM_GETTFILTER;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.tc.tcm_family = AF_UNSPEC;
  req.tc.tcm_ifindex = ifindex;
  req.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(s.get(), &req, req.nh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    return ErrnoStatus(errno, "rtnetlink send");
  }
  return s;
}

// Reads TCA_BPF_NAME and TCA_BPF_ID from a filter's TCA_OPTIONS.
void ParseBpfOptions(const rtattr* options, TcFilter* f) {
  int len = static_cast<int>(RTA_PAYLOAD(options));
  for (const auto* in = static_cast<const rtattr*>(RTA_DATA(options)); RTA_OK(in, len);
       in = RTA_NEXT(in, len)) {
    if (in->rta_type == TCA_BPF_NAME) {
      f->name.assign(static_cast<const char*>(RTA_DATA(in)),
                     strnlen(static_cast<const char*>(RTA_DATA(in)), RTA_PAYLOAD(in)));
    } else if (in->rta_type == TCA_BPF_ID && RTA_PAYLOAD(in) >= sizeof(uint32_t)) {
      std::memcpy(&f->program_id, RTA_DATA(in), sizeof(uint32_t));
    }
  }
}

// Appends the filter `nh` describes to `out` when it is a BPF filter.
void ParseFilter(const nlmsghdr* nh, bool ingress, std::vector<TcFilter>* out) {
  if (nh->nlmsg_type != RTM_NEWTFILTER) return;
  const auto* t = static_cast<const tcmsg*>(NLMSG_DATA(nh));
  if (t->tcm_handle == 0) return;  // The per-priority chain entry, not a filter.
  TcFilter f;
  f.ingress = ingress;
  f.priority = TC_H_MAJ(t->tcm_info) >> 16;
  f.handle = t->tcm_handle;
  bool is_bpf = false;
  int len = static_cast<int>(nh->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(tcmsg)));
  const auto* rta = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(t) +
                                                    NLMSG_ALIGN(sizeof(tcmsg)));
  for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    if (rta->rta_type == TCA_KIND) {
      is_bpf = std::strncmp(static_cast<const char*>(RTA_DATA(rta)), "bpf", RTA_PAYLOAD(rta)) == 0;
    } else if (rta->rta_type == TCA_OPTIONS) {
      ParseBpfOptions(rta, &f);
    }
  }
  if (is_bpf) out->push_back(std::move(f));
}

// Reads the dump's replies until NLMSG_DONE or an error.
absl::Status ReceiveDump(int fd, bool ingress, std::vector<TcFilter>* out) {
  alignas(nlmsghdr) char buf[32768];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "rtnetlink receive");
    }
    int len = static_cast<int>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_seq != 1) continue;
      if (nh->nlmsg_type == NLMSG_DONE) {
        int err = 0;
        if (nh->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
          std::memcpy(&err, NLMSG_DATA(nh), sizeof(int));
        return err < 0 ? ErrnoStatus(-err, "rtnetlink dump") : absl::OkStatus();
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
        if (e->error != 0) return ErrnoStatus(-e->error, "rtnetlink");
        continue;
      }
      ParseFilter(nh, ingress, out);
    }
  }
}

absl::StatusOr<std::vector<TcFilter>> ListFilters(int ifindex, bool ingress) {
  std::vector<TcFilter> out;
  CNINET_ASSIGN_OR_RETURN(UniqueFd s, SendDump(ifindex, ingress));
  absl::Status st = ReceiveDump(s.get(), ingress, &out);
  // No clsact qdisc (or the interface vanished meanwhile): no filters.
  if (!st.ok() && (absl::IsInvalidArgument(st) || absl::IsNotFound(st))) return out;
  CNINET_RETURN_IF_ERROR(Annotate(st, StrCat("list tc filters of ifindex ", ifindex)));
  return out;
}

// ---- the clsact qdiscs the datapath created ----

bool IsOwnerFilter(const TcFilter& f) {
  std::string_view n = f.name;
  return f.ingress && f.handle == kOwnerHandle && f.priority == kOwnerPriority &&
         n.substr(0, sizeof(kOwnerProgram) - 1) == kOwnerProgram;
}

// Marks the clsact qdisc the datapath just created on `ifindex` with the owner filter.
absl::Status MarkClsactOwned(int ifindex) {
  const bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = -1},  // TC_ACT_UNSPEC
      {.code = BPF_JMP | BPF_EXIT},
  };
  int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, kOwnerProgram, "GPL", insns, 2, nullptr);
  if (fd < 0) return ErrnoStatus(Err(fd), "load the clsact owner program");
  UniqueFd prog(fd);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog.get(), .flags = BPF_TC_F_REPLACE,
              .handle = kOwnerHandle, .priority = kOwnerPriority);
  if (int r = bpf_tc_attach(&hook, &opts); r < 0)
    return ErrnoStatus(Err(r), "attach the clsact owner filter");
  return absl::OkStatus();
}

// Removes the clsact qdisc of `ifindex` when the datapath created it (the owner filter is there)
// and no other filter is left.
absl::Status RemoveOwnClsactIfUnused(int ifindex) {
  bool owned = false;
  for (bool ingress : {true, false}) {
    CNINET_ASSIGN_OR_RETURN(std::vector<TcFilter> filters, ListFilters(ifindex, ingress));
    for (const TcFilter& f : filters) {
      if (!IsOwnerFilter(f)) return absl::OkStatus();  // Still in use.
      owned = true;
    }
  }
  if (!owned) return absl::OkStatus();  // Not ours (or already gone).
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int r = bpf_tc_hook_destroy(&hook);
  if (r < 0 && Err(r) != ENOENT && Err(r) != EINVAL && Err(r) != ENODEV)
    return ErrnoStatus(Err(r), StrCat("delete clsact qdisc of ifindex ", ifindex));
  return absl::OkStatus();
}

// Detaches cninet's `hook` filter from `ifindex` in the current namespace, then the clsact qdisc
// the datapath created once it is unused.
absl::Status DetachInCurrentNetns(Hook hook, int ifindex, std::string_view ifname) {
  LIBBPF_OPTS(bpf_tc_hook, tc_hook, .ifindex = ifindex, .attach_point = AttachPoint(hook));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  int r = bpf_tc_detach(&tc_hook, &opts);
  int e = r < 0 ? Err(r) : 0;
  if (e == ENODEV) return absl::OkStatus();
  if (r < 0 && e != ENOENT && e != EINVAL)
    return ErrnoStatus(e, StrCat("tc detach ", HookName(hook), " from ", ifname));
  return Annotate(RemoveOwnClsactIfUnused(ifindex), ifname);
}

int IfIndex(std::string_view ifname) {
  std::string name(ifname);
  return static_cast<int>(if_nametoindex(name.c_str()));
}

}  // namespace

TcAttachment TcAttachmentAccess::Make(std::string ifname, int ifindex, Hook hook, UniqueFd netns) {
  TcAttachment a;
  a.ifname_ = std::move(ifname);
  a.ifindex_ = ifindex;
  a.hook_ = hook;
  a.netns_ = std::move(netns);
  return a;
}

absl::StatusOr<TcAttachment> AttachProgramFd(int prog_fd, Hook hook, std::string_view ifname) {
  std::string name(ifname);
  int ifindex = IfIndex(name);
  if (ifindex == 0)
    return absl::NotFoundError(StrCat("no interface ", name, " in this network namespace"));
  LIBBPF_OPTS(bpf_tc_hook, tc_hook, .ifindex = ifindex, .attach_point = AttachPoint(hook));
  int r = bpf_tc_hook_create(&tc_hook);
  if (r < 0 && Err(r) != EEXIST) return ErrnoStatus(Err(r), StrCat("create clsact on ", name));
  // EEXIST: there already (someone else's, or one the datapath created and marked earlier).
  if (r == 0) {
    if (absl::Status st = MarkClsactOwned(ifindex); !st.ok())
      CNINET_LOG(kWarning, name, ": ", st.message(), "; its clsact qdisc will stay");
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
              .priority = kTcPriority);
  r = bpf_tc_attach(&tc_hook, &opts);
  if (r < 0) return ErrnoStatus(Err(r), StrCat("attach ", HookName(hook), " to ", name));
  UniqueFd netns(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!netns.valid()) {
    int e = errno;
    (void)DetachInCurrentNetns(hook, ifindex, name);
    return ErrnoStatus(e, "open current netns");
  }
  CNINET_LOG(kInfo, "attached ", HookName(hook), " to ", name, " ifindex ", ifindex);
  return TcAttachmentAccess::Make(std::move(name), ifindex, hook, std::move(netns));
}

std::string_view HookName(Hook hook) {
  switch (hook) {
    case Hook::kFromPod:
      return "from-pod";
    case Hook::kFromWorld:
      return "from-world";
    case Hook::kToWorld:
      return "to-world";
    case Hook::kToPod:
      return "to-pod";
  }
  return "?";
}

std::string_view HookProgramName(Hook hook) {
  switch (hook) {
    case Hook::kFromPod:
      return "cn_from_pod";
    case Hook::kFromWorld:
      return "cn_from_world";
    case Hook::kToWorld:
      return "cn_to_world";
    case Hook::kToPod:
      return "cn_to_pod";
  }
  return "?";
}

std::string_view HookPinName(Hook hook) { return HookProgramName(hook).substr(3); }

bool HookIsIngress(Hook hook) { return hook != Hook::kToWorld && hook != Hook::kToPod; }

// ---- TcAttachment ----

TcAttachment::~TcAttachment() {
  if (absl::Status s = Detach(); !s.ok())
    CNINET_LOG(kWarning, "detach ", ifname_, ": ", s.message());
}

TcAttachment::TcAttachment(TcAttachment&& o) noexcept
    : ifname_(std::move(o.ifname_)),
      ifindex_(o.ifindex_),
      hook_(o.hook_),
      netns_(std::move(o.netns_)) {}

TcAttachment& TcAttachment::operator=(TcAttachment&& o) noexcept {
  if (this != &o) {
    (void)Detach();
    ifname_ = std::move(o.ifname_);
    ifindex_ = o.ifindex_;
    hook_ = o.hook_;
    netns_ = std::move(o.netns_);
  }
  return *this;
}

void TcAttachment::Release() { netns_.Reset(); }

absl::Status TcAttachment::Detach() {
  if (!netns_.valid()) return absl::OkStatus();
  UniqueFd netns = std::move(netns_);
  UniqueFd cur(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!cur.valid()) return ErrnoStatus(errno, "open current netns");
  if (setns(netns.get(), CLONE_NEWNET) != 0)
    return ErrnoStatus(errno, "enter the attachment's netns");
  absl::Status result = DetachInCurrentNetns(hook_, ifindex_, ifname_);
  if (setns(cur.get(), CLONE_NEWNET) != 0)
    result = ErrnoStatus(errno, "return to the caller's netns");
  return result;
}

absl::Status DetachHook(Hook hook, std::string_view ifname) {
  int ifindex = IfIndex(ifname);
  if (ifindex == 0) return absl::OkStatus();
  return DetachInCurrentNetns(hook, ifindex, ifname);
}

absl::Status DetachPodHooks(std::string_view ifname) {
  CNINET_RETURN_IF_ERROR(DetachHook(Hook::kToPod, ifname));
  return DetachHook(Hook::kFromPod, ifname);
}

absl::Status PodAttachment::Detach() {
  absl::Status a = to_pod.Detach();
  absl::Status b = from_pod.Detach();
  return a.ok() ? b : a;
}

// ---- listing ----

bool TcFilter::Is(Hook hook) const {
  std::string_view program = HookProgramName(hook);
  std::string_view n = name;
  bool name_matches = n.substr(0, program.size()) == program &&
                      (n.size() == program.size() || n[program.size()] == ':');
  return name_matches && ingress == HookIsIngress(hook) && handle == kTcHandle &&
         priority == kTcPriority;
}

absl::StatusOr<std::vector<TcFilter>> ListTcFilters(std::string_view ifname, bool ingress) {
  int ifindex = IfIndex(ifname);
  if (ifindex == 0)
    return absl::NotFoundError(StrCat("no interface ", ifname, " in this network namespace"));
  CNINET_ASSIGN_OR_RETURN(std::vector<TcFilter> filters, ListFilters(ifindex, ingress));
  std::erase_if(filters, IsOwnerFilter);
  return filters;
}

absl::StatusOr<bool> HookAttached(Hook hook, std::string_view ifname) {
  CNINET_ASSIGN_OR_RETURN(std::vector<TcFilter> filters,
                          ListTcFilters(ifname, HookIsIngress(hook)));
  for (const TcFilter& f : filters)
    if (f.Is(hook)) return true;
  return false;
}

// ---- BpfProgram ----

absl::StatusOr<BpfProgram> BpfProgram::OpenPinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return ErrnoStatus(Err(fd), StrCat("open pinned program ", path));
  return BpfProgram(UniqueFd(fd));
}

absl::StatusOr<BpfProgram> BpfProgram::FromId(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return ErrnoStatus(Err(fd), StrCat("open BPF program id ", id));
  return BpfProgram(UniqueFd(fd));
}

absl::Status BpfProgram::Pin(const std::string& path) const {
  if (!valid()) return absl::FailedPreconditionError("no program to pin");
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return absl::InternalError(StrCat("create the directory of ", path, ": ", ec.message()));
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return ErrnoStatus(errno, StrCat("unlink ", path));
  if (int r = bpf_obj_pin(fd_.get(), path.c_str()); r < 0)
    return ErrnoStatus(Err(r), StrCat("pin ", path));
  return absl::OkStatus();
}

absl::StatusOr<TcAttachment> BpfProgram::Attach(Hook hook, std::string_view ifname) const {
  if (!valid()) return absl::FailedPreconditionError("no program to attach");
  return AttachProgramFd(fd_.get(), hook, ifname);
}

uint32_t BpfProgram::id() const {
  if (!valid()) return 0;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd_.get(), &info, &len) != 0) return 0;
  return info.id;
}

}  // namespace cninet::datapath
