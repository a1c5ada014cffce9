#include "cluster_testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "cninet/agent/embedded_store.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "nlohmann/json.hpp"

namespace cninet::agent::testing {

using ::cninet::testing::CommandResult;
using ::cninet::testing::Run;
using ::cninet::testing::ScopedNetns;
using datapath::testing::RunInNetns;

namespace {

// The last `n` characters of `text` (log excerpts in failure messages).
std::string Tail(const std::string& text, size_t n = 3000) {
  return text.size() <= n ? text : text.substr(text.size() - n);
}

}  // namespace

absl::StatusOr<Sock> Connect(const std::string& netns_path, const std::string& ip, uint16_t port,
                             std::chrono::milliseconds timeout) {
  return ::cninet::testing::ConnectLine(netns_path, ip, port, timeout);
}

absl::StatusOr<std::string> Ask(const Sock& s, const std::string& line) {
  return ::cninet::testing::AskLine(s, line);
}

absl::StatusOr<std::string> WhoAnswers(const std::string& netns_path, const std::string& ip,
                                       uint16_t port) {
  absl::StatusOr<Sock> s = Connect(netns_path, ip, port);
  if (!s.ok()) return s.status();
  absl::StatusOr<std::string> reply = Ask(*s, "hello");
  if (!reply.ok()) return reply.status();
  return reply->substr(0, reply->find(' '));
}

LineServer6::LineServer6(const std::string& netns_path, uint16_t port, std::string name)
    : name_(std::move(name)) {
  status_ = RunInNetns(netns_path, [&]() -> absl::Status {
    fd_ = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return absl::InternalError(StrCat("socket: ", strerror(errno)));
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_any;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd_, 64) != 0) {
      return absl::InternalError(StrCat("bind/listen [::]:", port, ": ", strerror(errno)));
    }
    return absl::OkStatus();
  });
  if (status_.ok()) thread_ = std::thread([this] { Loop(); });
}

LineServer6::~LineServer6() {
  if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
}

void LineServer6::Loop() {
  while (true) {
    sockaddr_in6 peer{};
    socklen_t len = sizeof(peer);
    int c = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      return;  // shut down
    }
    char ip[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, &peer.sin6_addr, ip, sizeof(ip));
    std::string reply = StrCat(name_, " ", ip, "\n");
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    // One connection at a time is enough for the tests: answer each line, then close.
    char buf[512];
    while (true) {
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) break;
      int lines = 0;
      for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
      bool failed = false;
      for (int i = 0; i < lines && !failed; ++i) {
        failed = write(c, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size());
      }
      if (failed) break;
    }
    close(c);
  }
}

Process::Process(const std::vector<std::string>& argv, const std::string& log_file)
    : log_(log_file) {
  int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // Never outlive the test.
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (fd >= 0) close(fd);
}

Process::~Process() { Kill(); }

bool Process::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void Process::Kill(bool graceful) {
  if (pid_ <= 0) return;
  kill(pid_, graceful ? SIGTERM : SIGKILL);
  int status = 0;
  for (int i = 0; graceful && i < 100; ++i) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    usleep(50000);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

absl::Status Process::Pause() {
  if (pid_ <= 0) return absl::FailedPreconditionError("process not running");
  if (kill(pid_, SIGSTOP) != 0) return absl::InternalError(StrCat("SIGSTOP: ", strerror(errno)));
  // Stopped once waitpid reports it (the signal is asynchronous).
  int status = 0;
  if (waitpid(pid_, &status, WUNTRACED) != pid_) {
    return absl::InternalError(StrCat("waitpid ", pid_, ": ", strerror(errno)));
  }
  if (!WIFSTOPPED(status)) {
    pid_ = -1;  // It exited (and is reaped now).
    return absl::InternalError("process exited instead of stopping");
  }
  return absl::OkStatus();
}

void Process::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) { status_ = Build(); }

Cluster::~Cluster() {
  servers_.clear();
  for (Node& n : nodes_) n.agent.reset();
  pods_.clear();
  nodes_.clear();
  external_.reset();
  switch_.reset();
  store_.reset();
  etcd_.reset();
}

