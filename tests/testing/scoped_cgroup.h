// A cgroup v2 directory a test makes (and removes) under the machine's cgroup v2 mount, for
// attaching cgroup BPF programs only to a cgroup the test owns.
#ifndef CNINET_TESTS_TESTING_SCOPED_CGROUP_H_
#define CNINET_TESTS_TESTING_SCOPED_CGROUP_H_

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace cninet::testing {

// Where cgroup v2 is mounted on the test machines.
inline constexpr char kCgroupRoot[] = "/sys/fs/cgroup/unified";

// A cgroup v2 directory under `parent` (kCgroupRoot or another test cgroup: programs attached to a
// cgroup apply to its descendants) with a unique name starting with `prefix`. On destruction
// every process still in it is killed (cgroup.kill: only the test's own children can be there)
// and the directory removed; a child cgroup must go before its parent.
class ScopedCgroup {
 public:
  explicit ScopedCgroup(std::string_view prefix, std::string_view parent = kCgroupRoot);
  ~ScopedCgroup();
  ScopedCgroup(const ScopedCgroup&) = delete;
  ScopedCgroup& operator=(const ScopedCgroup&) = delete;
  // The directory ("" when it could not be made).
  const std::string& path() const { return path_; }
  // Why it could not be made.
  const absl::Status& status() const { return status_; }

 private:
  std::string path_;
  absl::Status status_;
};

// Runs `fn` in a forked child that first joins the cgroup `cgroup` (when not empty), then enters
// the network namespace at `netns_path` with setns (a hostNetwork-style process of that node);
// returns what `fn` returned, or "child failed: ..." (the child is killed after `timeout`).
std::string InChild(const std::string& cgroup, const std::string& netns_path,
                    const std::function<std::string()>& fn,
                    std::chrono::milliseconds timeout = std::chrono::seconds(15));

}  // namespace cninet::testing

#endif  // CNINET_TESTS_TESTING_SCOPED_CGROUP_H_
