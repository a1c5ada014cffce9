// cninet-agent: the reference node agent (cninet::agent::Agent) and its local commands.
//
//   cninet-agent run --node NAME [options]        run the agent until SIGINT/SIGTERM
//   cninet-agent status [--socket P] [--services N] [--json]
//   cninet-agent health [--socket P] [--wait SECONDS]
//   cninet-agent teardown --node NAME [options]   remove what an agent set up in the node
//
// Run `cninet-agent help` for the options.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cninet/agent/agent.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/state.h"
#include "cninet/base/log.h"
#include "cninet/base/strings.h"
#include "status_print.h"

namespace {

using cninet::StrCat;
using cninet::ToAbsl;
namespace agent = ::cninet::agent;

constexpr char kUsage[] = R"(usage:
  cninet-agent run --node NAME [options]      run the node agent (until SIGINT/SIGTERM)
  cninet-agent status [--socket PATH] [--services N] [--json]
  cninet-agent health [--socket PATH] [--wait SECONDS]   exit 0 when ready and healthy
  cninet-agent teardown --node NAME [--netns P] [--uplink IF] [--bpffs-root D] [--instance I]
                        [--cni-conf-dir D] [--vxlan-device IF]

run options (defaults in brackets):
  --netns PATH            the node's network namespace; links, routes, tc and sysctls go there,
                          the store connection and the socket stay in the caller's [own]
  --etcd EP[,EP...]       etcd v3 endpoints (127.0.0.1:2379); without it: the embedded store
  --store-dir DIR         embedded store directory [<state-dir>/store]
  --uplink IF             node uplink [interface of the IPv4 default route]
  --cluster-cidr CIDR     written as the cluster config when the store has none
  --service-cidr CIDR     (with --cluster-cidr) [10.96.0.0/12]
  --node-mask N           (with --cluster-cidr) podCIDR prefix length [24]
  --direct-routing[=B]    set this node's directRouting (else keep the store's)
  --public-ip IP          set this node's publicIP (else keep the store's)
  --state-dir DIR         IPAM leases, plugin records [/var/lib/cninet/agent]
  --socket PATH           local API socket [/run/cninet/agent.sock]
  --cni-conf-dir DIR      where the conflist is written [/etc/cni/net.d] ("" = not written)
  --bpffs-root DIR        bpffs for the pinned maps [/sys/fs/bpf]
  --instance NAME         datapath instance [node name]
  --maglev-size M         Maglev table size of every service, a prime in 251..65521
                          [sized per service: >= 20 slots per backend]
  --vxlan-device IF       VXLAN device name [cninet-vxlan]
  --no-masquerade         do not SNAT pod egress leaving the cluster CIDR
  --heartbeat-ttl S       heartbeat lease TTL [10]
  --resync-interval S     full reconcile pass at least this often, repairing drift [30]
  --log-level L           debug|info|warning|error [info]
)";

// --flag value / --flag=value / --flag (booleans) parsing.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool Has(const std::string& f) const { return flags.count(f) > 0; }
  std::string Get(const std::string& f, std::string fallback = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? fallback : it->second;
  }
};

const std::vector<std::string> kBoolFlags = {"--json", "--no-masquerade", "--direct-routing",
                                             "--help"};

bool Parse(int argc, char** argv, Args* out) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      out->positional.push_back(a);
      continue;
    }
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      out->flags[a.substr(0, eq)] = a.substr(eq + 1);
      continue;
    }
    if (std::find(kBoolFlags.begin(), kBoolFlags.end(), a) != kBoolFlags.end()) {
      out->flags[a] = "true";
      continue;
    }
    if (i + 1 >= argc) {
      std::cerr << "cninet-agent: " << a << " needs a value\n";
      return false;
    }
    out->flags[a] = argv[++i];
  }
  return true;
}

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

bool SetLevel(const std::string& name) {
  static const std::map<std::string, cninet::LogLevel> kLevels = {
      {"debug", cninet::LogLevel::kDebug},
      {"info", cninet::LogLevel::kInfo},
      {"warning", cninet::LogLevel::kWarning},
      {"error", cninet::LogLevel::kError}};
  auto it = kLevels.find(name);
  if (it == kLevels.end()) return false;
  cninet::SetLogLevel(it->second);
  return true;
}