std::string Cluster::etcd_url() const { return etcd_ ? etcd_->url() : std::string(); }

std::vector<std::string> Cluster::etcdctl_flags() const {
  std::vector<std::string> f = {"--endpoints", etcd_url()};
  if (pki_) {
    f.insert(f.end(), {"--cacert", pki_->ca, "--cert", pki_->Client("root").cert, "--key",
                       pki_->Client("root").key});
  }
  return f;
}

absl::Status Cluster::Build() {
  if (!bpffs_.status().ok()) return bpffs_.status();
  if (dir_.path().empty()) return absl::InternalError("no temporary directory");
  switch_ = std::make_unique<ScopedNetns>("cnsw");
  CommandResult r = switch_->Exec("ip link add br0 type bridge && ip link set br0 up");
  if (!r.ok()) return absl::InternalError(StrCat("switch: ", r.err));

  if (options_.etcd) {
    ::cninet::testing::EtcdServerOptions eo;
    eo.data_dir = dir_.Sub("etcd");
    if (options_.etcd_tls) {
      std::vector<std::string> clients = {"root", "cninet-admin"};
      for (int i = 1; i <= options_.nodes; ++i) clients.push_back(StrCat("node-", i));
      auto pki = ::cninet::testing::MakeTestPki(dir_.Sub("pki"), clients);
      if (!pki.ok()) return pki.status();
      pki_ = *std::move(pki);
      eo.tls = {.cert_file = pki_->server.cert,
                .key_file = pki_->server.key,
                .trusted_ca_file = pki_->ca,
                .client_cert_auth = true};
    }
    auto server = ::cninet::testing::EtcdServer::Start(eo);
    if (!server.ok()) return server.status();
    etcd_ = *std::move(server);
    EtcdStoreOptions so;
    so.endpoints = {etcd_->url()};
    if (pki_)
      so.tls = {.ca_file = pki_->ca,
                .cert_file = pki_->Client("root").cert,
                .key_file = pki_->Client("root").key};
    auto s = OpenEtcdStore(so);
    if (!s.ok()) return s.status();
    store_ = *std::move(s);
    // The cluster configuration, written as an operator would.
    v1::ClusterConfig cc;
    cc.set_cluster_cidr(options_.cluster_cidr);
    cc.set_service_cidr("10.96.0.0/12");
    if (options_.dual_stack) {
      cc.set_cluster_cidr_ipv6(options_.cluster_cidr_v6);
      cc.set_service_cidr_ipv6("fd00:10:96::/112");
    }
    if (auto rev = PutObject(*store_, cc); !rev.ok()) return rev.status();
    if (options_.etcd_auth) {
      if (!pki_) return absl::InvalidArgumentError("etcd_auth needs etcd_tls");
      std::vector<std::string> argv = {StrCat(CNINET_SOURCE_DIR, "/scripts/etcd-roles.sh"), "--"};
      for (const std::string& f : etcdctl_flags()) argv.push_back(f);
      argv.push_back("--");
      for (int i = 1; i <= options_.nodes; ++i) argv.push_back(StrCat("node-", i));
      CommandResult roles = ::cninet::testing::Run(argv);
      if (!roles.ok()) return absl::InternalError(StrCat("etcd-roles.sh: ", roles.out, roles.err));
    }
  } else {
    EmbeddedStoreOptions so;
    so.dir = dir_.Sub("store");
    so.poll_interval = std::chrono::milliseconds(50);
    auto s = OpenEmbeddedStore(so);
    if (!s.ok()) return s.status();
    store_ = *std::move(s);
    // No cluster config is written: the agent bootstraps it from --cluster-cidr.
  }

  for (int i = 0; i < options_.nodes; ++i) {
    Node n;
    n.name = StrCat("node-", i + 1);
    n.ip = StrCat("192.168.50.", 11 + i);
    n.ns = std::make_unique<ScopedNetns>("cnnode");
    n.state_dir = dir_.Sub(n.name);
    n.conf_dir = n.state_dir + "/net.d";
    n.socket = n.state_dir + "/agent.sock";
    n.log = dir_.Sub(n.name + ".log");
    if (options_.metrics) {
      absl::StatusOr<int> port = ::cninet::testing::FreeLoopbackPort();
      if (!port.ok()) return port.status();
      n.metrics_port = *port;
    }
    if (options_.socket_lb) {
      n.cgroup = std::make_unique<ScopedCgroup>("cnaglb");
      if (!n.cgroup->status().ok()) return n.cgroup->status();
    }
    r = switch_->Exec(StrCat("ip link add p", i, " type veth peer name eth0 netns ", n.ns->name(),
                             " && ip link set p", i, " master br0 && ip link set p", i, " up"));
    if (!r.ok()) return absl::InternalError(StrCat("node link: ", r.err));
    r = n.ns->Exec(StrCat("ip addr add ", n.ip, "/24 dev eth0 && ip link set eth0 up"));
    if (!r.ok()) return absl::InternalError(StrCat("node address: ", r.err));
    if (options_.dual_stack) {
      n.ip6 = StrCat("fd00:50::", 11 + i);
      r = n.ns->Exec(StrCat("ip -6 addr add ", n.ip6, "/64 dev eth0 nodad"));
      if (!r.ok()) return absl::InternalError(StrCat("node IPv6 address: ", r.err));
    }
    nodes_.push_back(std::move(n));
  }
  external_ = std::make_unique<ScopedNetns>("cnext");
  r = switch_->Exec(StrCat("ip link add pext type veth peer name eth0 netns ", external_->name(),
                           " && ip link set pext master br0 && ip link set pext up"));
  if (!r.ok()) return absl::InternalError(StrCat("external link: ", r.err));
  r = external_->Exec("ip addr add 192.168.50.100/24 dev eth0 && ip link set eth0 up");
  if (!r.ok()) return absl::InternalError(StrCat("external address: ", r.err));
  if (options_.dual_stack) {
    r = external_->Exec("ip -6 addr add fd00:50::100/64 dev eth0 nodad");
    if (!r.ok()) return absl::InternalError(StrCat("external IPv6 address: ", r.err));
  }

  for (int i = 0; i < options_.nodes; ++i) {
    if (absl::Status st = StartAgent(i); !st.ok()) return st;
  }
  return absl::OkStatus();
}

