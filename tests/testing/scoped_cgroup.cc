#include "testing/scoped_cgroup.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cninet/base/strings.h"
#include "testing/test_util.h"

namespace cninet::testing {

ScopedCgroup::ScopedCgroup(std::string_view prefix, std::string_view parent) {
  std::string path = StrCat(parent, "/", UniqueName(prefix));
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

std::string InChild(const std::string& cgroup, const std::string& netns_path,
                    const std::function<std::string()>& fn, std::chrono::milliseconds timeout) {
  int ns = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return StrCat("child failed: open ", netns_path);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    close(ns);
    return "child failed: pipe";
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(ns);
    close(p[0]);
    close(p[1]);
    return "child failed: fork";
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(p[0]);
    std::string out;
    if (!cgroup.empty()) {
      // Membership is per process: the child joins, the test process stays where it is.
      int cg = open((cgroup + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
      std::string me = std::to_string(getpid());
      if (cg < 0 || write(cg, me.data(), me.size()) != static_cast<ssize_t>(me.size())) {
        out = "child failed: join cgroup";
      }
    }
    if (out.empty() && setns(ns, CLONE_NEWNET) != 0) out = "child failed: setns";
    if (out.empty()) out = fn();
    (void)!write(p[1], out.data(), out.size());
    _exit(0);
  }
  close(p[1]);
  close(ns);
  std::string out;
  char buf[512];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = true;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{p[0], POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    ssize_t n = read(p[0], buf, sizeof(buf));
    if (n <= 0) {
      timed_out = false;
      break;
    }
    out.append(buf, n);
  }
  close(p[0]);
  if (timed_out) {
    kill(pid, SIGKILL);
    out = StrCat("child failed: timed out after ", timeout.count(), " ms (", out, ")");
  }
  waitpid(pid, nullptr, 0);
  return out;
}

}  // namespace cninet::testing
