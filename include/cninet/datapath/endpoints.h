/// @file
/// Local endpoints (pods on this node). The datapath uses them to tell local from remote
/// NodePort backends (remote ones are SNATed to the node address).
#ifndef CNINET_DATAPATH_ENDPOINTS_H_
#define CNINET_DATAPATH_ENDPOINTS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"

namespace cninet::datapath {

class DatapathMaps;

/// A pod on this node.
struct Endpoint {
  cni::IPAddress address;        ///< pod address (either family)
  uint32_t ifindex = 0;          ///< host-side veth
  std::array<uint8_t, 6> mac{};  ///< pod MAC
};

/// Access to the endpoints map.
class EndpointTable {
 public:
  /// Used by Datapath; shares its maps.
  explicit EndpointTable(std::shared_ptr<DatapathMaps> maps);
  ~EndpointTable();
  /// Adds or replaces the endpoint of `ep.address` (either family).
  absl::Status Upsert(const Endpoint& ep);
  /// NotFound when absent.
  absl::Status Delete(const cni::IPAddress& address);
  /// Every endpoint.
  absl::StatusOr<std::vector<Endpoint>> List() const;

 private:
  std::shared_ptr<DatapathMaps> maps_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_ENDPOINTS_H_
