#include "cninet/netlink/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/netlink/handle.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

namespace cninet::netlink {
namespace {

constexpr char kNetnsRunDir[] = "/run/netns";

absl::Status ValidateNetnsName(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(cninet::StrCat("invalid namespace name \"", name, "\""));
  }
  return absl::OkStatus();
}

// OK when fd is an nsfs file of a network namespace.
absl::Status CheckNetnsFd(int fd, std::string_view path) {
  struct statfs sfs {};
  if (fstatfs(fd, &sfs) != 0) return ErrnoStatus(errno, cninet::StrCat("statfs ", path));
  if (static_cast<unsigned long>(sfs.f_type) != NSFS_MAGIC) {
    return absl::InvalidArgumentError(cninet::StrCat(path, " is not a namespace file"));
  }
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) return ErrnoStatus(errno, cninet::StrCat("NS_GET_NSTYPE ", path));
  if (type != CLONE_NEWNET) {
    return absl::InvalidArgumentError(cninet::StrCat(path, " is not a network namespace"));
  }
  return absl::OkStatus();
}

// Makes /run/netns a shared mount point, as iproute2 does, so namespace mounts made here
// propagate to other mount namespaces (and theirs to us).
absl::Status PrepareRunDir() {
  if (mkdir(kNetnsRunDir, 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, cninet::StrCat("mkdir ", kNetnsRunDir));
  }
  int dirfd = open(kNetnsRunDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return ErrnoStatus(errno, cninet::StrCat("open ", kNetnsRunDir));
  // Serialises the one-time setup between cninet processes.
  while (flock(dirfd, LOCK_EX) != 0 && errno == EINTR) {
  }
  absl::Status st;
  bool bound = false;
  while (mount("", kNetnsRunDir, "none", MS_SHARED | MS_REC, nullptr) != 0) {
    if (errno != EINVAL || bound) {
      st = ErrnoStatus(errno, cninet::StrCat("make ", kNetnsRunDir, " shared"));
      break;
    }
    // Not a mount point yet: bind it onto itself, then retry.
    if (mount(kNetnsRunDir, kNetnsRunDir, "none", MS_BIND | MS_REC, nullptr) != 0) {
      st = ErrnoStatus(errno, cninet::StrCat("bind ", kNetnsRunDir));
      break;
    }
    bound = true;
  }
  close(dirfd);  // Releases the lock.
  return st;
}

}  // namespace

Netns& Netns::operator=(Netns&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

Netns::~Netns() {
  if (fd_ >= 0) close(fd_);
}

std::string Netns::PathForName(std::string_view name) {
  return cninet::StrCat(kNetnsRunDir, "/", name);
}

absl::StatusOr<Netns> Netns::Open(std::string_view path) {
  std::string p(path);
  if (p.empty()) return absl::InvalidArgumentError("empty namespace path");
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, cninet::StrCat("open namespace ", path));
  if (absl::Status st = CheckNetnsFd(fd, path); !st.ok()) {
    close(fd);
    return st;
  }
  return Netns(fd, std::move(p));
}

absl::StatusOr<Netns> Netns::OpenByName(std::string_view name) {
  CNINET_RETURN_IF_ERROR(ValidateNetnsName(name));
  return Open(PathForName(name));
}

absl::StatusOr<Netns> Netns::Current() {
  int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open /proc/thread-self/ns/net");
  return Netns(fd, std::string());
}

absl::Status Netns::CheckPath(std::string_view path) { return Open(path).status(); }

absl::StatusOr<Netns> Netns::Create(std::string_view name) {
  CNINET_RETURN_IF_ERROR(ValidateNetnsName(name));
  CNINET_RETURN_IF_ERROR(PrepareRunDir());
  std::string path = PathForName(name);
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, cninet::StrCat("create ", path));
  close(fd);
  // unshare() on a throw-away thread: the new namespace is bound to the file, then the thread
  // (the only one that ever entered it) exits.
  absl::Status st;
  try {
    std::thread t([&] {
      if (unshare(CLONE_NEWNET) != 0) {
        st = ErrnoStatus(errno, "unshare(CLONE_NEWNET)");
        return;
      }
      if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
        st = ErrnoStatus(errno, cninet::StrCat("bind namespace to ", path));
      }
    });
    t.join();
  } catch (const std::system_error& e) {
    st = absl::ResourceExhaustedError(cninet::StrCat("cannot start a thread: ", e.what()));
  }
  if (!st.ok()) {
    unlink(path.c_str());
    return st;
  }
  return Open(path);
}

