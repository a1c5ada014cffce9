#include "cninet/ipam/disk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cninet/base/fd.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/ipam/names.h"

namespace cninet::ipam {
namespace {

using cni::ErrorCode;
using ::cninet::UniqueFd;

constexpr std::string_view kLastIpPrefix = "last_reserved_ip.";
constexpr std::string_view kLockName = "lock";
constexpr std::string_view kTmpPrefix = ".cninet-tmp-";
constexpr std::string_view kLineBreak = "\r\n";
// Lease records are tiny; anything bigger is not ours and is read only this far.
constexpr size_t kMaxRecord = 4096;

absl::Status IoError(int err, std::string_view what) {
  return cni::CniError(ErrorCode::kIoFailure, StrCat(what, ": ", std::strerror(err)));
}

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

absl::Status WriteAll(int fd, std::string_view data, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(errno, StrCat("write ", what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Reads at most kMaxRecord bytes of regular file `name` in `dir_fd` without following symlinks.
// nullopt when the file does not exist or is not a regular file. `known_regular` (readdir said
// DT_REG) skips the fstat; O_NOFOLLOW | O_NONBLOCK still keep a swapped-in symlink or FIFO out.
absl::StatusOr<std::optional<std::string>> ReadRecord(int dir_fd, const std::string& name,
                                                      bool known_regular = false) {
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    if (errno == ELOOP) {
      CNINET_LOG(kWarning, "ignoring symlink ", name, " in the lease directory");
      return std::optional<std::string>();
    }
    return IoError(errno, StrCat("open ", name));
  }
  UniqueFd guard(fd);
  if (!known_regular) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return IoError(errno, StrCat("stat ", name));
    if (!S_ISREG(st.st_mode)) return std::optional<std::string>();
  }
  char buf[kMaxRecord];
  size_t got = 0;
  while (got < sizeof(buf)) {
    ssize_t n = ::read(fd, buf + got, sizeof(buf) - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EISDIR || errno == EINVAL)
        return std::optional<std::string>();
      return IoError(errno, StrCat("read ", name));
    }
    got += static_cast<size_t>(n);
    // A short read of a regular file is its end: records are a few bytes, one read suffices.
    if (n == 0 || (known_regular && got < sizeof(buf))) break;
  }
  return std::optional<std::string>(std::string(buf, got));
}

// A lease record: "<id>\r\n<ifname>" or the legacy "<id>", surrounding whitespace ignored.
Lease ParseRecord(const cni::IPAddress& ip, std::string_view record) {
  Lease l;
  l.address = ip;
  record = TrimSpace(record);
  size_t br = record.find(kLineBreak);
  if (br == std::string_view::npos) {
    l.container_id = std::string(record);
  } else {
    l.container_id = std::string(record.substr(0, br));
    l.ifname = std::string(record.substr(br + kLineBreak.size()));
  }
  return l;
}

// The lease file names: addresses in canonical text, as Go's net.IP.String() writes them.
std::optional<cni::IPAddress> LeaseName(std::string_view name) {
  if (name.find_first_of(".:") == std::string_view::npos || name.size() > 45) return std::nullopt;
  auto ip = cni::IPAddress::Parse(name);
  if (!ip.ok()) return std::nullopt;
  return *ip;
}

absl::Status MkdirAll(const std::string& path) {
  // Create each missing component with 0700; existing ones are left as they are.
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (prefix.empty() || prefix.back() == '/') continue;
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return IoError(errno, StrCat("mkdir ", prefix));
    }
  }
  return absl::OkStatus();
}

}  // namespace

struct DiskStore::Impl {
  std::string dir;
  UniqueFd dir_fd;
  UniqueFd lock_fd;
  DiskStoreOptions options;
  std::mutex mu;  // Excludes other threads; flock excludes other processes.
  std::atomic<uint64_t> tmp_counter{0};

  std::string TmpName() { return StrCat(kTmpPrefix, ::getpid(), "-", tmp_counter.fetch_add(1)); }

