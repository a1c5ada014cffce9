// cninet-guide-lb: the program built step by step in docs/embedding-the-datapath.md. It embeds the
// eBPF datapath in a host process: attaches it to a node's uplink and load-balances an external
// service address over backends with Maglev, until it is stopped.
//
//   cninet-guide-lb [--once] UPLINK NODE_IP CLUSTER_CIDR VIP:PORT BACKEND_IP:PORT...
//
// Every block between "// [doc:NAME]" and "// [/doc]" is quoted in the guide; the docs.guides
// test checks that the guide and this file agree, and guide_datapath_test runs the program in a
// network namespace.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"

// [doc:includes]
#include "cninet/cni/cni.h"
#include "cninet/datapath/datapath.h"

namespace cni = cninet::cni;
namespace dp = cninet::datapath;
// [/doc]

namespace {

// [doc:config]
// One datapath instance per node. Private maps (pin_maps = false) live as long as the process;
// an agent pins them instead (under <bpffs_root>/cninet/<instance>) so that a restart keeps the
// established flows.
absl::StatusOr<dp::DatapathConfig> MakeConfig(std::string_view node_ip,
                                              std::string_view cluster_cidr) {
  dp::DatapathConfig config;
  config.instance = "guide";
  config.pin_maps = false;
  CNINET_ASSIGN_OR_RETURN(cni::IPAddress node, cni::IPAddress::Parse(node_ip));
  CNINET_ASSIGN_OR_RETURN(config.cluster_cidr, cni::IPPrefix::Parse(cluster_cidr));
  config.node_addresses = {node};      // NodePort frontends; the SNAT source address.
  config.map_sizes.conntrack = 65536;  // Every size has a documented default.
  CNINET_RETURN_IF_ERROR(config.Validate());
  return config;
}
// [/doc]

// [doc:service]
// "10.0.0.1:80" -> address and port.
absl::StatusOr<dp::Backend> ParseEndpoint(std::string_view text) {
  size_t colon = text.rfind(':');
  uint32_t port = 0;
  if (colon == std::string_view::npos ||
      !absl::SimpleAtoi(cninet::ToAbsl(text.substr(colon + 1)), &port) || port == 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(cninet::StrCat("not ADDRESS:PORT: ", text));
  }
  CNINET_ASSIGN_OR_RETURN(cni::IPAddress address, cni::IPAddress::Parse(text.substr(0, colon)));
  return dp::Backend{.address = address, .port = static_cast<uint16_t>(port)};
}

// A TCP service reached from outside the node on `vip`, spread over `backends` with Maglev.
// Upsert() replaces the service atomically: flows in progress keep their backend (conntrack),
// new flows use the new backend set.
absl::Status ProgramService(dp::Datapath& datapath, const dp::Backend& vip,
                            const std::vector<dp::Backend>& backends) {
  dp::Service service;
  service.id = 1;  // Chosen by the caller, stable across restarts.
  service.frontends.push_back({.address = vip.address,
                               .port = vip.port,
                               .protocol = dp::Protocol::kTcp,
                               .kind = dp::FrontendKind::kExternalIP});
  service.backends = backends;
  return datapath.services().Upsert(service);
}
// [/doc]

// [doc:observe]
// What the datapath did: every counter that moved (verdicts, drops with their reason), and the
// conntrack table's size.
absl::Status PrintState(dp::Datapath& datapath) {
  CNINET_ASSIGN_OR_RETURN(std::vector<dp::CounterValue> counters, datapath.counters().Read());
  for (const dp::CounterValue& c : counters) {
    if (c.packets != 0) {
      std::printf("%-28s %10llu packets%s\n", std::string(c.name).c_str(),
                  static_cast<unsigned long long>(c.packets), c.is_drop ? " (drop)" : "");
    }
  }
  CNINET_ASSIGN_OR_RETURN(dp::ConntrackStats ct, datapath.conntrack().Stats());
  std::printf("conntrack: %zu entries (%zu tcp, %zu udp)\n", ct.entries, ct.tcp, ct.udp);
  return absl::OkStatus();
}
// [/doc]

volatile std::sig_atomic_t stop = 0;

// [doc:run]
absl::Status Run(const std::vector<std::string>& argv, bool once) {
  CNINET_ASSIGN_OR_RETURN(dp::DatapathConfig config, MakeConfig(argv[1], argv[2]));
  CNINET_ASSIGN_OR_RETURN(dp::Backend vip, ParseEndpoint(argv[3]));
  std::vector<dp::Backend> backends;
  for (size_t i = 4; i < argv.size(); ++i) {
    CNINET_ASSIGN_OR_RETURN(backends.emplace_back(), ParseEndpoint(argv[i]));
  }

  // Loads the programs (verified by the kernel here) and creates the maps.
  CNINET_ASSIGN_OR_RETURN(std::unique_ptr<dp::Datapath> datapath, dp::Datapath::Create(config));
  // Both directions of the uplink, in this thread's network namespace. The attachments are
  // RAII: when they go out of scope, on every path, the tc filters are removed again.
  CNINET_ASSIGN_OR_RETURN(dp::TcAttachment in, datapath->Attach(dp::Hook::kFromWorld, argv[0]));
  CNINET_ASSIGN_OR_RETURN(dp::TcAttachment out, datapath->Attach(dp::Hook::kToWorld, argv[0]));
  CNINET_RETURN_IF_ERROR(ProgramService(*datapath, vip, backends));
  std::printf("%s: %s -> %zu backends\n", argv[0].c_str(), argv[3].c_str(), backends.size());

  while (!once && !stop) {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    CNINET_RETURN_IF_ERROR(PrintState(*datapath));
  }
  return PrintState(*datapath);
}
// [/doc]

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  bool once = !args.empty() && args[0] == "--once";
  if (once) args.erase(args.begin());
  if (args.size() < 5) {
    std::fprintf(stderr,
                 "usage: cninet-guide-lb [--once] UPLINK NODE_IP CLUSTER_CIDR VIP:PORT "
                 "BACKEND_IP:PORT...\n");
    return 2;
  }
  std::signal(SIGINT, [](int) { stop = 1; });
  std::signal(SIGTERM, [](int) { stop = 1; });
  absl::Status st = Run(args, once);
  if (!st.ok()) {
    std::fprintf(stderr, "cninet-guide-lb: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
