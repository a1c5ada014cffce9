#include "cninet/agent/cni_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "cninet/cni/status.h"
#include "cninet/cni/strings.h"
#include "nlohmann/json.hpp"

namespace cninet::agent {

std::string BuildConflist(const ConflistParams& p) {
  using nlohmann::json;
  json bridge = {
      {"type", "cninet-bridge"},
      {"bridge", p.bridge},
      {"isGateway", true},
      {"isDefaultGateway", true},
      {"ipam",
       {{"type", "cninet-host-local"},
        {"ranges", json::array({json::array({{{"subnet", p.pod_cidr.Masked().ToString()}}})})},
        {"dataDir", p.ipam_data_dir}}},
  };
  if (p.mtu != 0) bridge["mtu"] = p.mtu;
  json addresses = json::array();
  for (const auto& a : p.node_addresses) addresses.push_back(a.ToString());
  const datapath::MapSizes& m = p.map_sizes;
  json ebpf = {
      {"type", "cninet-ebpf"},
      {"clusterCIDR", p.cluster_cidr.Masked().ToString()},
      {"masquerade", p.masquerade},
      {"uplink", p.uplink},
      {"nodeAddresses", addresses},
      {"bpffsRoot", p.bpffs_root},
      {"instance", p.instance},
      {"stateDir", p.ebpf_state_dir},
      {"teardownWhenIdle", false},  // The agent owns the datapath instance.
      {"hostPortIds", p.host_port_ids},
      {"mapSizes",
       {{"conntrack", m.conntrack},
        {"nat", m.nat},
        {"services", m.services},
        {"serviceSlots", m.service_slots},
        {"backends", m.backends},
        {"affinity", m.affinity},
        {"endpoints", m.endpoints}}},
      {"capabilities", {{"portMappings", true}}},
  };
  if (p.service_mark != 0) ebpf["serviceMark"] = p.service_mark;
  json plugins = json::array({bridge, ebpf});
  if (!p.agent_socket.empty()) {
    plugins.push_back({{"type", "cninet-agent-cni"}, {"socket", p.agent_socket}});
  }
  json list = {{"cniVersion", p.cni_version}, {"name", p.network_name}, {"plugins", plugins}};
  return list.dump(2) + "\n";
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode) {
  std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("create ", dir.string(), ": ", ec.message()));
  std::string tmp = StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return ErrnoStatus(errno, StrCat("create ", tmp));
  size_t off = 0;
  while (off < content.size()) {
    ssize_t w = write(fd, content.data() + off, content.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoStatus(err, StrCat("write ", tmp));
    }
    off += static_cast<size_t>(w);
  }
  if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return ErrnoStatus(err, StrCat("sync ", tmp));
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, StrCat("rename to ", path));
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return absl::OkStatus();
}

}  // namespace cninet::agent
