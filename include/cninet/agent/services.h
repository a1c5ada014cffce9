/// @file
/// Services + Endpoints -> the datapath's ServiceTable. PlanServices (pure) turns each port of
/// each Service into one datapath service per family: its ClusterIP, externalIPs, load balancer
/// IPs and (NODE_PORT, LOAD_BALANCER services) nodePort frontends, and the backends of the
/// Endpoints port with the same name that the traffic policies and endpoint conditions allow.
/// When externalTrafficPolicy and internalTrafficPolicy differ, the external frontends get a
/// datapath service of their own (their backend sets differ).
/// ServiceReconciler gives every (namespace, name, port) a service id that stays stable - also
/// across agent restarts, where ids are recovered from the pinned maps by matching frontends -
/// and writes only what differs from what is programmed, in batches.
#ifndef CNINET_AGENT_SERVICES_H_
#define CNINET_AGENT_SERVICES_H_

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/datapath/service_table.h"
#include "cninet/v1/service.pb.h"

namespace cninet::agent {

/// One port of one Kubernetes service: the unit the datapath programs as a service.
struct ServicePortKey {
  std::string ns;    ///< Service namespace.
  std::string name;  ///< Service name.
  std::string port;  ///< Port name ("" for an unnamed single port).
  /// Address family: a dual-stack service port is one datapath service per family, each
  /// balanced over the endpoints of its family (as kube-proxy does).
  cni::IPAddress::Family family = cni::IPAddress::Family::kV4;
  /// The external frontends (nodePorts, externalIPs, load balancer IPs) of a service whose
  /// traffic policies differ; false for the others (and for a service programmed as one).
  bool external = false;
  /// Ordering and equality for maps.
  friend auto operator<=>(const ServicePortKey&, const ServicePortKey&) = default;
  /// "ns/name" or "ns/name:port", with "@IPv6" appended for the IPv6 family and "/external"
  /// for the external part.
  std::string ToString() const;
};

/// A datapath service planned for a service port (its id is assigned by ServiceReconciler).
struct PlannedService {
  ServicePortKey key;         ///< Which service port.
  datapath::Service service;  ///< Frontends, backends, algorithm, affinity; id 0.
};

/// Options of PlanServices.
struct ServicePlanOptions {
  /// Backend selection: Maglev (consistent hashing) or random.
  datapath::LbAlgorithm algorithm = datapath::LbAlgorithm::kMaglev;
  /// Maglev table size M (a prime in [251, 65521]), or 0 (default, datapath::kMaglevAutoSize):
  /// the datapath sizes each service's table to its backends (datapath::MaglevSizeFor, at least
  /// 100 slots per backend, kept while the backend count stays within about x2). A table costs
  /// 4 bytes of kernel memory per slot.
  uint32_t maglev_size = 0;
  uint32_t node_port_min = 30000;  ///< Lowest allowed nodePort.
  uint32_t node_port_max = 32767;  ///< Highest allowed nodePort.
  /// Plan IPv6 services; when false they are left out with one warning per service (for a
  /// datapath that programs IPv4 services only).
  bool ipv6 = true;
  /// This node's name: the backends whose `node` equals it are the local ones of the LOCAL
  /// traffic policies (none when empty).
  std::string node_name;
};

/// Whether a backend takes new connections, from its EndpointSlice conditions: ready (unset:
/// not terminating) and serving (unset: ready).
struct BackendConditions {
  bool ready = true;    ///< Takes new connections.
  bool serving = true;  ///< Can serve (a terminating backend finishing its work).
  /// Reads `b`'s conditions.
  static BackendConditions Of(const v1::Backend& b);
};

/// Something PlanServices left out, for the log and `cninet-agent status`.
struct PlanWarning {
  std::string object;   ///< "namespace/name" of the service.
  std::string message;  ///< What was skipped and why.
};

/// Plans the datapath services for `services` and their `endpoints` (matched by namespace and
/// name; ports by port name). Each port gets one datapath service per family the service has
/// (the families of its ClusterIPs, else of its externalIPs, else IPv4): that family's
/// ClusterIP, externalIPs, load balancer IPs and nodePort (a nodePort frontend's address is the
/// family's unspecified address) and that family's backends: the ready ones, or when none is
/// ready the serving terminating ones (kube-proxy's terminating-endpoint fallback), of the
/// whole cluster or, for a LOCAL traffic policy, of this node only. Skipped with a warning:
/// services without a ClusterIP and without node ports, SCTP ports, nodePorts outside the range,
/// frontends another service already has (the first service in namespace/name order keeps
/// them), addresses of a family the service does not have; duplicate backends are left out. A
/// service port without backends is still programmed: the datapath rejects its connections (as
/// kube-proxy does), or drops them under a LOCAL policy. Output is in key order with frontends
/// and backends sorted.
std::vector<PlannedService> PlanServices(std::span<const v1::Service> services,
                                         std::span<const v1::Endpoints> endpoints,
                                         const ServicePlanOptions& options,
                                         std::vector<PlanWarning>* warnings);
/// PlanServices over pointers (no copies of the objects; the agent's cache holds them shared).
std::vector<PlannedService> PlanServices(std::span<const v1::Service* const> services,
                                         std::span<const v1::Endpoints* const> endpoints,
                                         const ServicePlanOptions& options,
                                         std::vector<PlanWarning>* warnings);

/// Sorts frontends and backends so that two services programming the same thing compare equal.
void Normalize(datapath::Service* service);

/// True when `a` and `b` (normalized) program the same datapath state (ids ignored).
bool SameProgramming(const datapath::Service& a, const datapath::Service& b);

/// What one ServiceReconciler::Apply did.
struct ServiceChanges {
  size_t upserted = 0;   ///< Services created or changed.
  size_t deleted = 0;    ///< Services removed.
  size_t unchanged = 0;  ///< Services already programmed as wanted.
  size_t failed = 0;     ///< Services the datapath refused (logged, the others are applied).
  /// Conntrack entries of UDP flows to backends that went away (or of deleted UDP services)
  /// deleted, so those flows pick a live backend with their next datagram, as kube-proxy does.
  size_t conntrack_flushed = 0;
};

/// A service as the reconciler last programmed it.
struct ProgrammedService {
  ServicePortKey key;         ///< Service port (empty for a recovered id not matched yet).
  datapath::Service service;  ///< What is in the maps (normalized).
};

/// Keeps the datapath's services equal to a plan. Not thread-safe (one reconcile loop).
class ServiceReconciler {
 public:
  /// Works on `table` (must outlive the reconciler); ids 1..id_limit-1 are the agent's, higher
  /// ones belong to other writers (cninet-ebpf's hostPorts) and are never touched. Services
  /// already in the table with the agent's ids are recovered as programmed.
  static absl::StatusOr<std::unique_ptr<ServiceReconciler>> Create(datapath::ServiceTable* table,
                                                                   uint32_t id_limit);

