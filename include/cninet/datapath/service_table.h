/// @file
/// Services: frontends (ClusterIP / ExternalIP / NodePort) and backends, programmed into the
/// datapath maps. A change that keeps the size of a service's lookup table (a backend replaced;
/// Maglev at a stable M) rewrites the live table in place through its mmap, one aligned store per
/// changed slot, so a new flow sees its slot's old or new backend (both exist until the rewrite is
/// done) and no RCU grace period is waited for. A size change fills a fresh inner map and swaps it
/// in with one update of the outer array (one grace period, ~13 ms, per batch).
#ifndef CNINET_DATAPATH_SERVICE_TABLE_H_
#define CNINET_DATAPATH_SERVICE_TABLE_H_

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/types.h"

namespace cninet::datapath {

class DatapathMaps;

/// Highest service id (ids are 1..kMaxServiceId and below MapSizes::service_slots).
inline constexpr uint32_t kMaxServiceId = (1u << 20) - 1;
/// Most backends one service can have.
inline constexpr uint32_t kMaxBackendsPerService = 4095;

/// How a service's frontend is reached.
enum class FrontendKind : uint8_t {
  kClusterIP,   ///< from pods only
  kExternalIP,  ///< from pods and from the uplink
  kNodePort,    ///< every node address + port, from the uplink (address field is ignored)
};

/// One address:port/protocol a service answers on. ICMP frontends use port 0 (echo through the
/// service).
struct Frontend {
  cni::IPAddress address;                        ///< Address of either family.
  uint16_t port = 0;                             ///< Port (host order).
  Protocol protocol = Protocol::kTcp;            ///< TCP, UDP, ICMP or ICMPv6.
  FrontendKind kind = FrontendKind::kClusterIP;  ///< How the frontend is reached.
  /// Field-wise equality.
  friend bool operator==(const Frontend&, const Frontend&) = default;
};

/// A backend endpoint; port 0 keeps the frontend's port.
struct Backend {
  cni::IPAddress address;  ///< Address of either family (one family per service).
  uint16_t port = 0;       ///< Port (host order).
  /// Field-wise equality.
  friend bool operator==(const Backend&, const Backend&) = default;
  /// "10.244.0.3:8080".
  std::string ToString() const;
};

/// Backend selection for new flows.
enum class LbAlgorithm : uint8_t { kMaglev, kRandom };

/// A load-balanced service: frontends sharing one backend set.
struct Service {
  uint32_t id = 0;                  ///< caller-chosen, 1..kMaxServiceId, stable across restarts
  std::vector<Frontend> frontends;  ///< Where the service answers.
  std::vector<Backend> backends;    ///< Where it sends new flows.
  LbAlgorithm algorithm = LbAlgorithm::kMaglev;  ///< Backend selection for new flows.
  /// M, a prime in [251, 65521], or kMaglevAutoSize (0, the default): MaglevSizeFor the backend
  /// count, kept stable across small changes (see maglev.h for the trade-off).
  uint32_t maglev_size = 0;
  std::chrono::seconds affinity_timeout{0};  ///< sessionAffinity ClientIP; 0 = off
  /// Without backends new flows are rejected (ICMP port unreachable, as kube-proxy's REJECT);
  /// false drops them silently (externalTrafficPolicy: Local on a node without local endpoints).
  bool reject_without_backends = true;
  /// Address family of a service that has neither backends nor an addressed frontend (a
  /// NodePort-only service without endpoints); unset: its NodePort frontends take the node
  /// addresses of both families. A dual-stack Kubernetes Service is two datapath services, one
  /// per family: each sets its family, so that one without backends never takes the other
  /// family's NodePort keys. Must match the backends' and addressed frontends' family.
  std::optional<cni::IPAddress::Family> family;
};

/// The address family of the keys a service programs: its backends', else its addressed
/// frontends', else Service::family; unset = both families (node addresses of each).
std::optional<cni::IPAddress::Family> EffectiveFamily(const Service& service);

/// "clusterip", "externalip", "nodeport" (cninet-dp's spelling).
std::string_view ToString(FrontendKind kind);
/// "clusterip:10.96.0.10:80/tcp", "externalip:1.2.3.4:80/tcp", "nodeport:30080/tcp".
std::string ToString(const Frontend& frontend);
/// "maglev/M", "maglev/auto" or "random", with " affinity=Ns" when session affinity is on.
std::string LbDescription(const Service& service);
/// "ID FRONTEND,... LB -> BACKEND,..." on one line (backends "(none: reject)" when empty).
std::string ToString(const Service& service);
/// Prints ToString(kind).
std::ostream& operator<<(std::ostream& os, FrontendKind kind);
/// Prints ToString(frontend).
std::ostream& operator<<(std::ostream& os, const Frontend& frontend);
/// Prints Backend::ToString().
std::ostream& operator<<(std::ostream& os, const Backend& backend);
/// Prints ToString(service).
std::ostream& operator<<(std::ostream& os, const Service& service);

/// Options of ServiceTable::Upsert.
struct UpsertOptions {
  /// Delete conntrack entries of flows to backends that are removed by this update.
  bool flush_conntrack_of_removed_backends = false;
};

/// Programs services into the datapath. Not thread-safe; one writer per datapath instance. The
/// state is reloaded from the maps when the table is created, so a restarted process continues.
class ServiceTable {
 public:
  /// Used by Datapath; loads the current services from the maps.
  static absl::StatusOr<std::unique_ptr<ServiceTable>> Load(std::shared_ptr<DatapathMaps> maps);
  ~ServiceTable();

