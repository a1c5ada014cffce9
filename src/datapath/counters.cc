#include "cninet/datapath/counters.h"

#include <utility>

#include "cninet/base/status.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"

namespace cninet::datapath {

// Counter reasons and their names (abi.h CN_R_*).
constexpr std::pair<uint32_t, std::string_view> kReasonNames[] = {
    {CN_R_PASS, "pass"},
    {CN_R_PASS_NON_IP, "pass_non_ip"},
    {CN_R_PASS_IPV6, "pass_ipv6"},
    {CN_R_PASS_FRAGMENT, "pass_fragment"},
    {CN_R_DNAT, "dnat"},
    {CN_R_REV_DNAT, "rev_dnat"},
    {CN_R_SNAT, "snat"},
    {CN_R_REV_SNAT, "rev_snat"},
    {CN_R_REJECT, "reject_no_backend"},
    {CN_R_DROP_MALFORMED, "drop_malformed"},
    {CN_R_DROP_NO_BACKEND, "drop_no_backend"},
    {CN_R_DROP_CT_FULL, "drop_ct_full"},
    {CN_R_DROP_NAT_NO_PORT, "drop_nat_no_port"},
    {CN_R_DROP_NAT_FULL, "drop_nat_full"},
    {CN_R_DROP_BACKEND_GONE, "drop_backend_gone"},
    {CN_R_DROP_CSUM, "drop_rewrite_failed"},
    {CN_R_DROP_NO_CONFIG, "drop_no_config"},
    {CN_R_DROP_POLICY, "drop_policy"},
    {CN_R_DROP_ISOLATED, "drop_isolated"},
    {CN_R_CT_NEW, "event_ct_new"},
    {CN_R_CT_HIT, "event_ct_hit"},
    {CN_R_NAT_NEW, "event_nat_new"},
    {CN_R_NAT_PORT_RETRY, "event_nat_port_retry"},
    {CN_R_AFFINITY_HIT, "event_affinity_hit"},
    {CN_R_ICMP_ERROR_XLATED, "event_icmp_error_xlated"},
    {CN_R_POLICY_ALLOW, "event_policy_allow"},
    {CN_R_POLICY_SERVICE, "event_policy_service"},
    {CN_R_POLICY_HOST, "event_policy_host"},
    {CN_R_SOCK_CONNECT, "event_sock_connect"},
    {CN_R_SOCK_SENDMSG, "event_sock_sendmsg"},
    {CN_R_SOCK_REVERSE, "event_sock_reverse"},
    {CN_R_SOCK_REFUSED, "event_sock_refused"},
    {CN_R_SOCK_FLOW, "event_sock_flow"},
    {CN_R_MONITOR_LOST, "event_monitor_lost"},
};

std::string_view ReasonName(uint32_t reason) {
  for (const auto& [r, name] : kReasonNames)
    if (r == reason) return name;
  return "";
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
