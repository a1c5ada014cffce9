/// @file
/// Network namespaces: RAII handles, named namespaces (`/run/netns/<name>`, as iproute2 keeps them)
/// and running code inside a namespace.
///
/// Threading rule: setns(2) changes the namespace of the calling *thread* only, and everything
/// that thread then opens (sockets, /proc/sys/net files) or forks belongs to that namespace.
/// cninet never leaves a thread in a namespace it did not start in:
///   * Netns::Run enters the namespace on the calling thread and restores the thread's original
///     namespace on every exit path (an RAII guard). If the restore itself fails, the thread
///     would keep running in the wrong namespace, so the process is aborted with a message.
///     Cheapest: two setns calls, no thread (what plugins use on their hot path).
///   * Netns::RunInThread executes the callable on a dedicated short-lived thread that enters
///     the namespace and exits; the calling thread is never touched. For long-lived processes
///     that run callbacks they do not control.
/// Netlink sockets and sysctl files keep the namespace they were opened in, so a Handle opened
/// through either can afterwards be used from any thread.
#ifndef CNINET_NETLINK_NETNS_H_
#define CNINET_NETLINK_NETNS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet::netlink {

/// An open network namespace (an nsfs file descriptor, closed on destruction). Move-only.
class Netns {
 public:
  /// Opens the namespace at `path` (e.g. /run/netns/x or `/proc/<pid>/ns/net`). NotFound when the
  /// path is missing, InvalidArgument when it exists but is not a network namespace.
  static absl::StatusOr<Netns> Open(std::string_view path);
  /// Opens the named namespace `/run/netns/<name>`.
  static absl::StatusOr<Netns> OpenByName(std::string_view name);
  /// The calling thread's current network namespace.
  static absl::StatusOr<Netns> Current();
  /// Creates the named namespace `/run/netns/<name>` (the same layout and mount propagation as
  /// `ip netns add`) and returns it open. AlreadyExists when the name is taken.
  static absl::StatusOr<Netns> Create(std::string_view name);
  /// Removes the name `/run/netns/<name>` (unmount + unlink). The namespace itself lives on while
  /// a process or open handle still uses it. NotFound when there is no such name.
  static absl::Status Delete(std::string_view name);
  /// `"/run/netns/<name>"`.
  static std::string PathForName(std::string_view name);
  /// OK when `path` is a network namespace file; NotFound / InvalidArgument otherwise.
  static absl::Status CheckPath(std::string_view path);

  /// Takes over `other`'s descriptor; `other` becomes empty.
  Netns(Netns&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}
  /// Takes over `other`'s descriptor, closing the one held before.
  Netns& operator=(Netns&& other) noexcept;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns();

  /// Runs `fn` inside this namespace on the calling thread and restores the thread's namespace
  /// afterwards, on every path (see the threading rule above). Returns fn's status.
  absl::Status Run(absl::FunctionRef<absl::Status()> fn) const;
  /// Runs `fn` inside this namespace on a new thread; the calling thread is never switched.
  absl::Status RunInThread(absl::FunctionRef<absl::Status()> fn) const;
  /// Run for callables returning a value.
  template <typename T>
  absl::StatusOr<T> Call(absl::FunctionRef<absl::StatusOr<T>()> fn) const {
    std::optional<absl::StatusOr<T>> out;
    absl::Status st = Run([&]() -> absl::Status {
      out.emplace(fn());
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return std::move(*out);
  }

  /// True when both handles refer to the same namespace (same nsfs inode).
  bool SameAs(const Netns& other) const;
  /// The nsfs inode number identifying the namespace.
  ino_t inode() const;
  /// The path it was opened from ("" for Current()).
  const std::string& path() const { return path_; }
  /// The file descriptor, borrowed: valid while this object lives. For setns/IFLA_NET_NS_FD.
  int fd() const { return fd_; }

 private:
  Netns(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

/// Owns a named namespace: deletes `/run/netns/<name>` on destruction unless Release()d.
/// Meant for tools and tests that build topologies.
class NamedNetns {
 public:
  /// Creates `/run/netns/<name>` (see Netns::Create); with `loopback_up`, brings "lo" up inside.
  static absl::StatusOr<NamedNetns> Create(std::string_view name, bool loopback_up = true);

  /// Takes over ownership of the name; `other` no longer deletes it.
  NamedNetns(NamedNetns&& other) noexcept
      : name_(std::move(other.name_)), ns_(std::move(other.ns_)) {
    other.name_.clear();
  }
  /// Deletes the name held before, then takes over `other`'s.
  NamedNetns& operator=(NamedNetns&& other) noexcept;
  NamedNetns(const NamedNetns&) = delete;
  NamedNetns& operator=(const NamedNetns&) = delete;
  ~NamedNetns();

  /// The namespace's name under /run/netns (empty after Release()).
  const std::string& name() const { return name_; }
  /// `"/run/netns/<name>"`.
  std::string path() const { return Netns::PathForName(name_); }
  /// The open namespace.
  const Netns& ns() const { return ns_; }
  /// Keeps the namespace after destruction; returns its name.
  std::string Release() { return std::exchange(name_, std::string()); }
  /// Deletes the name now (idempotent).
  absl::Status Remove();

 private:
  NamedNetns(std::string name, Netns ns) : name_(std::move(name)), ns_(std::move(ns)) {}
  std::string name_;
  Netns ns_;
};

}  // namespace cninet::netlink

#endif  // CNINET_NETLINK_NETNS_H_
