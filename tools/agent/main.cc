// cninet-agent: the reference node agent (cninet::agent::Agent) and its local commands.
//
//   cninet-agent run --node NAME [options]        run the agent until SIGINT/SIGTERM
//   cninet-agent status [--socket P] [--services N] [--json]
//   cninet-agent health [--socket P] [--wait SECONDS]
//   cninet-agent teardown --node NAME [options]   remove what an agent set up in the node
//
// `cninet-agent --help` and `cninet-agent COMMAND --help` list the options; usage errors name the
// flag and exit with 2.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "cninet/agent/agent.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/state.h"
#include "cninet/base/log.h"
#include "cninet/base/strings.h"
#include "cninet/base/version_info.h"
#include "etcd_flags.h"
#include "metrics.h"
#include "status_print.h"

namespace {

using cninet::StrCat;
namespace agent = ::cninet::agent;

constexpr char kDefaultSocket[] = "/run/cninet/agent.sock";
constexpr int kUsageError = 2;

// Log lines with a timestamp and the node name, to stderr.
class NodeLogSink : public cninet::LogSink {
 public:
  explicit NodeLogSink(std::string node) : node_(std::move(node)) {}
  void Send(cninet::LogLevel level, std::string_view file, int line,
            std::string_view message) override {
    static const char kLevels[] = "DIWE";
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char ts[32];
    std::strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
    size_t slash = file.rfind('/');
    std::string_view base = slash == std::string_view::npos ? file : file.substr(slash + 1);
    std::lock_guard<std::mutex> l(mu_);
    std::fprintf(stderr, "%c %s.%03d %s %.*s:%d] %.*s\n", kLevels[static_cast<int>(level)], ts, ms,
                 node_.c_str(), static_cast<int>(base.size()), base.data(), line,
                 static_cast<int>(message.size()), message.data());
  }

 private:
  std::string node_;
  std::mutex mu_;
};

// The flags of run and teardown, as given.
struct NodeFlags {
  std::string node, netns, uplink, etcd, store_dir, state_dir, socket, cni_conf_dir, bpffs_root;
  std::string instance, vxlan_device, public_ip, cluster_cidr, service_cidr = "10.96.0.0/12";
  std::string socket_lb_cgroup;
  bool socket_lb_pods = false;
  std::string metrics_address;
  agent::EtcdTlsOptions etcd_tls;
  std::string log_level = "info";
  bool direct_routing = false, no_masquerade = false;
  uint32_t node_mask = 0, maglev_size = 0;
  int heartbeat_ttl = 0, resync_interval = 0;
};

// The flags both run and teardown take (where the node's pieces are).
void AddNodeFlags(CLI::App* cmd, NodeFlags* f, const agent::AgentOptions& d) {
  cmd->add_option("--node", f->node, "node name")->required();
  cmd->add_option("--netns", f->netns,
                  "the node's network namespace; links, routes, tc and sysctls go there [own]");
  cmd->add_option("--uplink", f->uplink, "node uplink [interface of the IPv4 default route]");
  cmd->add_option("--bpffs-root", f->bpffs_root, "bpffs for the pinned maps")
      ->default_str(d.bpffs_root);
  cmd->add_option("--instance", f->instance, "datapath instance [node name]");
  cmd->add_option("--cni-conf-dir", f->cni_conf_dir,
                  "where the conflist is written (\"\" = not written)")
      ->default_str(d.cni_conf_dir);
  cmd->add_option("--vxlan-device", f->vxlan_device, "VXLAN device name")
      ->default_str(d.vxlan_device);
  cmd->add_option("--state-dir", f->state_dir, "IPAM leases, plugin records")
      ->default_str(d.state_dir);
  cmd->add_option("--socket", f->socket, "local API socket")->default_str(d.socket_path);
  cmd->add_option("--log-level", f->log_level, "log level")
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}))
      ->default_str("info");
}

