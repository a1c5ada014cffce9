// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cn_to_pod: tc egress on the host side of a pod veth, i.e. traffic towards the pod after any
 * service DNAT. Enforces the pod's ingress policy (NetworkPolicy ingress rules, isolated
 * namespaces) on new flows; see lib/policy.h. */
#include "lib/policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int cn_to_pod(struct __sk_buff* skb) {
  struct cn_pkt p = {};
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  __u32 zero = 0;
  struct cn_config* cfg = bpf_map_lookup_elem(&cn_config, &zero);
  if (!cfg) {
    v.reason = CN_R_DROP_NO_CONFIG;
    return cn_finish(skb, v);
  }
  int res = cn_parse(skb, &p);
  switch (res) {
    case CN_PARSE_OK:
      return cn_finish(skb, cn_policy_ingress(skb, cfg, &p, 1, 0));
    case CN_PARSE_FRAGMENT:
    case CN_PARSE_OTHER_L4:
      /* Checked statelessly; never tracked (the other programs pass these untracked). */
      v = cn_policy_ingress(skb, cfg, &p, 0, res == CN_PARSE_FRAGMENT);
      if (v.action == TC_ACT_OK && res == CN_PARSE_FRAGMENT) v.reason = CN_R_PASS_FRAGMENT;
      return cn_finish(skb, v);
    case CN_PARSE_ICMP6_CONTROL:
      cn_count(CN_R_ICMP6_CONTROL, 0);
      return cn_finish(skb, v);
    case CN_PARSE_NON_IP:
      v.reason = CN_R_PASS_NON_IP;
      return cn_finish(skb, v);
    case CN_PARSE_IPV6:
      v.reason = CN_R_PASS_IPV6;
      return cn_finish(skb, v);
    default:
      v.action = TC_ACT_SHOT;
      v.reason = CN_R_DROP_MALFORMED;
      return cn_finish(skb, v);
  }
}
