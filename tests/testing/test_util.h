// Shared helpers for cninet's tests: running commands and plugins, unique names, temporary
// directories and network namespaces that are removed on every exit path.
#ifndef CNINET_TESTS_TESTING_TEST_UTIL_H_
#define CNINET_TESTS_TESTING_TEST_UTIL_H_

#include <sys/socket.h>

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace cninet::testing {

// Outcome of a child process.
struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or not started.
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
};

// Runs argv[0] (searched in PATH) with `argv`, feeding `stdin_data`; `env` (K=V) replaces the
// environment when non-empty. Killed after `timeout`.
CommandResult Run(const std::vector<std::string>& argv, std::string_view stdin_data = {},
                  const std::vector<std::string>& env = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds(60));
// Runs `script` with /bin/sh -c.
CommandResult Sh(const std::string& script,
                 std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A name unique to this process and call, at most 15 characters (fits an interface name):
// prefix (truncated to 6 chars) + pid + counter, in hex.
std::string UniqueName(std::string_view prefix);

// A TCP port free on 127.0.0.1 right now (bound to port 0, read back, closed).
absl::StatusOr<int> FreeLoopbackPort();
// GET http://127.0.0.1:port/path (HTTP/1.0, in the calling thread's network namespace): the
// status code and body; Unavailable when nothing answers within `timeout`.
struct HttpResponse {
  int code = 0;
  std::string body;
};
absl::StatusOr<HttpResponse> HttpGet(int port, const std::string& path,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(2));

// True when running as root; tests that need root call CNINET_REQUIRE_ROOT() first, which FAILS
// (never skips) with the reason.
bool IsRoot();
#define CNINET_REQUIRE_ROOT()                                                       \
  do {                                                                              \
    if (!::cninet::testing::IsRoot()) {                                             \
      GTEST_FAIL() << "this test needs root (network namespaces, links, BPF); run " \
                      "it as root";                                                 \
    }                                                                               \
  } while (false)

// A temporary directory removed (recursively) in the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Sub(std::string_view name) const;

 private:
  std::string path_;
};

// Host paths that a peer plugin or runtime creates at a fixed place (the reference tuning plugin's
// /run/cni/tuning, podman's libcni cache /var/lib/cni/results and its blob-info cache): those of
// `paths` that did not exist when the first holder (in any test process) took them are removed
// when the last holder lets go — a file is unlinked, a directory removed only if empty by then
// (rmdir: never anybody else's data) — so tests running in parallel never pull a path from under
// each other, and the host is left as it was found.
class ScopedHostPaths {
 public:
  explicit ScopedHostPaths(std::vector<std::string> paths);
  ~ScopedHostPaths();
  ScopedHostPaths(const ScopedHostPaths&) = delete;
  ScopedHostPaths& operator=(const ScopedHostPaths&) = delete;

 private:
  std::vector<std::string> paths_;  // deepest first
};

// Writes `content` to `path` (creating parent directories).
void WriteFile(const std::string& path, std::string_view content);
// Reads a whole file ("" when missing).
std::string ReadFile(const std::string& path);

// A named network namespace (/run/netns/<name>) created with `ip netns add` and deleted in the
// destructor, after killing processes still running inside it.
class ScopedNetns {
 public:
  // Creates a namespace with a unique name derived from `prefix`; loopback is brought up.
  explicit ScopedNetns(std::string_view prefix = "cnt");
  ~ScopedNetns();
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

  const std::string& name() const { return name_; }
  // "/run/netns/<name>".
  std::string path() const { return "/run/netns/" + name_; }
  // Runs a shell command inside the namespace (ip netns exec NAME sh -c ...).
  CommandResult Exec(const std::string& script,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  // Argv form of Exec.
  CommandResult ExecArgv(const std::vector<std::string>& argv, std::string_view stdin_data = {},
                         const std::vector<std::string>& env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  // Deletes the namespace now (idempotent).
  void Remove();

 private:
  std::string name_;
  bool removed_ = false;
};

// Wires `pod` to `node` with a veth (`host_if` in `node`, eth0 in `pod`), dual-stack: the pod
// gets ip4/32 and ip6/128 (no DAD) with default routes via the host side's gw4/gw6, and the node
// routes ip4/ip6 to host_if. The result of the two commands (the first failure, if any).
CommandResult WireDualStackPod(ScopedNetns& node, ScopedNetns& pod, const std::string& host_if,
                               const std::string& ip4, const std::string& ip6,
                               const std::string& gw4 = "10.244.1.1",
                               const std::string& gw6 = "fd00:244::1");

// Environment for executing a CNI plugin by hand.
struct PluginCall {
  std::string command;       // CNI_COMMAND.
  std::string container_id;  // CNI_CONTAINERID.
  std::string netns;         // CNI_NETNS.
  std::string ifname = "eth0";
  std::string args;                                      // CNI_ARGS.
  std::string path = CNINET_PLUGIN_DIR ":/usr/lib/cni";  // CNI_PATH.
  std::vector<std::string> extra_env;
  // The environment vector (unset fields are omitted).
  std::vector<std::string> Env() const;
};

// Executes `plugin` (a path) with `call` and `config` on stdin. With `in_netns` non-empty the
// plugin runs inside that named namespace ("node"), as tests must never run plugins in the
// root namespace when they change networking.
CommandResult RunCniPlugin(const std::string& plugin, const PluginCall& call,
                           std::string_view config, const std::string& in_netns = {});

// The socket address of ip:port (IPv6 when `ip` has a colon) and its length.
std::pair<sockaddr_storage, socklen_t> SockAddr(const std::string& ip, uint16_t port);

}  // namespace cninet::testing

#endif  // CNINET_TESTS_TESTING_TEST_UTIL_H_