  absl::Status SyncDir() {
    if (options.sync && ::fsync(dir_fd.get()) != 0) return IoError(errno, StrCat("fsync ", dir));
    return absl::OkStatus();
  }

  // Creates `name` with `content` atomically: true when created, false when it already exists.
  absl::StatusOr<bool> CreateExclusive(const std::string& name, std::string_view content) {
    if (!options.use_tmpfile) return CreateExclusiveNamed(name, content);
    int fd = ::openat(dir_fd.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || errno == ENOENT) {
        return CreateExclusiveNamed(name, content);
      }
      return IoError(errno, StrCat("create lease ", name));
    }
    UniqueFd guard(fd);
    CNINET_RETURN_IF_ERROR(WriteAll(fd, content, name));
    if (options.sync && ::fsync(fd) != 0) return IoError(errno, StrCat("fsync ", name));
    std::string proc = StrCat("/proc/self/fd/", fd);
    int rc = ::linkat(AT_FDCWD, proc.c_str(), dir_fd.get(), name.c_str(), AT_SYMLINK_FOLLOW);
    if (rc != 0 && errno == ENOENT) {  // No /proc: needs CAP_DAC_READ_SEARCH instead.
      rc = ::linkat(fd, "", dir_fd.get(), name.c_str(), AT_EMPTY_PATH);
    }
    if (rc == 0) return true;
    if (errno == EEXIST) return false;
    return IoError(errno, StrCat("link lease ", name));
  }

  // Fallback for filesystems without O_TMPFILE: a named temporary file linked into place.
  absl::StatusOr<bool> CreateExclusiveNamed(const std::string& name, std::string_view content) {
    std::string tmp = TmpName();
    ::unlinkat(dir_fd.get(), tmp.c_str(), 0);
    int fd = ::openat(dir_fd.get(), tmp.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return IoError(errno, StrCat("create ", tmp));
    UniqueFd guard(fd);
    absl::Status st = WriteAll(fd, content, tmp);
    if (st.ok() && options.sync && ::fsync(fd) != 0) st = IoError(errno, StrCat("fsync ", tmp));
    absl::StatusOr<bool> result = false;
    if (!st.ok()) {
      result = st;
    } else {
      if (::linkat(dir_fd.get(), tmp.c_str(), dir_fd.get(), name.c_str(), 0) == 0) {
        result = true;
      } else if (errno == EEXIST) {
        result = false;
      } else {
        result = IoError(errno, StrCat("link lease ", name));
      }
    }
    ::unlinkat(dir_fd.get(), tmp.c_str(), 0);
    return result;
  }

  // Writes the round-robin hint `name` in place (pwrite + ftruncate), as host-local does. The
  // hint is advisory: a torn value after a crash either fails to parse (ignored) or names some
  // address (round-robin starts there), so it needs neither a temporary file nor fsync - and a
  // rename over it would make ext4 (auto_da_alloc) flush on every ADD. A symlink or other
  // non-regular entry planted under the name is removed, never written through.
  absl::Status WriteHint(const std::string& name, std::string_view content) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      int fd = ::openat(dir_fd.get(), name.c_str(),
                        O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
      if (fd < 0 && (errno == ELOOP || errno == EISDIR || errno == ENXIO)) {
        if (::unlinkat(dir_fd.get(), name.c_str(), 0) != 0 && errno != ENOENT) break;
        continue;
      }
      if (fd < 0) return IoError(errno, StrCat("open ", name));
      UniqueFd guard(fd);
      struct stat st;
      if (::fstat(fd, &st) != 0) return IoError(errno, StrCat("stat ", name));
      if (!S_ISREG(st.st_mode)) {
        guard.Reset();
        if (::unlinkat(dir_fd.get(), name.c_str(), 0) != 0) break;
        continue;
      }
      if (::pwrite(fd, content.data(), content.size(), 0) != static_cast<ssize_t>(content.size()) ||
          ::ftruncate(fd, static_cast<off_t>(content.size())) != 0) {
        return IoError(errno, StrCat("write ", name));
      }
      return absl::OkStatus();
    }
    return cni::CniError(ErrorCode::kIoFailure, StrCat("cannot replace ", name));
  }

  // Calls `fn(name, d_type)` for each directory entry except "." and "..".
  template <typename Fn>
  absl::Status ForEachEntry(Fn&& fn) {
    int fd = ::openat(dir_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return IoError(errno, StrCat("open ", dir));
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
      int err = errno;
      ::close(fd);
      return IoError(err, StrCat("opendir ", dir));
    }
    absl::Status st;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      st = fn(name, e->d_type);
      if (!st.ok()) break;
      errno = 0;
    }
    if (st.ok() && errno != 0) st = IoError(errno, StrCat("readdir ", dir));
    ::closedir(d);
    return st;
  }
};