std::vector<std::string> Cluster::AgentArgs(int i) const {
  const Node& n = nodes_[i];
  std::vector<std::string> a = {StrCat(CNINET_TOOL_DIR, "/cninet-agent"),
                                "run",
                                "--node",
                                n.name,
                                "--netns",
                                n.ns->path(),
                                "--uplink",
                                "eth0",
                                "--state-dir",
                                n.state_dir,
                                "--socket",
                                n.socket,
                                "--cni-conf-dir",
                                n.conf_dir,
                                "--bpffs-root",
                                bpffs_.path(),
                                "--heartbeat-ttl",
                                "3",
                                "--resync-interval",
                                "2"};
  if (options_.etcd) {
    a.push_back("--etcd");
    a.push_back(etcd_->url());
    if (pki_) {
      ::cninet::testing::CertPair c = pki_->Client(n.name);
      a.insert(a.end(), {"--etcd-cacert", pki_->ca, "--etcd-cert", c.cert, "--etcd-key", c.key});
    }
  } else {
    a.push_back("--store-dir");
    a.push_back(dir_.Sub("store"));
    a.push_back("--cluster-cidr");
    a.push_back(options_.dual_stack ? StrCat(options_.cluster_cidr, ",", options_.cluster_cidr_v6)
                                    : options_.cluster_cidr);
  }
  if (options_.direct_routing) a.push_back("--direct-routing=true");
  if (n.cgroup) {
    a.push_back("--socket-lb-cgroup");
    a.push_back(n.cgroup->path());
  }
  if (options_.socket_lb_pods) a.push_back("--socket-lb-pods");
  if (n.metrics_port != 0) {
    a.push_back("--metrics-address");
    a.push_back(StrCat("127.0.0.1:", n.metrics_port));
  }
  return a;
}

