// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cn_from_pod: tc ingress on the host side of a pod veth. Service flows are DNATed to a backend
 * (conntrack keeps the choice), replies of backends are reverse-DNATed, other pod traffic is
 * tracked so the uplink can tell replies from new flows. */
#include "lib/service.h"
#include "lib/sock_lb_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int cn_from_pod(struct __sk_buff* skb) {
  struct cn_pkt p = {};
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  __u32 zero = 0;
  struct cn_config* cfg = bpf_map_lookup_elem(&cn_config, &zero);
  if (!cfg) {
    v.reason = CN_R_DROP_NO_CONFIG;
    return cn_finish(skb, v);
  }
  if (cn_parse_verdict(cn_parse(skb, &p), &v)) return cn_finish(skb, v);
  __u32 now = cn_now_s();

  if (p.icmp_error) {
    v.reason = cn_rev_dnat_icmp_error(skb, &p, now);
    if (v.reason == CN_R_DROP_CSUM) v.action = TC_ACT_SHOT;
    return cn_finish(skb, v);
  }

  struct cn_ct_entry* e = cn_ct_lookup(&p.t, now);
  if (e && cn_ct_reopened(&p, e)) e = NULL;
  if (e) {
    cn_sock_lb_mark_hit(skb, cfg, e->flags);
    v.reason = cn_ct_apply(skb, cfg, &p, e, now, &v.action);
    if (v.reason >= CN_R_DROP_MALFORMED) v.action = TC_ACT_SHOT;
    return cn_finish(skb, v);
  }
  struct cn_svc_entry* svc = cn_svc_lookup(&p);
  if (svc) {
    struct cn_svc_entry s = *svc;
    return cn_finish(skb, cn_service_new(skb, cfg, &p, &s, now, 0));
  }
  return cn_finish(skb, cn_track_plain(skb, cfg, &p, now, cn_sock_lb_mark_new(skb, cfg, &p.t)));
}
