// Real container runtimes for the cninet-ebpf suites, confined to a test's temporary directory and
// to the test's "node" network namespace:
//   * Podman 4.3 with the CNI backend: --root/--runroot/--tmpdir and a CONTAINERS_CONF file under
//     the temporary directory, the vfs storage driver, run as `nsenter --net=/run/netns/NODE
//     podman ...` (`ip netns exec` remounts /sys and breaks runc);
//   * containerd 1.6 started by the test (own config, root, state and socket) inside the node
//     namespace, driven with `ctr run --cni` through ctr-in-node.sh, which gives ctr a private
//     mount namespace where /etc/cni/net.d, /opt/cni/bin and /var/lib/cni are the test's own
//     (ctr 1.6 reads only those fixed paths); FIFOs and runc state are kept under the temp dir too
//     (shim sockets still go to /run/containerd/s, containerd 1.6 hardcodes it; they are removed
//     when the shims exit).
// Destructors remove every container, stop every process started (by pid) and unmount what is
// left under the temporary directory, also after failures.
#ifndef CNINET_TESTS_E2E_CHAIN_RUNTIMES_H_
#define CNINET_TESTS_E2E_CHAIN_RUNTIMES_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "testing/test_util.h"

namespace cninet::chain_testing {

// Writes a busybox root filesystem (Debian's /bin/busybox, statically linked, plus one symlink
// per applet) to `dir`.
absl::Status MakeBusyboxRootfs(const std::string& dir);

// Kills (SIGKILL) every process whose command line mentions `marker` (a unique temporary path),
// except this one. Returns how many were killed.
int KillProcessesMentioning(const std::string& marker);

// Lazily unmounts every mount point at or below `dir`, deepest first. Returns how many.
int UnmountBelow(const std::string& dir);

// One Podman instance.
class Podman {
 public:
  // `node_netns`: name of the node namespace; `network_dir`: where the conflists are.
  Podman(std::string node_netns, std::string network_dir);
  ~Podman();
  Podman(const Podman&) = delete;
  Podman& operator=(const Podman&) = delete;

  // Runs `podman <args>` in the node namespace.
  cninet::testing::CommandResult Run(const std::vector<std::string>& args,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // `podman import` of a busybox tarball as localhost/cninet-busybox:latest.
  absl::Status ImportBusybox();
  // The image name ImportBusybox created.
  static std::string Image() { return "localhost/cninet-busybox:latest"; }
  // The container's address on its (only) network.
  std::string Ipv4(const std::string& container);

 private:
  std::string node_netns_;
  std::string network_dir_;
  cninet::testing::TempDir dir_;
};

// A containerd daemon and ctr.
class Containerd {
 public:
  // `cni_conf_dir`: conflists ctr should see as /etc/cni/net.d.
  Containerd(std::string node_netns, std::string cni_conf_dir);
  ~Containerd();
  Containerd(const Containerd&) = delete;
  Containerd& operator=(const Containerd&) = delete;

  // Starts the daemon in the node namespace and waits until it answers.
  absl::Status Start();
  // Runs `ctr <args>` in the node namespace with the test's CNI directories.
  cninet::testing::CommandResult Ctr(const std::vector<std::string>& args,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // Kills and deletes a task and its container (ignoring "not found").
  void Remove(const std::string& id);
  // Where ctr's libcni caches results (seen by ctr as /var/lib/cni).
  std::string cache_dir() const { return dir_.Sub("cni-cache"); }
  // A busybox root filesystem for `ctr run --rootfs`.
  std::string rootfs() const { return dir_.Sub("rootfs"); }
  // The daemon's log (for failure messages).
  std::string Log() const;

 private:
  std::string node_netns_;
  std::string cni_conf_dir_;
  cninet::testing::TempDir dir_;
  pid_t pid_ = -1;
  std::vector<std::string> ids_;
};

}  // namespace cninet::chain_testing

#endif  // CNINET_TESTS_E2E_CHAIN_RUNTIMES_H_