// The flags only run takes.
void AddRunFlags(CLI::App* cmd, NodeFlags* f) {
  cmd->add_option("--etcd", f->etcd,
                  "etcd v3 endpoints https://HOST:PORT[,...] (http://... for plain text); "
                  "without it: the embedded store");
  cninet::agent_tool::AddEtcdTlsFlags(cmd, &f->etcd_tls);
  cmd->add_option("--store-dir", f->store_dir, "embedded store directory [STATE_DIR/store]");
  cmd->add_option("--cluster-cidr", f->cluster_cidr,
                  "written as the cluster config when the store has none; V4 or V4,V6 "
                  "(dual-stack: every node also gets an IPv6 podCIDR, /64)");
  cmd->add_option("--service-cidr", f->service_cidr, "(with --cluster-cidr) V4 or V4,V6")
      ->default_str("10.96.0.0/12");
  cmd->add_option("--node-mask", f->node_mask, "(with --cluster-cidr) podCIDR prefix length [24]");
  cmd->add_flag("--direct-routing", f->direct_routing,
                "set this node's directRouting (--direct-routing=false clears it; else the "
                "store's is kept)");
  cmd->add_option("--public-ip", f->public_ip, "set this node's publicIP (else the store's)");
  cmd->add_option("--maglev-size", f->maglev_size,
                  "Maglev table size of every service, a prime in 251..65521 [per service]");
  cmd->add_flag("--no-masquerade", f->no_masquerade,
                "do not SNAT pod egress leaving the cluster CIDR");
  auto* sock_cg =
      cmd->add_option("--socket-lb-cgroup", f->socket_lb_cgroup,
                      "socket-level load balancing for the node's processes and hostNetwork pods, "
                      "attached to this cgroup v2 directory (the host's: /sys/fs/cgroup) [off]");
  cmd->add_flag("--socket-lb-pods", f->socket_lb_pods,
                "pods use socket LB too (their processes must be in the socket LB cgroup)")
      ->needs(sock_cg);
  cmd->add_option("--metrics-address", f->metrics_address,
                  "serve Prometheus metrics (GET /metrics) on HOST:PORT, e.g. 127.0.0.1:9464 "
                  "[off]");
  cmd->add_option("--heartbeat-ttl", f->heartbeat_ttl, "heartbeat lease TTL in seconds [10]");
  cmd->add_option("--resync-interval", f->resync_interval,
                  "full reconcile pass at least this often, in seconds [30]");
}

// The agent's options from the flags given on `cmd`.
agent::AgentOptions ToOptions(const CLI::App& cmd, const NodeFlags& f) {
  agent::AgentOptions o;
  auto given = [&](const char* flag) {
    const CLI::Option* opt = cmd.get_option_no_throw(flag);  // run has more flags than teardown
    return opt != nullptr && opt->count() > 0;
  };
  o.node_name = f.node;
  o.netns = f.netns;
  o.uplink = f.uplink;
  if (given("--etcd")) {
    o.store = agent::StoreKind::kEtcd;
    for (auto part : absl::StrSplit(f.etcd, ',', absl::SkipEmpty())) {
      o.etcd_endpoints.emplace_back(part);
    }
    o.etcd_tls = f.etcd_tls;
  }
  o.store_dir = f.store_dir;
  if (given("--state-dir")) o.state_dir = f.state_dir;
  if (given("--socket")) o.socket_path = f.socket;
  if (given("--cni-conf-dir")) o.cni_conf_dir = f.cni_conf_dir;
  if (given("--bpffs-root")) o.bpffs_root = f.bpffs_root;
  o.instance = f.instance;
  if (given("--vxlan-device")) o.vxlan_device = f.vxlan_device;
  o.masquerade = !f.no_masquerade;
  if (given("--direct-routing")) o.direct_routing = f.direct_routing;
  if (given("--public-ip")) o.public_ip = f.public_ip;
  if (given("--cluster-cidr")) {
    // As Kubernetes' --cluster-cidr=v4,v6 and --service-cluster-ip-range=v4,v6.
    std::vector<std::string> cidrs = absl::StrSplit(f.cluster_cidr, ',', absl::SkipEmpty());
    std::vector<std::string> services = absl::StrSplit(f.service_cidr, ',', absl::SkipEmpty());
    o.bootstrap_cluster.set_cluster_cidr(cidrs.empty() ? "" : cidrs[0]);
    if (cidrs.size() > 1) o.bootstrap_cluster.set_cluster_cidr_ipv6(cidrs[1]);
    o.bootstrap_cluster.set_service_cidr(services.empty() ? "" : services[0]);
    if (services.size() > 1) o.bootstrap_cluster.set_service_cidr_ipv6(services[1]);
    o.bootstrap_cluster.set_node_cidr_mask_size(f.node_mask);
  }
  o.maglev_size = f.maglev_size;
  o.socket_lb_cgroup = f.socket_lb_cgroup;
  o.socket_lb_pods = f.socket_lb_pods;
  if (given("--heartbeat-ttl")) o.heartbeat_ttl = std::chrono::seconds(f.heartbeat_ttl);
  if (given("--resync-interval")) o.resync_interval = std::chrono::seconds(f.resync_interval);
  return o;
}

void SetLevel(const std::string& name) {
  static const std::map<std::string, cninet::LogLevel> kLevels = {
      {"debug", cninet::LogLevel::kDebug},
      {"info", cninet::LogLevel::kInfo},
      {"warning", cninet::LogLevel::kWarning},
      {"error", cninet::LogLevel::kError}};
  if (auto it = kLevels.find(name); it != kLevels.end()) cninet::SetLogLevel(it->second);
}

// Blocks SIGINT/SIGTERM (taken synchronously by sigwait) before any thread starts.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