absl::Status Cluster::StartAgent(int i) {
  Node& n = nodes_[i];
  n.agent.reset();
  n.agent = std::make_unique<Process>(AgentArgs(i), n.log);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  absl::Status last;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!n.agent->running()) {
      return absl::InternalError(
          StrCat("agent of ", n.name, " exited; log:\n", Tail(cninet::testing::ReadFile(n.log))));
    }
    auto h = QueryAgentHealth(n.socket);
    if (h.ok() && h->ready() && h->healthy()) return absl::OkStatus();
    last = h.ok() ? absl::UnavailableError(h->message()) : h.status();
    usleep(100000);
  }
  return absl::DeadlineExceededError(StrCat("agent of ", n.name, " not ready: ", last.message(),
                                            "; log:\n", Tail(cninet::testing::ReadFile(n.log))));
}

std::vector<std::string> Cluster::CniEnv(int node, const std::string& pod,
                                         const std::string& namespace_name) const {
  return {
      StrCat("NETCONFPATH=", nodes_[node].conf_dir),
      StrCat("CNI_PATH=", CNINET_PLUGIN_DIR, ":/usr/lib/cni"),
      StrCat("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=", namespace_name, ";K8S_POD_NAME=", pod),
      StrCat("CNI_CACHE_DIR=", nodes_[node].state_dir, "/cni-cache")};
}

absl::StatusOr<int> Cluster::AddPod(int node, const std::string& name,
                                    const std::string& namespace_name) {
  Pod p;
  p.name = name;
  p.namespace_name = namespace_name;
  p.node = node;
  p.ns = std::make_unique<ScopedNetns>("cnpod");
  CommandResult r = Run({"ip", "netns", "exec", nodes_[node].ns->name(),
                         StrCat(CNINET_TOOL_DIR, "/cninet-cni"), "add", "cninet", p.ns->path()},
                        {}, CniEnv(node, name, namespace_name));
  if (!r.ok()) return absl::InternalError(StrCat("cninet-cni add ", name, ": ", r.out, r.err));
  auto result = nlohmann::json::parse(r.out, nullptr, false);
  if (result.is_discarded() || !result.contains("ips") || result["ips"].empty()) {
    return absl::InternalError(StrCat("cninet-cni add ", name, ": unexpected result ", r.out));
  }
  std::string cidr = result["ips"][0]["address"].get<std::string>();
  p.ip = cidr.substr(0, cidr.find('/'));
  for (const auto& ip : result["ips"]) {
    std::string a = ip["address"].get<std::string>();
    if (a.find(':') != std::string::npos) p.ip6 = a.substr(0, a.find('/'));
  }
  if (options_.dual_stack && p.ip6.empty()) {
    return absl::InternalError(StrCat("cninet-cni add ", name, ": no IPv6 address in ", r.out));
  }
  pods_.push_back(std::move(p));
  return static_cast<int>(pods_.size()) - 1;
}

absl::Status Cluster::DeletePod(int i) {
  Pod& p = pods_[i];
  CommandResult r = Run({"ip", "netns", "exec", nodes_[p.node].ns->name(),
                         StrCat(CNINET_TOOL_DIR, "/cninet-cni"), "del", "cninet", p.ns->path()},
                        {}, CniEnv(p.node, p.name, p.namespace_name));
  if (!r.ok()) return absl::InternalError(StrCat("cninet-cni del ", p.name, ": ", r.out, r.err));
  return absl::OkStatus();
}

