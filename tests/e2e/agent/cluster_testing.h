// A multi-node cninet cluster on one machine for the agent's end-to-end tests: an underlay
// "switch" namespace with a bridge, one namespace per node (uplink eth0 on the switch), an
// "external" namespace on the switch, a private bpffs, a real etcd on 127.0.0.1 (or the embedded
// store), one real cninet-agent process per node (--netns), and pods created through the agent's
// conflist with cninet-cni run inside the node, as a runtime would. Everything is removed in the
// destructor (processes, namespaces, the bpffs mount, temporary directories).
#ifndef CNINET_TESTS_E2E_AGENT_CLUSTER_TESTING_H_
#define CNINET_TESTS_E2E_AGENT_CLUSTER_TESTING_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/api.pb.h"
#include "cninet/agent/store.h"
#include "cninet/v1/service.pb.h"
#include "dp_test_util.h"
#include "testing/etcd_server.h"
#include "testing/line_server.h"
#include "testing/scoped_cgroup.h"
#include "testing/test_pki.h"
#include "testing/test_util.h"

namespace cninet::agent::testing {

// An owned socket fd.
using Sock = ::cninet::testing::LineConn;

using ::cninet::testing::SockAddr;

// Connects from inside `netns_path` to ip:port (`timeout` for the connect, reads and writes); the
// socket works from any thread.
absl::StatusOr<Sock> Connect(const std::string& netns_path, const std::string& ip, uint16_t port,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Sends a line, returns the reply line.
absl::StatusOr<std::string> Ask(const Sock& s, const std::string& line);
// Connect + Ask("hello"): the answering server's name, e.g. "pod-2a".
absl::StatusOr<std::string> WhoAnswers(const std::string& netns_path, const std::string& ip,
                                       uint16_t port);

// A child process whose output goes to a log file; killed (SIGKILL) when destroyed.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_file);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  pid_t pid() const { return pid_; }
  bool running();
  // SIGKILL (abrupt, like a crash) or SIGTERM (graceful); waits for the exit.
  void Kill(bool graceful = false);
  // SIGSTOP: freezes the process (it runs nothing until Resume); waits until it is stopped.
  absl::Status Pause();
  // SIGCONT: lets a paused process run again.
  void Resume();
  const std::string& log_file() const { return log_; }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

using ::cninet::testing::ScopedCgroup;

using ::cninet::testing::InChild;

// What a cluster looks like.
struct ClusterOptions {
  int nodes = 3;
  bool etcd = true;             // false: one node on the embedded store, no etcd running
  bool direct_routing = false;  // every node sets directRouting (they share the switch subnet)
  std::string cluster_cidr = "10.244.0.0/16";
  // Dual-stack: the cluster config gets cluster_cidr_v6 (every node an IPv6 podCIDR, every pod
  // both families) and the nodes and the external namespace IPv6 underlay addresses
  // (fd00:50::11/64, ..., fd00:50::100).
  bool dual_stack = false;
  std::string cluster_cidr_v6 = "fd00:10:244::/56";
  // Socket-level load balancing: every node gets a cgroup of its own (Node::cgroup, made by the
  // test) and its agent runs with --socket-lb-cgroup pointing to it.
  bool socket_lb = false;
  // With socket_lb: pods use it too (--socket-lb-pods; cninet-ebpf registers each pod's netns).
  bool socket_lb_pods = false;
  // Every agent serves Prometheus metrics on 127.0.0.1:Node::metrics_port (a free port).
  bool metrics = false;
  // etcd over mutual TLS (--client-cert-auth) with a PKI the harness makes with openssl: every
  // agent shows its node's client certificate (CN node-N), the harness's store and etcdctl the
  // admin's (CN root).
  bool etcd_tls = false;
  // With etcd_tls: etcd's authentication on, with the roles scripts/etcd-roles.sh creates (each
  // node writes only its own keys; "cninet-admin" and "root" are admins).
  bool etcd_auth = false;
};

// A node of the cluster.
struct Node {
  std::string name;  // node-1, node-2, ...
  std::string ip;    // 192.168.50.11, ...
  std::string ip6;   // fd00:50::11, ... (dual-stack clusters)
  std::unique_ptr<cninet::testing::ScopedNetns> ns;
  std::string state_dir, conf_dir, socket, log;
  std::unique_ptr<ScopedCgroup> cgroup;  // socket_lb clusters only
  int metrics_port = 0;                  // metrics clusters only
  std::unique_ptr<Process> agent;
};

// A pod created through a node's conflist.
struct Pod {
  std::string name;                        // pod-1a
  std::string namespace_name = "default";  // K8S_POD_NAMESPACE given to the plugins
  int node = 0;                            // index into Cluster::nodes()
  std::string ip;
  std::string ip6;  // the IPv6 address of a dual-stack pod, else ""
  std::unique_ptr<cninet::testing::ScopedNetns> ns;
};

// A TCP line server on [::]:port in a namespace (IPv6 only), answering every line with
// "NAME PEER", on its own thread until destroyed.
class LineServer6 {
 public:
  LineServer6(const std::string& netns_path, uint16_t port, std::string name);
  ~LineServer6();
  LineServer6(const LineServer6&) = delete;
  LineServer6& operator=(const LineServer6&) = delete;
  // OK when it listens.
  const absl::Status& status() const { return status_; }

 private:
  void Loop();
  std::string name_;
  int fd_ = -1;
  absl::Status status_;
  std::thread thread_;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options = {});
  ~Cluster();

  // OK when the topology, etcd and the agents came up and are ready.
  const absl::Status& status() const { return status_; }

  std::vector<Node>& nodes() { return nodes_; }
  std::vector<Pod>& pods() { return pods_; }
  cninet::testing::ScopedNetns& external() { return *external_; }
  Store& store() { return *store_; }
  const std::string& bpffs() const { return bpffs_.path(); }
  // "http://127.0.0.1:port" (etcd only).
  std::string etcd_url() const;
  // etcdctl/cninetctl flags reaching etcd as the admin (TLS clusters: CA + the root certificate),
  // e.g. {"--endpoints", url, "--cacert", ...} for etcdctl.
  std::vector<std::string> etcdctl_flags() const;
  // The etcd server (nullptr without etcd), e.g. to Stop()/Restart() it under the agents.
  ::cninet::testing::EtcdServer* etcd() { return etcd_.get(); }
  // etcd's log file ("" without etcd).
  std::string etcd_log() const { return etcd_ ? etcd_->log_file() : std::string(); }
  // The harness's PKI (etcd_tls clusters only).
  const ::cninet::testing::TestPki* pki() const { return pki_ ? &*pki_ : nullptr; }

  // Starts (or restarts) the agent of node `i` and waits until it is ready.
  absl::Status StartAgent(int i);
  // Creates a pod on node `i` through cninet-cni (the node's conflist), returns its index.
  absl::StatusOr<int> AddPod(int node, const std::string& name,
                             const std::string& namespace_name = "default");
  // DEL of a pod through cninet-cni.
  absl::Status DeletePod(int pod);
  // Starts a LineServer answering with the pod's name on `port` in every pod (and, in a
  // dual-stack cluster, a LineServer6 on the same port).
  absl::Status ServeEverywhere(uint16_t port);

  // The agent's status report of node `i`.
  absl::StatusOr<api::AgentStatus> AgentStatus(int i);
  // Waits until `pred` holds for node i's status (up to `timeout`); returns the last status.
  absl::StatusOr<api::AgentStatus> WaitStatus(
      int i, const std::function<bool(const api::AgentStatus&)>& pred,
      std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Writes a service and its endpoints (backends: pod indexes, target port) to the store.
  absl::Status PutService(const std::string& name, const std::string& cluster_ip, uint16_t port,
                          const std::vector<int>& backend_pods, uint16_t target_port,
                          uint32_t node_port = 0);
  // The same for a dual-stack service (REQUIRE_DUAL_STACK, clusterIPs `cluster_ips`): the
  // endpoints list both addresses of every backend pod.
  absl::Status PutDualStackService(const std::string& name,
                                   const std::vector<std::string>& cluster_ips, uint16_t port,
                                   const std::vector<int>& backend_pods, uint16_t target_port,
                                   uint32_t node_port = 0);
  // Writes `svc` as given (namespace "default") and its Endpoints: every address (both
  // families) of the backend pods, one unnamed port.
  absl::Status PutService(const v1::Service& svc, const std::vector<int>& backend_pods,
                          uint16_t target_port);
  // Runs a shell command inside node i.
  cninet::testing::CommandResult InNode(int i, const std::string& script);
  // The agent log of node i.
  std::string AgentLog(int i) const;

 private:
  absl::Status Build();
  std::vector<std::string> AgentArgs(int i) const;
  std::vector<std::string> CniEnv(int node, const std::string& pod,
                                  const std::string& namespace_name = "default") const;

  ClusterOptions options_;
  absl::Status status_;
  cninet::testing::TempDir dir_;
  std::optional<::cninet::testing::TestPki> pki_;
  datapath::testing::ScopedBpffs bpffs_;
  std::unique_ptr<::cninet::testing::EtcdServer> etcd_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<cninet::testing::ScopedNetns> switch_, external_;
  std::vector<Node> nodes_;
  std::vector<Pod> pods_;
  std::vector<std::unique_ptr<::cninet::testing::LineServer>> servers_;
  std::vector<std::unique_ptr<LineServer6>> servers6_;
};

/// The status of a Status or StatusOr (for the ASSERT_OK / EXPECT_OK macros below).
inline absl::Status StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

}  // namespace cninet::agent::testing

// gtest assertions on a Status or StatusOr, printing the status when it is not OK.
#define ASSERT_OK(expr)                                                 \
  do {                                                                  \
    absl::Status status_of_ = ::cninet::agent::testing::StatusOf(expr); \
    ASSERT_TRUE(status_of_.ok()) << status_of_;                         \
  } while (false)
#define EXPECT_OK(expr)                                                 \
  do {                                                                  \
    absl::Status status_of_ = ::cninet::agent::testing::StatusOf(expr); \
    EXPECT_TRUE(status_of_.ok()) << status_of_;                         \
  } while (false)

#endif  // CNINET_TESTS_E2E_AGENT_CLUSTER_TESTING_H_
