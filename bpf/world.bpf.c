// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Programs on the node uplink. cn_from_world (tc ingress): reverse SNAT of replies, NodePort and
 * ExternalIP load-balancing (SNAT to the node address for remote backends), tracking of inbound
 * flows to pods. cn_to_world (tc egress): masquerade of pod traffic leaving the cluster CIDR. */
#include "lib/monitor.h"
#include "lib/service.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int cn_from_world(struct __sk_buff* skb) {
  struct cn_pkt p = {};
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  struct cn_mon mon = {CN_HOOK_FROM_WORLD, 0, 0};
  __u32 zero = 0;
  struct cn_config* cfg = bpf_map_lookup_elem(&cn_config, &zero);
  if (!cfg) {
    v.reason = CN_R_DROP_NO_CONFIG;
    return cn_finish_mon(skb, &p, &mon, v);
  }
  if (cn_parse_verdict(cn_parse(skb, &p), &v)) return cn_finish_mon(skb, &p, &mon, v);
  __u32 now = cn_now_s();

  if (p.icmp_error) {
    v.reason = cn_rev_snat_icmp_error(skb, &p, now);
    if (v.reason == CN_R_DROP_CSUM) v.action = TC_ACT_SHOT;
    return cn_finish_mon(skb, &p, &mon, v);
  }

  __u32 snat = cn_rev_snat(skb, cfg, &p, now);
  if (snat >= CN_R_DROP_MALFORMED) {
    v.action = TC_ACT_SHOT;
    v.reason = snat;
    return cn_finish_mon(skb, &p, &mon, v);
  }
  struct cn_ct_entry* e = cn_ct_lookup(&p.t, now);
  if (e && cn_ct_reopened(&p, e)) e = NULL;
  if (e) {
    v.reason = cn_ct_apply(skb, cfg, &p, e, now, &v.action, 0);
    if (v.reason == CN_R_PASS) v.reason = snat;
    if (v.reason >= CN_R_DROP_MALFORMED) v.action = TC_ACT_SHOT;
    return cn_finish_mon(skb, &p, &mon, v);
  }
  if (snat == CN_R_REV_SNAT) {
    v.reason = snat;
    return cn_finish_mon(skb, &p, &mon, v);
  }
  struct cn_svc_entry* svc = cn_svc_lookup(&p);
  if (svc && (svc->flags & CN_SVC_F_EXTERNAL)) {
    mon.sample = cfg->monitor_sample_h; /* a new flow */
    struct cn_svc_entry s = *svc;
    return cn_finish_mon(skb, &p, &mon, cn_service_new(skb, cfg, &p, &s, now, 1));
  }
  if (cn_in_cluster(cfg, p.ipv6, &p.t.daddr)) {
    mon.sample = cfg->monitor_sample_h; /* a new flow */
    return cn_finish_mon(skb, &p, &mon, cn_track_plain(skb, cfg, &p, now, CN_CT_F_INBOUND));
  }
  return cn_finish_mon(skb, &p, &mon, v);
}

SEC("tc")
int cn_to_world(struct __sk_buff* skb) {
  struct cn_pkt p = {};
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  struct cn_mon mon = {CN_HOOK_TO_WORLD, 0, 0};
  __u32 zero = 0;
  struct cn_config* cfg = bpf_map_lookup_elem(&cn_config, &zero);
  if (!cfg) {
    v.reason = CN_R_DROP_NO_CONFIG;
    return cn_finish_mon(skb, &p, &mon, v);
  }
  if (cn_parse_verdict(cn_parse(skb, &p), &v)) return cn_finish_mon(skb, &p, &mon, v);
  if (!(cfg->flags & CN_CFG_F_MASQUERADE) || p.icmp_error) return cn_finish_mon(skb, &p, &mon, v);
  if (!cn_in_cluster(cfg, p.ipv6, &p.t.saddr) || cn_in_cluster(cfg, p.ipv6, &p.t.daddr) ||
      cn_is_node_addr(cfg, &p.t.daddr))
    return cn_finish_mon(skb, &p, &mon, v);
  union cn_addr node;
  if (!cn_node_addr(cfg, p.ipv6, &node))
    return cn_finish_mon(skb, &p, &mon, v); /* no address to SNAT to */
  __u32 now = cn_now_s();
  /* Replies of flows that entered from the uplink keep the pod address. */
  struct cn_ct_entry* e = cn_ct_lookup(&p.t, now);
  if (e && (e->flags & CN_CT_F_REPLY)) return cn_finish_mon(skb, &p, &mon, v);
  v.reason = cn_snat(skb, cfg, &p, &node, now);
  if (v.reason != CN_R_SNAT) v.action = TC_ACT_SHOT;
  return cn_finish_mon(skb, &p, &mon, v);
}