absl::Status Cluster::ServeEverywhere(uint16_t port) {
  for (Pod& p : pods_) {
    servers_.push_back(
        std::make_unique<::cninet::testing::LineServer>(::cninet::testing::LineServerOptions{
            .netns_path = p.ns->path(), .port = port, .name = p.name, .echo_line = false}));
    if (!servers_.back()->status().ok()) return servers_.back()->status();
    if (options_.dual_stack) {
      servers6_.push_back(std::make_unique<LineServer6>(p.ns->path(), port, p.name));
      if (!servers6_.back()->status().ok()) return servers6_.back()->status();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<api::AgentStatus> Cluster::AgentStatus(int i) {
  return QueryAgentStatus(nodes_[i].socket, 1000);
}

absl::StatusOr<api::AgentStatus> Cluster::WaitStatus(
    int i, const std::function<bool(const api::AgentStatus&)>& pred,
    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  absl::StatusOr<api::AgentStatus> s;
  while (true) {
    s = AgentStatus(i);
    if (s.ok() && pred(*s)) return s;
    if (std::chrono::steady_clock::now() >= deadline) break;
    usleep(100000);
  }
  if (!s.ok()) return s.status();
  return absl::DeadlineExceededError(
      StrCat("condition not reached on ", nodes_[i].name, "; status: ", s->DebugString()));
}

absl::Status Cluster::PutService(const std::string& name, const std::string& cluster_ip,
                                 uint16_t port, const std::vector<int>& backend_pods,
                                 uint16_t target_port, uint32_t node_port) {
  v1::Service svc;
  svc.set_namespace_("default");
  svc.set_name(name);
  svc.set_cluster_ip(cluster_ip);
  svc.set_type(node_port != 0 ? v1::Service::NODE_PORT : v1::Service::CLUSTER_IP);
  v1::ServicePort* sp = svc.add_ports();
  sp->set_port(port);
  sp->set_node_port(node_port);
  v1::Endpoints eps;
  eps.set_namespace_("default");
  eps.set_name(name);
  v1::PortBackends* pb = eps.add_ports();
  for (int i : backend_pods) {
    v1::Backend* b = pb->add_backends();
    b->set_ip(pods_[i].ip);
    b->set_port(target_port);
    b->set_node(nodes_[pods_[i].node].name);
    b->set_pod(StrCat(pods_[i].namespace_name, "/", pods_[i].name));
  }
  if (auto r = PutObject(*store_, svc); !r.ok()) return r.status();
  return PutObject(*store_, eps).status();
}

absl::Status Cluster::PutDualStackService(const std::string& name,
                                          const std::vector<std::string>& cluster_ips,
                                          uint16_t port, const std::vector<int>& backend_pods,
                                          uint16_t target_port, uint32_t node_port) {
  v1::Service svc;
  svc.set_namespace_("default");
  svc.set_name(name);
  svc.set_cluster_ip(cluster_ips.at(0));
  for (const std::string& ip : cluster_ips) svc.add_cluster_ips(ip);
  svc.set_ip_family_policy(cluster_ips.size() > 1 ? v1::Service::REQUIRE_DUAL_STACK
                                                  : v1::Service::SINGLE_STACK);
  svc.set_type(node_port != 0 ? v1::Service::NODE_PORT : v1::Service::CLUSTER_IP);
  v1::ServicePort* sp = svc.add_ports();
  sp->set_port(port);
  sp->set_node_port(node_port);
  return PutService(svc, backend_pods, target_port);
}

absl::Status Cluster::PutService(const v1::Service& svc, const std::vector<int>& backend_pods,
                                 uint16_t target_port) {
  v1::Endpoints eps;
  eps.set_namespace_(svc.namespace_());
  eps.set_name(svc.name());
  v1::PortBackends* pb = eps.add_ports();
  if (svc.ports_size() > 0) pb->set_protocol(svc.ports(0).protocol());
  for (int i : backend_pods) {
    for (const std::string& ip : {pods_[i].ip, pods_[i].ip6}) {
      if (ip.empty()) continue;
      v1::Backend* b = pb->add_backends();
      b->set_ip(ip);
      b->set_ip_family(ip.find(':') != std::string::npos ? v1::IPV6 : v1::IPV4);
      b->set_port(target_port);
      b->set_node(nodes_[pods_[i].node].name);
      b->set_pod(StrCat(pods_[i].namespace_name, "/", pods_[i].name));
    }
  }
  if (auto r = PutObject(*store_, svc); !r.ok()) return r.status();
  return PutObject(*store_, eps).status();
}

CommandResult Cluster::InNode(int i, const std::string& script) {
  return nodes_[i].ns->Exec(script);
}

std::string Cluster::AgentLog(int i) const { return cninet::testing::ReadFile(nodes_[i].log); }

}  // namespace cninet::agent::testing