absl::Status Netns::Delete(std::string_view name) {
  CNINET_RETURN_IF_ERROR(ValidateNetnsName(name));
  std::string path = PathForName(name);
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return ErrnoStatus(errno, cninet::StrCat("unmount ", path));
  }
  if (unlink(path.c_str()) != 0) return ErrnoStatus(errno, cninet::StrCat("remove ", path));
  return absl::OkStatus();
}

namespace {

// Restores the calling thread's original network namespace when it goes out of scope.
class RestoreNetnsGuard {
 public:
  explicit RestoreNetnsGuard(int original_fd) : fd_(original_fd) {}
  RestoreNetnsGuard(const RestoreNetnsGuard&) = delete;
  RestoreNetnsGuard& operator=(const RestoreNetnsGuard&) = delete;
  ~RestoreNetnsGuard() {
    if (setns(fd_, CLONE_NEWNET) != 0) {
      // Continuing would run the rest of this thread's work in the wrong namespace.
      CNINET_LOG(kError, "cannot restore the thread's network namespace: ", strerror(errno),
                 "; aborting");
      std::abort();
    }
    close(fd_);
  }

 private:
  int fd_;
};

}  // namespace

absl::Status Netns::Run(absl::FunctionRef<absl::Status()> fn) const {
  if (fd_ < 0) return absl::FailedPreconditionError("namespace handle is closed");
  int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) return ErrnoStatus(errno, "open /proc/thread-self/ns/net");
  if (setns(fd_, CLONE_NEWNET) != 0) {
    int err = errno;
    close(original);
    return ErrnoStatus(err, cninet::StrCat("setns ", path_));
  }
  RestoreNetnsGuard restore(original);
  return fn();
}

absl::Status Netns::RunInThread(absl::FunctionRef<absl::Status()> fn) const {
  if (fd_ < 0) return absl::FailedPreconditionError("namespace handle is closed");
  absl::Status result;
  try {
    std::thread t([&] {
      // This thread exists only for this call: whatever fn does, no other thread's namespace
      // changes, and there is nothing to restore.
      if (setns(fd_, CLONE_NEWNET) != 0) {
        result = ErrnoStatus(errno, cninet::StrCat("setns ", path_));
        return;
      }
      result = fn();
    });
    t.join();
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(cninet::StrCat("cannot start a thread: ", e.what()));
  }
  return result;
}

bool Netns::SameAs(const Netns& other) const {
  struct stat a {
  }, b{};
  if (fstat(fd_, &a) != 0 || fstat(other.fd_, &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

ino_t Netns::inode() const {
  struct stat st {};
  if (fstat(fd_, &st) != 0) return 0;
  return st.st_ino;
}

// ---- NamedNetns ----

absl::StatusOr<NamedNetns> NamedNetns::Create(std::string_view name, bool loopback_up) {
  CNINET_ASSIGN_OR_RETURN(Netns ns, Netns::Create(name));
  NamedNetns named(std::string(name), std::move(ns));
  if (loopback_up) {
    CNINET_ASSIGN_OR_RETURN(Handle h, Handle::OpenIn(named.ns()));
    CNINET_ASSIGN_OR_RETURN(Link lo, h.GetLink("lo"));
    CNINET_RETURN_IF_ERROR(h.SetLinkUp(lo.index));
  }
  return named;
}

NamedNetns& NamedNetns::operator=(NamedNetns&& other) noexcept {
  if (this != &other) {
    (void)Remove();
    name_ = std::exchange(other.name_, std::string());
    ns_ = std::move(other.ns_);
  }
  return *this;
}

NamedNetns::~NamedNetns() { (void)Remove(); }

absl::Status NamedNetns::Remove() {
  if (name_.empty()) return absl::OkStatus();
  absl::Status st = Netns::Delete(name_);
  if (st.ok() || absl::IsNotFound(st)) {
    name_.clear();
    return absl::OkStatus();
  }
  return st;
}

}  // namespace cninet::netlink