int Run(const agent::AgentOptions& o, const std::string& log_level,
        const std::string& metrics_address) {
  NodeLogSink sink(o.node_name);
  cninet::SetLogSink(&sink);
  SetLevel(log_level);
  sigset_t set = BlockStopSignals();
  absl::StatusOr<std::unique_ptr<agent::Agent>> a = agent::Agent::Start(o);
  if (!a.ok()) {
    CNINET_LOG(kError, "start failed: ", a.status().message());
    cninet::SetLogSink(nullptr);
    return 1;
  }
  CNINET_LOG(kInfo, "agent started (podCIDR ", (*a)->pod_cidr().ToString(), ", socket ",
             o.socket_path, ")");
  std::unique_ptr<cninet::agent_tool::MetricsServer> metrics;
  if (!metrics_address.empty()) {
    auto m = cninet::agent_tool::StartMetricsServer(metrics_address, a->get());
    if (!m.ok()) {
      CNINET_LOG(kError, "start failed: ", m.status().message());
      a->reset();
      cninet::SetLogSink(nullptr);
      return 1;
    }
    metrics = std::move(*m);
    CNINET_LOG(kInfo, "metrics on http://", metrics_address, "/metrics (port ", metrics->port(),
               ")");
  }
  int sig = 0;
  sigwait(&set, &sig);
  CNINET_LOG(kInfo, "signal ", sig, ": stopping (programmed state is kept)");
  metrics.reset();
  (*a)->Stop();
  a->reset();
  cninet::SetLogSink(nullptr);
  return 0;
}

int Status(const std::string& socket, uint32_t max, bool json) {
  auto s = agent::QueryAgentStatus(socket, max);
  if (!s.ok()) {
    std::cerr << "cninet-agent: " << s.status().message() << "\n";
    return 1;
  }
  if (json) {
    auto text = agent::EncodeJson(*s);
    std::cout << (text.ok() ? *text : std::string("{}")) << "\n";
  } else {
    cninet::agent_tool::PrintStatus(*s, std::cout);
  }
  return s->ready() ? 0 : 1;
}

int Health(const std::string& socket, int wait_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  while (true) {
    auto h = agent::QueryAgentHealth(socket);
    bool last = std::chrono::steady_clock::now() >= deadline;
    if (h.ok() && h->ready() && h->healthy()) {
      cninet::agent_tool::PrintHealth(*h, std::cout);
      return 0;
    }
    if (last) {
      if (h.ok()) {
        cninet::agent_tool::PrintHealth(*h, std::cout);
      } else {
        std::cerr << "cninet-agent: " << h.status().message() << "\n";
      }
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int Teardown(const agent::AgentOptions& o) {
  absl::Status st = agent::TeardownNode(o);
  if (!st.ok()) {
    std::cerr << "cninet-agent teardown: " << st.message() << "\n";
    return 1;
  }
  return 0;
}

// Validate() of options parsed from the command line: a failure is a usage error.
bool Valid(const agent::AgentOptions& o) {
  if (absl::Status st = o.Validate(); !st.ok()) {
    std::cerr << "cninet-agent: " << st.message() << "\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cninet-agent: the reference node agent and its local commands", "cninet-agent"};
  // No require_subcommand: an unknown command is then named ("... not expected: X").
  app.set_version_flag("--version", std::string(cninet::Version()));
  const agent::AgentOptions defaults;

  NodeFlags run_flags, teardown_flags;
  CLI::App* run = app.add_subcommand("run", "run the node agent (until SIGINT/SIGTERM)");
  AddNodeFlags(run, &run_flags, defaults);
  AddRunFlags(run, &run_flags);

  std::string socket = kDefaultSocket;
  uint32_t max_services = 50;
  bool json = false;
  CLI::App* status = app.add_subcommand("status", "print the agent's status (exit 0 when ready)");
  status->add_option("--socket", socket, "local API socket")->default_str(kDefaultSocket);
  status->add_option("--services", max_services, "list at most N services")->default_str("50");
  status->add_flag("--json", json, "print the status as JSON");

  int wait_s = 0;
  CLI::App* health = app.add_subcommand("health", "exit 0 when the agent is ready and healthy");
  health->add_option("--socket", socket, "local API socket")->default_str(kDefaultSocket);
  health->add_option("--wait", wait_s, "keep asking for up to SECONDS")->default_str("0");

  CLI::App* teardown = app.add_subcommand("teardown", "remove what an agent set up in the node");
  AddNodeFlags(teardown, &teardown_flags, defaults);

  CLI::App* help = app.add_subcommand("help", "print this help");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsageError;
  }
  if (app.get_subcommands().empty()) {
    std::cerr << "cninet-agent: a command is required\n" << app.help();
    return kUsageError;
  }
  if (*help) {
    std::cout << app.help();
    return 0;
  }
  if (*status) return Status(socket, max_services, json);
  if (*health) return Health(socket, wait_s);
  if (*run) {
    agent::AgentOptions o = ToOptions(*run, run_flags);
    return Valid(o) ? Run(o, run_flags.log_level, run_flags.metrics_address) : kUsageError;
  }
  agent::AgentOptions o = ToOptions(*teardown, teardown_flags);
  SetLevel(teardown_flags.log_level);
  return Valid(o) ? Teardown(o) : kUsageError;
}