  /// Programs `desired`: ids are kept per key (recovered ids are matched by a shared frontend),
  /// new keys get the lowest free id, changed services are written with one batch, and
  /// programmed services that are no longer desired are deleted. A service the datapath refuses
  /// is logged and counted in `failed`; the rest still apply.
  absl::StatusOr<ServiceChanges> Apply(std::vector<PlannedService> desired);

  /// Every programmed service of the agent, by id.
  const std::map<uint32_t, ProgrammedService>& programmed() const { return programmed_; }
  /// Number of programmed services.
  size_t size() const { return programmed_.size(); }

 private:
  ServiceReconciler(datapath::ServiceTable* table, uint32_t id_limit)
      : table_(table), id_limit_(id_limit) {}
  uint32_t FreeId(const std::set<uint32_t>& claimed);
  // Where a frontend lives in the services map: (node port?, address, port, protocol).
  using FrontendSlot = std::tuple<bool, cni::IPAddress, uint16_t, uint8_t>;
  // Gives each desired service its id (kept, recovered by a frontend, or free), by id.
  std::map<uint32_t, PlannedService*> AssignIds(std::vector<PlannedService>& desired,
                                                ServiceChanges* ch);
  // Frontend slots of services recovered from the maps and not matched yet.
  std::map<FrontendSlot, uint32_t> RecoveredSlots(const std::set<uint32_t>& claimed,
                                                  bool none_needed) const;
  // Deletes programmed services no longer wanted; forgets their keys' ids.
  void DeleteUnwanted(const std::map<uint32_t, PlannedService*>& want, ServiceChanges* ch);
  // Writes one batch (one by one when the datapath refuses the batch).
  void UpsertBatch(std::span<const PlannedService* const> batch, ServiceChanges* ch);
  // Records `s` as programmed for `key`, flushing UDP flows to the backends it dropped.
  void Programmed(const ServicePortKey& key, const datapath::Service& s, ServiceChanges* ch);
  // Deletes conntrack entries of service `id` to `removed` (all when empty), counted in `ch`.
  void FlushUdp(uint32_t id, std::span<const datapath::Backend> removed, ServiceChanges* ch);
  // True when `s` has a UDP frontend.
  static bool HasUdp(const datapath::Service& s);

  datapath::ServiceTable* table_;
  uint32_t id_limit_;
  std::map<uint32_t, ProgrammedService> programmed_;
  std::map<ServicePortKey, uint32_t> ids_;
  uint32_t next_free_hint_ = 1;
};

}  // namespace cninet::agent

#endif  // CNINET_AGENT_SERVICES_H_
