#include "cninet/datapath/endpoints.h"

#include <cstring>

#include "cninet/base/status.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet/datapath/types.h"

namespace cninet::datapath {

EndpointTable::EndpointTable(std::shared_ptr<DatapathMaps> maps) : maps_(std::move(maps)) {}
EndpointTable::~EndpointTable() = default;

absl::Status EndpointTable::Upsert(const Endpoint& ep) {
  cn_addr key = ToAbiAddr(ep.address);
  cn_endpoint v{};
  v.ifindex = ep.ifindex;
  std::memcpy(v.mac, ep.mac.data(), 6);
  return maps_->endpoints.Update(key, v);
}

absl::Status EndpointTable::Delete(const cni::IPAddress& address) {
  cn_addr key = ToAbiAddr(address);
  return maps_->endpoints.Delete(key);
}

absl::StatusOr<std::vector<Endpoint>> EndpointTable::List() const {
  std::vector<Endpoint> out;
  CNINET_RETURN_IF_ERROR(maps_->endpoints.ForEach([&](const cn_addr& k, const cn_endpoint& v) {
    Endpoint ep;
    ep.address = FromAbiAddr(k);
    ep.ifindex = v.ifindex;
    std::memcpy(ep.mac.data(), v.mac, 6);
    out.push_back(ep);
    return true;
  }));
  return out;
}

}  // namespace cninet::datapath