  /// Creates or replaces service `svc.id`.
  absl::Status Upsert(const Service& svc, const UpsertOptions& options = {});
  /// Same for many services, batching map writes (for programming thousands quickly).
  absl::Status UpsertBatch(std::span<const Service> services);
  /// Removes the service; NotFound when unknown.
  absl::Status Delete(uint32_t id);
  /// Deletes the conntrack entries (both directions) of service `id`'s flows to `backends`, or to
  /// any backend when `backends` is empty, so their next packets are new flows (kube-proxy flushes
  /// UDP conntrack this way when endpoints or services go). Works for deleted ids too. Returns
  /// the number of entries deleted.
  absl::StatusOr<size_t> FlushConntrack(uint32_t id, std::span<const Backend> backends = {});
  /// The service as programmed; NotFound when unknown.
  absl::StatusOr<Service> Get(uint32_t id) const;
  /// Every programmed service, by id.
  std::vector<Service> List() const;
  /// The backend (by index into Get(id).backends) that new flow `t` would get from the Maglev
  /// table, as the datapath computes it (ignoring conntrack and affinity); for tests and tools.
  absl::StatusOr<Backend> PredictBackend(uint32_t id, const FlowTuple& t) const;
  /// Entries of service `id`'s programmed LB table (its M for Maglev, also when chosen
  /// automatically; the backend count for random; 0 without backends); NotFound when unknown.
  absl::StatusOr<uint32_t> TableSize(uint32_t id) const;

  /// How LB tables were written since this object was created.
  struct Stats {
    uint64_t tables_rewritten = 0;  ///< live tables rewritten in place (no grace period)
    uint64_t slots_rewritten = 0;   ///< slots those rewrites changed
    uint64_t tables_swapped = 0;    ///< fresh tables swapped into cn_lb_tables (new or resized)
  };
  /// The counters above.
  const Stats& stats() const;

 private:
  struct State;
  explicit ServiceTable(std::shared_ptr<DatapathMaps> maps);
  absl::Status Reload();
  static absl::Status Validate(const Service& svc, uint32_t service_slots);
  std::shared_ptr<DatapathMaps> maps_;
  std::unique_ptr<State> state_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_SERVICE_TABLE_H_