DiskStore::DiskStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DiskStore::~DiskStore() = default;

const std::string& DiskStore::dir() const { return impl_->dir; }

absl::StatusOr<std::unique_ptr<DiskStore>> DiskStore::Open(std::string_view data_dir,
                                                           std::string_view network,
                                                           DiskStoreOptions options) {
  CNINET_RETURN_IF_ERROR(ValidateNetworkName(network));
  CNINET_RETURN_IF_ERROR(ValidateDataDir(data_dir));
  std::string base(data_dir);
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->dir = base == "/" ? StrCat("/", network) : StrCat(base, "/", network);
  if (options.create) CNINET_RETURN_IF_ERROR(MkdirAll(base));
  UniqueFd base_fd(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!base_fd.valid()) {
    if (errno == ENOENT) {
      return cni::CniError(ErrorCode::kUnknownContainer,
                           StrCat("dataDir ", base, " does not exist"));
    }
    return IoError(errno, StrCat("open dataDir ", base));
  }
  bool created = false;
  if (options.create) {
    std::string net(network);
    if (::mkdirat(base_fd.get(), net.c_str(), 0700) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      return IoError(errno, StrCat("mkdir ", impl->dir));
    }
  }
  impl->dir_fd.Reset(::openat(base_fd.get(), std::string(network).c_str(),
                              O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!impl->dir_fd.valid()) {
    if (errno == ENOENT) {
      return cni::CniError(ErrorCode::kUnknownContainer,
                           StrCat("network directory ", impl->dir, " does not exist"));
    }
    if (errno == ELOOP || errno == ENOTDIR) {
      return cni::CniError(
          ErrorCode::kIoFailure,
          StrCat(impl->dir, " is a symlink or not a directory; refusing to use it"));
    }
    return IoError(errno, StrCat("open ", impl->dir));
  }
  if (created && options.sync && ::fsync(base_fd.get()) != 0) {
    return IoError(errno, StrCat("fsync ", base));
  }
  impl->lock_fd.Reset(::openat(impl->dir_fd.get(), std::string(kLockName).c_str(),
                               O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!impl->lock_fd.valid()) return IoError(errno, StrCat("open ", impl->dir, "/lock"));
  return std::unique_ptr<DiskStore>(new DiskStore(std::move(impl)));
}

absl::StatusOr<StoreLock> DiskStore::Lock() {
  Impl* impl = impl_.get();
  impl->mu.lock();
  while (::flock(impl->lock_fd.get(), LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int err = errno;
    impl->mu.unlock();
    return IoError(err, StrCat("flock ", impl->dir, "/lock"));
  }
  return StoreLock([impl] {
    ::flock(impl->lock_fd.get(), LOCK_UN);
    impl->mu.unlock();
  });
}

absl::StatusOr<bool> DiskStore::Reserve(const Lease& lease, std::string_view range_id) {
  CNINET_RETURN_IF_ERROR(ValidateRangeId(range_id));
  CNINET_RETURN_IF_ERROR(ValidateContainerId(lease.container_id));
  if (!lease.ifname.empty()) CNINET_RETURN_IF_ERROR(ValidateIfname(lease.ifname));
  std::string name = lease.address.ToString();
  struct stat st;
  if (::fstatat(impl_->dir_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return false;
  if (errno != ENOENT) return IoError(errno, StrCat("stat ", name));
  std::string content = lease.ifname.empty() ? lease.container_id
                                             : StrCat(lease.container_id, kLineBreak, lease.ifname);
  CNINET_ASSIGN_OR_RETURN(bool created, impl_->CreateExclusive(name, content));
  if (!created) return false;
  // The hint only steers round-robin: failing to write it does not undo the reservation.
  if (absl::Status hint = impl_->WriteHint(StrCat(kLastIpPrefix, range_id), name); !hint.ok()) {
    CNINET_LOG(kWarning, "round-robin hint not updated: ", hint.ToString());
  }
  CNINET_RETURN_IF_ERROR(impl_->SyncDir());
  return true;
}

absl::StatusOr<std::optional<cni::IPAddress>> DiskStore::LastReserved(std::string_view range_id) {
  CNINET_RETURN_IF_ERROR(ValidateRangeId(range_id));
  CNINET_ASSIGN_OR_RETURN(auto data,
                          ReadRecord(impl_->dir_fd.get(), StrCat(kLastIpPrefix, range_id)));
  if (!data.has_value()) return std::optional<cni::IPAddress>();
  auto ip = cni::IPAddress::Parse(TrimSpace(*data));
  if (!ip.ok()) {
    CNINET_LOG(kWarning, impl_->dir, "/", kLastIpPrefix, range_id, " is unreadable; ignoring it");
    return std::optional<cni::IPAddress>();
  }
  return std::optional<cni::IPAddress>(*ip);
}

absl::Status DiskStore::Release(const cni::IPAddress& address) {
  std::string name = address.ToString();
  if (::unlinkat(impl_->dir_fd.get(), name.c_str(), 0) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return IoError(errno, StrCat("remove lease ", name));
  }
  // No directory fsync: a release lost to a power failure only brings back a lease of a dead
  // container (freed by the next DEL or GC); it can never cause a duplicate address.
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Lease>> DiskStore::List() {
  std::vector<Lease> out;
  int dir_fd = impl_->dir_fd.get();
  CNINET_RETURN_IF_ERROR(impl_->ForEachEntry([&](std::string_view name, unsigned char type) {
    if (type == DT_DIR || type == DT_LNK) return absl::OkStatus();
    std::optional<cni::IPAddress> ip = LeaseName(name);
    if (!ip.has_value()) return absl::OkStatus();
    CNINET_ASSIGN_OR_RETURN(auto record, ReadRecord(dir_fd, std::string(name), type == DT_REG));
    if (record.has_value()) out.push_back(ParseRecord(*ip, *record));
    return absl::OkStatus();
  }));
  std::sort(out.begin(), out.end(),
            [](const Lease& a, const Lease& b) { return a.address < b.address; });
  return out;
}

absl::StatusOr<std::optional<Lease>> DiskStore::Get(const cni::IPAddress& address) {
  CNINET_ASSIGN_OR_RETURN(auto record, ReadRecord(impl_->dir_fd.get(), address.ToString()));
  if (!record.has_value()) return std::optional<Lease>();
  return std::optional<Lease>(ParseRecord(address, *record));
}

absl::Status DiskStore::Cleanup() {
  std::vector<std::string> debris;
  CNINET_RETURN_IF_ERROR(impl_->ForEachEntry([&](std::string_view name, unsigned char) {
    if (name.substr(0, kTmpPrefix.size()) == kTmpPrefix) debris.emplace_back(name);
    return absl::OkStatus();
  }));
  for (const std::string& name : debris) {
    if (::unlinkat(impl_->dir_fd.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      return IoError(errno, StrCat("remove ", name));
    }
  }
  return absl::OkStatus();
}

}  // namespace cninet::ipam
