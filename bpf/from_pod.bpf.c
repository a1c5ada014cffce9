// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cn_from_pod: tc ingress on the host side of a pod veth. Service flows are DNATed to a backend
 * (conntrack keeps the choice), replies of backends are reverse-DNATed, a pod reaching itself
 * through a Service (hairpin) is also SNATed to the node address and sent back out of its veth,
 * other pod traffic is tracked so the uplink can tell replies from new flows. */
#include "lib/monitor.h"
#include "lib/service.h"
#include "lib/sock_lb_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int cn_from_pod(struct __sk_buff* skb) {
  struct cn_pkt p = {};
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  struct cn_mon mon = {CN_HOOK_FROM_POD, 0, 0};
  __u32 zero = 0;
  struct cn_config* cfg = bpf_map_lookup_elem(&cn_config, &zero);
  if (!cfg) {
    v.reason = CN_R_DROP_NO_CONFIG;
    return cn_finish_mon(skb, &p, &mon, v);
  }
  if (cn_parse_verdict(cn_parse(skb, &p), &v)) return cn_finish_mon(skb, &p, &mon, v);
  __u32 now = cn_now_s();

  if (p.icmp_error) {
    v.reason = cn_rev_dnat_icmp_error(skb, &p, now);
    if (v.reason == CN_R_DROP_CSUM) v.action = TC_ACT_SHOT;
    return cn_finish_mon(skb, &p, &mon, v);
  }

  /* A pod's reply to a hairpinned flow is addressed to the node address it was SNATed to. */
  __u32 snat = CN_R_PASS;
  if (cn_is_node_addr(cfg, &p.t.daddr)) {
    snat = cn_rev_snat(skb, cfg, &p, now);
    if (snat >= CN_R_DROP_MALFORMED) {
      v.action = TC_ACT_SHOT;
      v.reason = snat;
      return cn_finish_mon(skb, &p, &mon, v);
    }
  }

  struct cn_ct_entry* e = cn_ct_lookup(&p.t, now);
  if (e && cn_ct_reopened(&p, e)) e = NULL;
  if (e) {
    cn_sock_lb_mark_hit(skb, cfg, e->flags);
    v.reason = cn_ct_apply(skb, cfg, &p, e, now, &v.action, 1);
    if (v.reason == CN_R_PASS) v.reason = snat;
    if (v.reason >= CN_R_DROP_MALFORMED) v.action = TC_ACT_SHOT;
  } else if (snat == CN_R_REV_SNAT) {
    v.reason = snat; /* its flow is gone: the stack routes it */
  } else {
    mon.sample = cfg->monitor_sample_h; /* a new flow */
    struct cn_svc_entry* svc = cn_svc_lookup(&p);
    if (svc) {
      struct cn_svc_entry s = *svc;
      v = cn_service_new(skb, cfg, &p, &s, now, 0);
    } else {
      v = cn_track_plain(skb, cfg, &p, now, cn_sock_lb_mark_new(skb, cfg, &p.t));
    }
  }
  /* Hairpin: DNATed to the pod it came from (new flow or conntrack hit). */
  if (v.reason == CN_R_DNAT && cn_addr_eq(&p.t.daddr, &p.t.saddr))
    v = cn_hairpin_snat(skb, cfg, &p, now);
  return cn_finish_mon(skb, &p, &mon, v);
}
