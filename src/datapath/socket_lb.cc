#include "cninet/datapath/socket_lb.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <thread>
#include <utility>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "socket_lb_internal.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace cninet::datapath {

namespace {

int Err(int ret) { return ret < 0 ? -ret : errno; }

// Unpins every link under `dir` (detaching the ones no process holds) and removes `dir`.
absl::Status UnpinLinkDir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return absl::OkStatus();
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string path = entry.path().string();
    // Detach explicitly: a process that still holds the link must not keep translating.
    int fd = bpf_obj_get(path.c_str());
    if (fd >= 0) {
      (void)bpf_link_detach(fd);
      close(fd);
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      return ErrnoStatus(errno, StrCat("unlink ", path));
  }
  if (ec) return absl::InternalError(StrCat("list ", dir, ": ", ec.message()));
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, StrCat("rmdir ", dir));
  return absl::OkStatus();
}

}  // namespace

// Fills a SocketLbAttachment (its members are private).
struct SocketLbAttachmentAccess {
  static void Init(SocketLbAttachment* a, std::string cgroup_path, std::string pin_dir) {
    a->cgroup_path_ = std::move(cgroup_path);
    a->pin_dir_ = std::move(pin_dir);
  }
  static void Add(SocketLbAttachment* a, UniqueFd link) { a->links_.push_back(std::move(link)); }
};

// ---- SocketLbAttachment ----

SocketLbAttachment::~SocketLbAttachment() {
  if (absl::Status s = Detach(); !s.ok())
    CNINET_LOG(kWarning, "detach socket LB from ", cgroup_path_, ": ", s.message());
}

SocketLbAttachment::SocketLbAttachment(SocketLbAttachment&& o) noexcept
    : cgroup_path_(std::move(o.cgroup_path_)),
      pin_dir_(std::move(o.pin_dir_)),
      links_(std::exchange(o.links_, {})) {}

SocketLbAttachment& SocketLbAttachment::operator=(SocketLbAttachment&& o) noexcept {
  if (this != &o) {
    (void)Detach();
    cgroup_path_ = std::move(o.cgroup_path_);
    pin_dir_ = std::move(o.pin_dir_);
    links_ = std::exchange(o.links_, {});
  }
  return *this;
}

absl::Status SocketLbAttachment::Detach() {
  if (links_.empty()) return absl::OkStatus();
  absl::Status st = absl::OkStatus();
  if (!pin_dir_.empty()) st = UnpinLinkDir(pin_dir_);
  for (UniqueFd& l : links_) (void)bpf_link_detach(l.get());
  links_.clear();
  CNINET_LOG(kInfo, "detached socket LB from ", cgroup_path_);
  return st;
}

void SocketLbAttachment::Release() {
  // The pins keep the links; without pins closing the fds detaches them (documented).
  links_.clear();
}

// ---- Attach ----

absl::StatusOr<uint64_t> CgroupId(const std::string& cgroup_path) {
  struct stat st {};
  if (stat(cgroup_path.c_str(), &st) != 0) return ErrnoStatus(errno, StrCat("stat ", cgroup_path));
  if (!S_ISDIR(st.st_mode))
    return absl::InvalidArgumentError(StrCat(cgroup_path, " is not a cgroup directory"));
  return static_cast<uint64_t>(st.st_ino);
}

