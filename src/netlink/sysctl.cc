#include "cninet/netlink/sysctl.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::netlink {

absl::StatusOr<std::string> SysctlPath(std::string_view key) {
  if (key.empty() || key.find("..") != std::string_view::npos || key.front() == '/' ||
      key.front() == '.' || key.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(cninet::StrCat("invalid sysctl key \"", key, "\""));
  }
  std::string rel(key);
  if (rel.find('/') == std::string::npos) std::replace(rel.begin(), rel.end(), '.', '/');
  return cninet::StrCat("/proc/sys/", rel);
}

absl::StatusOr<std::string> GetSysctl(std::string_view key) {
  CNINET_ASSIGN_OR_RETURN(std::string path, SysctlPath(key));
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, cninet::StrCat("read sysctl ", key));
  std::string out;
  char buf[512];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return ErrnoStatus(err, cninet::StrCat("read sysctl ", key));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

absl::Status SetSysctl(std::string_view key, std::string_view value) {
  CNINET_ASSIGN_OR_RETURN(std::string path, SysctlPath(key));
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, cninet::StrCat("write sysctl ", key));
  ssize_t n;
  do {
    n = write(fd, value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) return ErrnoStatus(err, cninet::StrCat("write sysctl ", key, "=", value));
  if (static_cast<size_t>(n) != value.size()) {
    return absl::DataLossError(cninet::StrCat("short write to sysctl ", key));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetSysctl(const Netns& ns, std::string_view key) {
  return ns.Call<std::string>([&] { return GetSysctl(key); });
}

absl::Status SetSysctl(const Netns& ns, std::string_view key, std::string_view value) {
  return ns.Run([&] { return SetSysctl(key, value); });
}

absl::Status SetIpForward(const Netns& ns, bool ipv6, bool on) {
  return SetSysctl(ns, ipv6 ? "net/ipv6/conf/all/forwarding" : "net/ipv4/ip_forward",
                   on ? "1" : "0");
}

absl::Status SetRpFilter(const Netns& ns, std::string_view ifname, int mode) {
  return SetSysctl(ns, cninet::StrCat("net/ipv4/conf/", ifname, "/rp_filter"),
                   cninet::StrCat(mode));
}

absl::Status SetProxyArp(const Netns& ns, std::string_view ifname, bool on) {
  return SetSysctl(ns, cninet::StrCat("net/ipv4/conf/", ifname, "/proxy_arp"), on ? "1" : "0");
}

absl::Status SetArpNotify(const Netns& ns, std::string_view ifname, bool on) {
  return SetSysctl(ns, cninet::StrCat("net/ipv4/conf/", ifname, "/arp_notify"), on ? "1" : "0");
}

absl::Status SetAcceptDad(const Netns& ns, std::string_view ifname, int value) {
  return SetSysctl(ns, cninet::StrCat("net/ipv6/conf/", ifname, "/accept_dad"),
                   cninet::StrCat(value));
}

}  // namespace cninet::netlink
