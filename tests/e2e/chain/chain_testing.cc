#include "chain_testing.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "absl/strings/str_join.h"
#include "cninet/datapath/pins.h"
#include "dp_test_util.h"

namespace cninet::chain_testing {
namespace {

namespace fs = std::filesystem;
using cninet::datapath::testing::RunInNetns;
using cninet::testing::CommandResult;
using cninet::testing::Run;

std::string Instance(const std::string& name) {
  std::string s = name;
  std::replace(s.begin(), s.end(), '.', '-');
  return s;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (dir.empty() || !fs::exists(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

sockaddr_in Addr(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

}  // namespace

NodeTopology::NodeTopology() {
  CommandResult r = node_.Exec(std::string("ip link add up0 type veth peer name eth0 netns ") +
                               ext_.name() + " && ip addr add " + kNodeIp +
                               "/24 dev up0 && ip link set up0 up && ip route add default via " +
                               kExtIp + " && sysctl -qw net.ipv4.ip_forward=1");
  EXPECT_TRUE(r.ok()) << "node setup: " << r.err;
  CommandResult e =
      ext_.Exec(std::string("ip addr add ") + kExtIp + "/24 dev eth0 && ip link set eth0 up");
  EXPECT_TRUE(e.ok()) << "outside setup: " << e.err;
  ok_ = r.ok() && e.ok();
}

nlohmann::json ChainSpec::ToJson() const {
  nlohmann::json ipam_conf = {
      {"type", ipam}, {"ranges", {{{{"subnet", subnet}}}}}, {"dataDir", ipam_dir}};
  nlohmann::json iface_conf = {{"type", iface}, {"ipam", ipam_conf}};
  if (iface == "bridge" || iface == "cninet-bridge") {
    iface_conf["bridge"] = bridge;
    iface_conf["isGateway"] = true;
    iface_conf["isDefaultGateway"] = true;
  } else {
    iface_conf["ipam"]["routes"] = {{{"dst", "0.0.0.0/0"}}};
  }
  nlohmann::json plugins = nlohmann::json::array({iface_conf});
  if (!ebpf_type.empty()) {
    nlohmann::json e = {{"type", ebpf_type},
                        {"clusterCIDR", kClusterCidr},
                        {"bpffsRoot", bpffs},
                        {"stateDir", state_dir},
                        {"mapSizes",
                         {{"conntrack", 16384},
                          {"nat", 16384},
                          {"services", 1024},
                          {"serviceSlots", 4096},
                          {"backends", 4096},
                          {"affinity", 1024},
                          {"endpoints", 1024}}},
                        {"capabilities", {{"portMappings", true}}}};
    e.update(ebpf_extra);
    plugins.push_back(e);
  }
  return {{"cniVersion", version}, {"name", name}, {"plugins", plugins}};
}

std::string ChainSpec::PinDir() const { return bpffs + "/cninet/" + Instance(name); }
std::string ChainSpec::ProgramPinDir() const {
  return datapath::PinLayout::For(bpffs, Instance(name)).ProgramDir();
}
std::string ChainSpec::InstanceStateDir() const { return state_dir + "/" + Instance(name); }

std::string Inventory::Describe() const {
  std::vector<std::string> lines;
  if (!pod_veths.empty()) lines.push_back("pod veths: " + absl::StrJoin(pod_veths, " "));
  if (uplink_clsact) lines.push_back("clsact qdisc still on up0");
  if (!leases.empty()) lines.push_back("leases: " + absl::StrJoin(leases, " "));
  if (!records.empty()) lines.push_back("cninet-ebpf records: " + absl::StrJoin(records, " "));
  if (maps_pinned) lines.push_back("maps still pinned");
  if (program_pinned) lines.push_back("from-pod program still pinned");
  if (!cache.empty()) lines.push_back("libcni cache entries: " + absl::StrJoin(cache, " "));
  if (!rules.empty()) lines.push_back("firewall rules: " + rules);
  return absl::StrJoin(lines, "; ");
}

Inventory TakeInventory(cninet::testing::ScopedNetns& node, const ChainSpec& spec,
                        const std::string& cache_dir) {
  Inventory inv;
  CommandResult links = node.Exec("ip -o link show type veth");
  std::istringstream in(links.out);
  for (std::string line; std::getline(in, line);) {
    // "5: vethabc@if2: <...>"
    size_t a = line.find(": ");
    if (a == std::string::npos) continue;
    std::string name = line.substr(a + 2);
    name = name.substr(0, name.find_first_of("@:"));
    if (name != "up0") inv.pod_veths.push_back(name);
  }
  inv.uplink_clsact = node.Exec("tc qdisc show dev up0").out.find("clsact") != std::string::npos;
  // The node namespace starts without any firewall table; cninet's plugins never add one.
  inv.rules = node.Exec("nft list ruleset 2>/dev/null; iptables-save 2>/dev/null").out;
  for (const auto& f : Entries(spec.ipam_dir + "/" + spec.name)) {
    if (f.find_first_of(".:") != std::string::npos && f.rfind("last_reserved_ip", 0) != 0)
      inv.leases.push_back(f);
  }
  for (const auto& f : Entries(spec.InstanceStateDir())) {
    if (f.size() > 5 && f.ends_with(".json")) inv.records.push_back(f);
  }
  std::error_code ec;
  inv.maps_pinned = fs::exists(spec.PinDir(), ec);
  inv.program_pinned = fs::exists(spec.ProgramPinDir(), ec);
  if (!cache_dir.empty()) {
    for (const auto& f : Entries(cache_dir + "/results")) {
      if (f.rfind(spec.name + "-", 0) == 0) inv.cache.push_back(f);
    }
  }
  return inv;
}

absl::StatusOr<std::string> TcpRequest(const std::string& netns_path, const std::string& ip,
                                       uint16_t port) {
  int fd = -1;
  absl::Status st = RunInNetns(netns_path, [&]() -> absl::Status {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in a = Addr(ip, port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      return absl::UnavailableError("connect " + ip + ":" + std::to_string(port) + ": " +
                                    strerror(errno));
    }
    return absl::OkStatus();
  });
  std::string got;
  if (st.ok()) {
    shutdown(fd, SHUT_WR);  // A busybox `nc -l` server answers, then waits for our EOF.
    char buf[256];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) got.append(buf, static_cast<size_t>(n));
  }
  if (fd >= 0) close(fd);
  if (!st.ok()) return st;
  if (got.empty())
    return absl::UnavailableError("no reply from " + ip + ":" + std::to_string(port));
  return got;
}

absl::Status SendUdp(const std::string& netns_path, const std::string& ip, uint16_t port) {
  return RunInNetns(netns_path, [&]() -> absl::Status {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Addr(ip, port);
    ssize_t n = sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    int e = errno;
    close(fd);
    if (n != 1) return absl::InternalError(std::string("sendto: ") + strerror(e));
    return absl::OkStatus();
  });
}

std::string Ipv4Of(const std::string& netns_path, const std::string& ifname) {
  CommandResult r =
      Run({"nsenter", "--net=" + netns_path, "ip", "-4", "-o", "addr", "show", "dev", ifname});
  // "2: eth0    inet 10.244.1.2/24 brd ..."
  size_t p = r.out.find("inet ");
  if (p == std::string::npos) return "";
  std::string rest = r.out.substr(p + 5);
  return rest.substr(0, rest.find('/'));
}

}  // namespace cninet::chain_testing