absl::StatusOr<SocketLbAttachment> AttachSockPrograms(const std::vector<SockProgram>& progs,
                                                      const std::string& cgroup_path,
                                                      const std::string& pin_dir) {
  UniqueFd cg(open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.valid()) return ErrnoStatus(errno, StrCat("open cgroup ", cgroup_path));
  SocketLbAttachment out;
  SocketLbAttachmentAccess::Init(&out, cgroup_path, pin_dir);
  if (!pin_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(pin_dir, ec);
    if (ec) return absl::InternalError(StrCat("create ", pin_dir, ": ", ec.message()));
  }
  for (const SockProgram& p : progs) {
    std::string pin = pin_dir.empty() ? std::string() : StrCat(pin_dir, "/", p.pin_name);
    if (!pin.empty()) {
      // A link pinned by an earlier process: swap its program in place (no gap, no double run).
      int old = bpf_obj_get(pin.c_str());
      if (old >= 0) {
        UniqueFd link(old);
        if (bpf_link_update(link.get(), p.fd, nullptr) == 0) {
          SocketLbAttachmentAccess::Add(&out, std::move(link));
          continue;
        }
        (void)bpf_link_detach(link.get());
        unlink(pin.c_str());
      }
    }
    int l =
        bpf_link_create(p.fd, cg.get(), static_cast<enum bpf_attach_type>(p.attach_type), nullptr);
    if (l < 0) {
      absl::Status s = ErrnoStatus(Err(l), StrCat("attach ", p.pin_name, " to ", cgroup_path));
      (void)out.Detach();
      return s;
    }
    UniqueFd link(l);
    if (!pin.empty()) {
      if (int r = bpf_obj_pin(link.get(), pin.c_str()); r < 0) {
        absl::Status s = ErrnoStatus(Err(r), StrCat("pin ", pin));
        (void)bpf_link_detach(link.get());
        (void)out.Detach();
        return s;
      }
    }
    SocketLbAttachmentAccess::Add(&out, std::move(link));
  }
  CNINET_LOG(kInfo, "attached socket LB to ", cgroup_path,
             pin_dir.empty() ? std::string() : StrCat(" (links pinned in ", pin_dir, ")"));
  return out;
}

// ---- Pinned links ----

absl::StatusOr<std::vector<SocketLbCgroup>> ListSocketLb(const PinLayout& layout) {
  std::vector<SocketLbCgroup> out;
  std::string dir = layout.SocketLbDir();
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return out;
  for (const auto& cg : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = cg.path().filename().string();
    if (name.rfind("cgroup_", 0) != 0) continue;
    SocketLbCgroup c;
    c.cgroup_id = std::strtoull(name.c_str() + 7, nullptr, 10);
    c.pin_dir = cg.path().string();
    std::vector<std::filesystem::path> links;
    for (const auto& l : std::filesystem::directory_iterator(cg.path(), ec))
      links.push_back(l.path());
    std::sort(links.begin(), links.end());
    for (const auto& l : links) {
      c.hooks.push_back(l.filename().string());
      uint32_t id = 0;
      int fd = bpf_obj_get(l.string().c_str());
      if (fd >= 0) {
        bpf_link_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) id = info.prog_id;
        close(fd);
      }
      c.program_ids.push_back(id);
    }
    out.push_back(std::move(c));
  }
  if (ec) return absl::InternalError(StrCat("list ", dir, ": ", ec.message()));
  return out;
}

absl::Status DetachSocketLb(const PinLayout& layout, const std::string& cgroup_path) {
  CNINET_ASSIGN_OR_RETURN(uint64_t id, CgroupId(cgroup_path));
  return UnpinLinkDir(layout.SocketLbLinkDir(id));
}

absl::Status DetachAllSocketLb(const PinLayout& layout) {
  CNINET_ASSIGN_OR_RETURN(std::vector<SocketLbCgroup> cgs, ListSocketLb(layout));
  for (const SocketLbCgroup& c : cgs) CNINET_RETURN_IF_ERROR(UnpinLinkDir(c.pin_dir));
  std::string dir = layout.SocketLbDir();
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, StrCat("rmdir ", dir));
  return absl::OkStatus();
}

// ---- Network namespaces ----

absl::StatusOr<uint64_t> NetnsCookie(const std::string& netns_path) {
  UniqueFd ns(open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return ErrnoStatus(errno, StrCat("open netns ", netns_path));
  // A socket created in that namespace reports its cookie; a helper thread enters it so the
  // caller's namespace never changes.
  absl::StatusOr<uint64_t> result = absl::InternalError("no result");
  std::thread t([&] {
    if (setns(ns.get(), CLONE_NEWNET) != 0) {
      result = ErrnoStatus(errno, StrCat("enter netns ", netns_path));
      return;
    }
    UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) s = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) {
      result = ErrnoStatus(errno, "socket");
      return;
    }
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    if (getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
      result = ErrnoStatus(errno, "getsockopt SO_NETNS_COOKIE");
      return;
    }
    result = cookie;
  });
  t.join();
  return result;
}

}  // namespace cninet::datapath
