#include "cninet/datapath/counters.h"

#include "cninet/base/status.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"

namespace cninet::datapath {

std::string_view ReasonName(uint32_t reason) {
  switch (reason) {
    case CN_R_PASS:
      return "pass";
    case CN_R_PASS_NON_IP:
      return "pass_non_ip";
    case CN_R_PASS_IPV6:
      return "pass_ipv6";
    case CN_R_PASS_FRAGMENT:
      return "pass_fragment";
    case CN_R_DNAT:
      return "dnat";
    case CN_R_REV_DNAT:
      return "rev_dnat";
    case CN_R_SNAT:
      return "snat";
    case CN_R_REV_SNAT:
      return "rev_snat";
    case CN_R_REJECT:
      return "reject_no_backend";
    case CN_R_DROP_MALFORMED:
      return "drop_malformed";
    case CN_R_DROP_NO_BACKEND:
      return "drop_no_backend";
    case CN_R_DROP_CT_FULL:
      return "drop_ct_full";
    case CN_R_DROP_NAT_NO_PORT:
      return "drop_nat_no_port";
    case CN_R_DROP_NAT_FULL:
      return "drop_nat_full";
    case CN_R_DROP_BACKEND_GONE:
      return "drop_backend_gone";
    case CN_R_DROP_CSUM:
      return "drop_rewrite_failed";
    case CN_R_DROP_NO_CONFIG:
      return "drop_no_config";
    case CN_R_DROP_POLICY:
      return "drop_policy";
    case CN_R_DROP_ISOLATED:
      return "drop_isolated";
    case CN_R_CT_NEW:
      return "event_ct_new";
    case CN_R_CT_HIT:
      return "event_ct_hit";
    case CN_R_NAT_NEW:
      return "event_nat_new";
    case CN_R_NAT_PORT_RETRY:
      return "event_nat_port_retry";
    case CN_R_AFFINITY_HIT:
      return "event_affinity_hit";
    case CN_R_ICMP_ERROR_XLATED:
      return "event_icmp_error_xlated";
    case CN_R_POLICY_ALLOW:
      return "event_policy_allow";
    case CN_R_POLICY_SERVICE:
      return "event_policy_service";
    case CN_R_POLICY_HOST:
      return "event_policy_host";
    default:
      return "";
  }
}

Counters::Counters(std::shared_ptr<DatapathMaps> maps) : maps_(std::move(maps)) {}
Counters::~Counters() = default;

absl::StatusOr<std::vector<CounterValue>> Counters::Read() const {
  std::vector<CounterValue> out;
  for (uint32_t r = 0; r < CN_R_MAX; ++r) {
    std::string_view name = ReasonName(r);
    if (name.empty()) continue;
    CNINET_ASSIGN_OR_RETURN(PerCpu<cn_counter> v, maps_->counters.Lookup(r));
    CounterValue c;
    c.reason = r;
    c.name = name;
    c.is_event = r >= CN_R_EVENTS;
    c.is_drop = r >= CN_R_DROP_MALFORMED && r < CN_R_EVENTS;
    for (const auto& cpu : v.values) {
      c.packets += cpu.packets;
      c.bytes += cpu.bytes;
    }
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<uint64_t> Counters::Packets(uint32_t reason) const {
  CNINET_ASSIGN_OR_RETURN(PerCpu<cn_counter> v, maps_->counters.Lookup(reason));
  uint64_t n = 0;
  for (const auto& cpu : v.values) n += cpu.packets;
  return n;
}

absl::Status Counters::Reset() {
  PerCpu<cn_counter> zero;
  zero.values.resize(PossibleCpus());
  for (uint32_t r = 0; r < CN_R_MAX; ++r) CNINET_RETURN_IF_ERROR(maps_->counters.Update(r, zero));
  return absl::OkStatus();
}

}  // namespace cninet::datapath
