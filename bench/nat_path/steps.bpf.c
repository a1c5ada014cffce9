// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Cost breakdown of the datapath's from-pod program: prefixes of its two main paths built from
 * the same bpf/lib code, each stopping after one more step. The benchmark loads this object on
 * the maps of a running Datapath (libbpf map reuse) and runs every program through the harness
 * exactly like the real one, so the differences between consecutive rows are what each step
 * costs. Every program returns TC_ACT_OK only when its path went as expected (else
 * TC_ACT_SHOT), which the benchmark checks. The same programs run on the IPv6 twins of the
 * packets. */
#include "lib/service.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NB_PROLOGUE                                               \
  struct cn_pkt p = {};                                           \
  __u32 zero = 0;                                                 \
  struct cn_config* cfg = bpf_map_lookup_elem(&cn_config, &zero); \
  if (!cfg) return TC_ACT_SHOT;                                   \
  if (cn_parse(skb, &p) != CN_PARSE_OK) return TC_ACT_SHOT;

/* Established flow: parse, clock, conntrack lookup, conntrack update + counters; the full
 * program adds the DNAT rewrite. */
SEC("tc")
int nb_est_parse(struct __sk_buff* skb) {
  NB_PROLOGUE
  return TC_ACT_OK;
}

SEC("tc")
int nb_est_clock(struct __sk_buff* skb) {
  NB_PROLOGUE
  __u32 now = cn_now_s();
  return now ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("tc")
int nb_est_ct_lookup(struct __sk_buff* skb) {
  NB_PROLOGUE
  __u32 now = cn_now_s();
  struct cn_ct_entry* e = cn_ct_lookup(&p.t, now);
  return e ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("tc")
int nb_est_ct_update(struct __sk_buff* skb) {
  NB_PROLOGUE
  __u32 now = cn_now_s();
  struct cn_ct_entry* e = cn_ct_lookup(&p.t, now);
  if (!e) return TC_ACT_SHOT;
  struct cn_tuple key = p.t;
  cn_ct_update(cfg, &key, e, &p, skb->len, now);
  cn_count(CN_R_CT_HIT, 0);
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  return cn_finish(skb, v);
}

/* New flow: parse + clock + conntrack miss, service lookup, backend selection (Maglev),
 * conntrack pair creation; the full program adds the DNAT rewrite and counters. */
SEC("tc")
int nb_new_ct_miss(struct __sk_buff* skb) {
  NB_PROLOGUE
  __u32 now = cn_now_s();
  return cn_ct_lookup(&p.t, now) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int nb_new_service(struct __sk_buff* skb) {
  NB_PROLOGUE
  __u32 now = cn_now_s();
  if (cn_ct_lookup(&p.t, now)) return TC_ACT_SHOT;
  return cn_svc_lookup(&p) ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("tc")
int nb_new_backend(struct __sk_buff* skb) {
  NB_PROLOGUE
  __u32 now = cn_now_s();
  if (cn_ct_lookup(&p.t, now)) return TC_ACT_SHOT;
  struct cn_svc_entry* svc = cn_svc_lookup(&p);
  if (!svc) return TC_ACT_SHOT;
  struct cn_svc_entry s = *svc;
  __u32 id = 0;
  struct cn_backend be = {};
  return cn_lb_select(&s, &p, now, &id, &be) == CN_LB_OK ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("tc")
int nb_new_ct_create(struct __sk_buff* skb) {
  NB_PROLOGUE
  __u32 now = cn_now_s();
  if (cn_ct_lookup(&p.t, now)) return TC_ACT_SHOT;
  struct cn_svc_entry* svc = cn_svc_lookup(&p);
  if (!svc) return TC_ACT_SHOT;
  struct cn_svc_entry s = *svc;
  __u32 id = 0;
  struct cn_backend be = {};
  if (cn_lb_select(&s, &p, now, &id, &be) != CN_LB_OK) return TC_ACT_SHOT;
  __u16 port = be.port ? be.port : p.t.dport;
  if (cn_ct_create(cfg, &p, skb->len, now, &be.addr, port, CN_CT_F_SERVICE, s.svc_id, id) < 0)
    return TC_ACT_SHOT;
  return TC_ACT_OK;
}

/* The established flow's rewrite, split (rows 6-8, each compared with row 4): steps 1-4, then
 * only the DNAT port rewrite, or only the DNAT address rewrite, which is where IPv6 and IPv4
 * differ (bpf/lib/csum.h cn_rewrite_addr). */
#define NB_EST_UPDATED                                   \
  NB_PROLOGUE                                            \
  __u32 now = cn_now_s();                                \
  struct cn_ct_entry* e = cn_ct_lookup(&p.t, now);       \
  if (!e) return TC_ACT_SHOT;                            \
  struct cn_tuple key = p.t;                             \
  cn_ct_update(cfg, &key, e, &p, skb->len, now);         \
  cn_count(CN_R_CT_HIT, 0);                              \
  if (!(e->flags & CN_CT_F_SERVICE)) return TC_ACT_SHOT; \
  union cn_addr nat_addr = e->nat_addr;                  \
  __u16 nat_port = e->nat_port;                          \
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};

SEC("tc")
int nb_est_dnat_port(struct __sk_buff* skb) {
  NB_EST_UPDATED;
  (void)nat_addr;
  if (cn_rewrite_port(skb, &p, 1, p.t.dport, nat_port) < 0) return TC_ACT_SHOT;
  return cn_finish(skb, v);
}

SEC("tc")
int nb_est_dnat_addr(struct __sk_buff* skb) {
  NB_EST_UPDATED;
  (void)nat_port;
  if (cn_rewrite_addr(skb, &p, 1, &p.t.daddr, &nat_addr) < 0) return TC_ACT_SHOT;
  return cn_finish(skb, v);
}

/* SNAT new flow (cn_to_world's path, bpf/lib/nat.h): parse + clock + conntrack miss is
 * nb_new_ct_miss; then the egress mapping lookup (miss), the port index lookup (the allocator's
 * set-up and first block), the allocation (ingress claim, index bit, egress mapping); the full
 * program adds the masquerade checks, the rewrite and the counters. */
#define NB_SNAT_MISS                                                                       \
  NB_PROLOGUE                                                                              \
  __u32 now = cn_now_s();                                                                  \
  if (cn_ct_lookup(&p.t, now)) return TC_ACT_SHOT;                                         \
  union cn_addr node;                                                                      \
  if (!cn_node_addr(cfg, p.ipv6, &node)) return TC_ACT_SHOT;                               \
  struct cn_tuple ek;                                                                      \
  cn_nat_key(&ek, &p.t.saddr, &p.t.daddr, p.t.sport, p.t.dport, p.t.proto, CN_NAT_EGRESS); \
  if (bpf_map_lookup_elem(&cn_nat, &ek)) return TC_ACT_SHOT;

SEC("tc")
int nb_snat_egress_miss(struct __sk_buff* skb) {
  NB_SNAT_MISS
  return TC_ACT_OK;
}

SEC("tc")
int nb_snat_index(struct __sk_buff* skb) {
  NB_SNAT_MISS
  struct cn_nat_ports_key pk = {};
  pk.node = node;
  pk.remote = p.t.daddr;
  pk.rport = p.t.dport;
  pk.proto = p.t.proto;
  __u32 rnd = bpf_get_prandom_u32();
  pk.block = (__u16)(bpf_ntohs(p.t.sport) >> 6);
  __u64* bits = bpf_map_lookup_elem(&cn_nat_ports, &pk);
  return (bits && *bits == ~0ULL && rnd == 1) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int nb_snat_alloc(struct __sk_buff* skb) {
  NB_PROLOGUE
  __u32 now = cn_now_s();
  if (cn_ct_lookup(&p.t, now)) return TC_ACT_SHOT;
  union cn_addr node;
  if (!cn_node_addr(cfg, p.ipv6, &node)) return TC_ACT_SHOT;
  __u16 port = 0;
  return cn_snat_mapping(cfg, &p, &node, now, &port) == CN_R_SNAT ? TC_ACT_OK : TC_ACT_SHOT;
}