// Fills the options shared by run and teardown; false (with a message) on bad values.
bool Options(const Args& args, agent::AgentOptions* o) {
  o->node_name = args.Get("--node");
  o->netns = args.Get("--netns");
  o->uplink = args.Get("--uplink");
  if (args.Has("--etcd")) {
    o->store = agent::StoreKind::kEtcd;
    for (auto part : absl::StrSplit(args.Get("--etcd"), ',', absl::SkipEmpty())) {
      o->etcd_endpoints.emplace_back(part);
    }
  }
  o->store_dir = args.Get("--store-dir");
  o->state_dir = args.Get("--state-dir", o->state_dir);
  o->socket_path = args.Get("--socket", o->socket_path);
  o->cni_conf_dir = args.Get("--cni-conf-dir", o->cni_conf_dir);
  o->bpffs_root = args.Get("--bpffs-root", o->bpffs_root);
  o->instance = args.Get("--instance");
  o->vxlan_device = args.Get("--vxlan-device", o->vxlan_device);
  o->masquerade = !args.Has("--no-masquerade");
  if (args.Has("--direct-routing")) {
    std::string v = args.Get("--direct-routing");
    if (v != "true" && v != "false") {
      std::cerr << "cninet-agent: --direct-routing takes true or false\n";
      return false;
    }
    o->direct_routing = v == "true";
  }
  if (args.Has("--public-ip")) o->public_ip = args.Get("--public-ip");
  if (args.Has("--cluster-cidr")) {
    o->bootstrap_cluster.set_cluster_cidr(args.Get("--cluster-cidr"));
    o->bootstrap_cluster.set_service_cidr(args.Get("--service-cidr", "10.96.0.0/12"));
    uint32_t mask = 0;
    if (args.Has("--node-mask") && !absl::SimpleAtoi(ToAbsl(args.Get("--node-mask")), &mask)) {
      std::cerr << "cninet-agent: --node-mask takes a number\n";
      return false;
    }
    o->bootstrap_cluster.set_node_cidr_mask_size(mask);
  }
  if (args.Has("--maglev-size") &&
      !absl::SimpleAtoi(ToAbsl(args.Get("--maglev-size")), &o->maglev_size)) {
    std::cerr << "cninet-agent: --maglev-size takes a number\n";
    return false;
  }
  if (args.Has("--heartbeat-ttl")) {
    int ttl = 0;
    if (!absl::SimpleAtoi(ToAbsl(args.Get("--heartbeat-ttl")), &ttl)) {
      std::cerr << "cninet-agent: --heartbeat-ttl takes seconds\n";
      return false;
    }
    o->heartbeat_ttl = std::chrono::seconds(ttl);
  }
  if (args.Has("--resync-interval")) {
    int s = 0;
    if (!absl::SimpleAtoi(ToAbsl(args.Get("--resync-interval")), &s)) {
      std::cerr << "cninet-agent: --resync-interval takes seconds\n";
      return false;
    }
    o->resync_interval = std::chrono::seconds(s);
  }
  if (absl::Status st = o->Validate(); !st.ok()) {
    std::cerr << "cninet-agent: " << st.message() << "\n";
    return false;
  }
  return true;
}

int Run(const Args& args) {
  agent::AgentOptions o;
  if (!Options(args, &o)) return 2;
  NodeLogSink sink(o.node_name);
  cninet::SetLogSink(&sink);
  if (!SetLevel(args.Get("--log-level", "info"))) {
    std::cerr << "cninet-agent: unknown --log-level\n";
    return 2;
  }
  // SIGINT/SIGTERM are taken synchronously by this thread; block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<agent::Agent>> a = agent::Agent::Start(o);
  if (!a.ok()) {
    CNINET_LOG(kError, "start failed: ", a.status().message());
    cninet::SetLogSink(nullptr);
    return 1;
  }
  CNINET_LOG(kInfo, "agent started (podCIDR ", (*a)->pod_cidr().ToString(), ", socket ",
             o.socket_path, ")");
  int sig = 0;
  sigwait(&set, &sig);
  CNINET_LOG(kInfo, "signal ", sig, ": stopping (programmed state is kept)");
  (*a)->Stop();
  a->reset();
  cninet::SetLogSink(nullptr);
  return 0;
}

int Status(const Args& args) {
  uint32_t max = 50;
  if (args.Has("--services") && !absl::SimpleAtoi(ToAbsl(args.Get("--services")), &max)) {
    std::cerr << "cninet-agent: --services takes a number\n";
    return 2;
  }
  auto s = agent::QueryAgentStatus(args.Get("--socket", "/run/cninet/agent.sock"), max);
  if (!s.ok()) {
    std::cerr << "cninet-agent: " << s.status().message() << "\n";
    return 1;
  }
  if (args.Has("--json")) {
    auto json = agent::EncodeJson(*s);
    std::cout << (json.ok() ? *json : std::string("{}")) << "\n";
  } else {
    cninet::agent_tool::PrintStatus(*s, std::cout);
  }
  return s->ready() ? 0 : 1;
}

int Health(const Args& args) {
  std::string socket = args.Get("--socket", "/run/cninet/agent.sock");
  int wait_s = 0;
  if (args.Has("--wait") && !absl::SimpleAtoi(ToAbsl(args.Get("--wait")), &wait_s)) {
    std::cerr << "cninet-agent: --wait takes seconds\n";
    return 2;
  }
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

int Teardown(const Args& args) {
  agent::AgentOptions o;
  if (!Options(args, &o)) return 2;
  absl::Status st = agent::TeardownNode(o);
  if (!st.ok()) {
    std::cerr << "cninet-agent teardown: " << st.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!Parse(argc, argv, &args) || args.positional.empty() || args.Has("--help")) {
    std::cerr << kUsage;
    return args.Has("--help") ? 0 : 2;
  }
  const std::string& cmd = args.positional[0];
  if (cmd == "run") return Run(args);
  if (cmd == "status") return Status(args);
  if (cmd == "health") return Health(args);
  if (cmd == "teardown") return Teardown(args);
  if (cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "cninet-agent: unknown command " << cmd << "\n" << kUsage;
  return 2;
}
