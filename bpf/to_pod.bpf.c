// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cn_to_pod: tc egress on the host side of a pod veth, i.e. traffic towards the pod after any
 * service DNAT. Enforces the pod's ingress policy (NetworkPolicy ingress rules, isolated
 * namespaces) on new flows; see lib/policy.h. */
#include "lib/monitor.h"
#include "lib/policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The monitor's rule of a policy drop: the endpoint's deny counter slot. */
static __always_inline struct cn_verdict cn_mon_policy(struct cn_mon* mon, const struct cn_pkt* p,
                                                       struct cn_verdict v) {
  if (v.reason == CN_R_DROP_POLICY || v.reason == CN_R_DROP_ISOLATED) {
    union cn_addr daddr = p->t.daddr;
    struct cn_pol_endpoint* ep = bpf_map_lookup_elem(&cn_pol_eps, &daddr);
    if (ep) mon->rule = ep->deny_slot;
  }
  return v;
}

SEC("tc")
int cn_to_pod(struct __sk_buff* skb) {
  struct cn_pkt p = {};
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  struct cn_mon mon = {CN_HOOK_TO_POD, 0, 0};
  __u32 zero = 0;
  struct cn_config* cfg = bpf_map_lookup_elem(&cn_config, &zero);
  if (!cfg) {
    v.reason = CN_R_DROP_NO_CONFIG;
    return cn_finish_mon(skb, &p, &mon, v);
  }
  int res = cn_parse(skb, &p);
  switch (res) {
    case CN_PARSE_OK:
      v = cn_mon_policy(&mon, &p, cn_policy_ingress(skb, cfg, &p, 1, 0));
      return cn_finish_mon(skb, &p, &mon, v);
    case CN_PARSE_FRAGMENT:
    case CN_PARSE_OTHER_L4:
      /* Checked statelessly; never tracked (the other programs pass these untracked). */
      v = cn_mon_policy(&mon, &p, cn_policy_ingress(skb, cfg, &p, 0, res == CN_PARSE_FRAGMENT));
      if (v.action == TC_ACT_OK && res == CN_PARSE_FRAGMENT) v.reason = CN_R_PASS_FRAGMENT;
      return cn_finish_mon(skb, &p, &mon, v);
    case CN_PARSE_ICMP6_CONTROL:
      cn_count(CN_R_ICMP6_CONTROL, 0);
      return cn_finish_mon(skb, &p, &mon, v);
    case CN_PARSE_NON_IP:
      v.reason = CN_R_PASS_NON_IP;
      return cn_finish_mon(skb, &p, &mon, v);
    case CN_PARSE_IPV6:
      v.reason = CN_R_PASS_IPV6;
      return cn_finish_mon(skb, &p, &mon, v);
    default:
      v.action = TC_ACT_SHOT;
      v.reason = CN_R_DROP_MALFORMED;
      return cn_finish_mon(skb, &p, &mon, v);
  }
}
