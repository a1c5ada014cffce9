#include "testing/scoped_cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cninet/base/strings.h"
#include "testing/test_util.h"

namespace cninet::testing {

ScopedCgroup::ScopedCgroup(std::string_view prefix) {
  std::string path = StrCat(kCgroupRoot, "/", UniqueName(prefix));
  if (mkdir(path.c_str(), 0755) != 0) {
    status_ = absl::InternalError(StrCat("mkdir ", path, ": ", strerror(errno)));
    return;
  }
  path_ = std::move(path);
}

ScopedCgroup::~ScopedCgroup() {
  if (path_.empty()) return;
  // Only the test's own children can be in it: kill them (a cgroup with processes cannot go).
  auto empty = [&] {
    std::string procs = ReadFile(path_ + "/cgroup.procs");
    return procs.find_first_not_of(" \n") == std::string::npos;
  };
  if (!empty()) {
    int fd = open((path_ + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!write(fd, "1", 1);
      close(fd);
    }
  }
  for (int i = 0; i < 100; ++i) {
    if (rmdir(path_.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) break;
    usleep(20000);  // killed processes leave asynchronously
  }
  std::fprintf(stderr, "ScopedCgroup: rmdir %s: %s\n", path_.c_str(), strerror(errno));
}

}  // namespace cninet::testing
