#include "cninet/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <filesystem>
#include <random>

#include "cninet/base/fd.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet {
namespace {

std::string DirName(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// Creates `path`.tmp.<pid>.<random> exclusively; returns its name and descriptor.
absl::StatusOr<std::pair<std::string, UniqueFd>> CreateTemp(const std::string& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string tmp = StrCat(path, ".tmp.", getpid(), ".", rng() % 1000000000ULL);
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd) return std::make_pair(std::move(tmp), std::move(fd));
    if (errno != EEXIST) return ErrnoStatus(errno, StrCat("create ", tmp));
  }
  return absl::AlreadyExistsError(StrCat("create a temporary file beside ", path));
}

// Writes, chmods and syncs the temporary file.
absl::Status FillTemp(int fd, const std::string& tmp, std::string_view data, mode_t mode) {
  CNINET_RETURN_IF_ERROR(WriteAll(fd, data, tmp));
  if (fchmod(fd, mode) != 0) return ErrnoStatus(errno, StrCat("chmod ", tmp));
  if (fsync(fd) != 0) return ErrnoStatus(errno, StrCat("fsync ", tmp));
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteAll(int fd, std::string_view data, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, StrCat("write ", what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, StrCat("open ", dir));
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, StrCat("fsync ", dir));
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view data,
                             const WriteFileOptions& options) {
  const std::string dir = DirName(path);
  if (options.create_parent_dirs) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(StrCat("create ", dir, ": ", ec.message()));
  }
  CNINET_ASSIGN_OR_RETURN(auto temp, CreateTemp(path));
  auto& [tmp, fd] = temp;
  absl::Status status = FillTemp(fd.get(), tmp, data, options.mode);
  if (status.ok() && close(fd.Release()) != 0) status = ErrnoStatus(errno, StrCat("close ", tmp));
  if (status.ok() && options.before_rename) options.before_rename();
  if (status.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus(errno, StrCat("rename ", tmp, " to ", path));
  }
  if (!status.ok()) {
    unlink(tmp.c_str());
    return status;
  }
  return SyncDirectory(dir);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, StrCat("open ", path));
  std::string out;
  std::array<char, 1 << 16> buf;
  while (true) {
    ssize_t n = read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, StrCat("read ", path));
    }
    if (n == 0) return out;
    out.append(buf.data(), static_cast<size_t>(n));
  }
}

}  // namespace cninet
