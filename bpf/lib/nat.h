/* SNAT/masquerade: port allocation (keep the original port when free, else a random start and
 * linear probing within a bounded budget), mappings for both directions, reverse SNAT. */
#ifndef CNINET_BPF_LIB_NAT_H_
#define CNINET_BPF_LIB_NAT_H_

#include "lib/conntrack.h"
#include "lib/csum.h"
#include "lib/maps.h"

/* Compile-time bound of the probing loop; cn_config.nat_retries limits it further at run time. */
#define CN_NAT_MAX_TRIES 64

static __always_inline void cn_nat_key(struct cn_tuple* k, const union cn_addr* saddr,
                                       const union cn_addr* daddr, __u16 sport, __u16 dport,
                                       __u8 proto, __u8 dir) {
  k->saddr = *saddr;
  k->daddr = *daddr;
  k->sport = sport;
  k->dport = dport;
  k->proto = proto;
  k->pad[0] = dir;
  k->pad[1] = 0;
  k->pad[2] = 0;
}

static __always_inline __u32 cn_nat_lifetime(const struct cn_config* cfg, const struct cn_pkt* p,
                                             const struct cn_nat_entry* e) {
  __u16 f = cn_ct_tcp_state_flags(p);
  if (e && e->tcp_closing) f |= CN_CT_F_CLOSING;
  return cn_ct_lifetime(cfg, p->t.proto, f);
}

static __always_inline void cn_nat_touch(const struct cn_config* cfg, const struct cn_pkt* p,
                                         struct cn_nat_entry* e, __u32 now) {
  if ((p->tcp_flags & (CN_TCP_FIN | CN_TCP_RST)) && !e->tcp_closing) e->tcp_closing = 1;
  __u32 exp = now + cn_nat_lifetime(cfg, p, e);
  if (e->expires_s != exp) e->expires_s = exp;
}

/* A claimed port whose mapping pair is entirely expired may be taken over. The egress key is
 * built in `k` itself (the ingress key being claimed) and `k` restored after: the probing
 * callback's frame adds to the caller's in the 512-byte stack, so it keeps no key of its own. */
static __always_inline int cn_nat_stale(struct cn_tuple* k, __u32 now) {
  struct cn_nat_entry* in = bpf_map_lookup_elem(&cn_nat, k);
  if (!in) return 1;
  if (in->expires_s >= now) return 0;
  union cn_addr node = k->daddr;
  __u16 cand = k->dport;
  k->daddr = k->saddr;
  k->dport = k->sport;
  k->saddr = in->to_addr;
  k->sport = in->to_port;
  k->pad[0] = CN_NAT_EGRESS;
  struct cn_nat_entry* eg = bpf_map_lookup_elem(&cn_nat, k);
  int stale = !eg || eg->expires_s < now;
  if (eg && stale) bpf_map_delete_elem(&cn_nat, k);
  k->saddr = k->daddr;
  k->sport = k->dport;
  k->daddr = node;
  k->dport = cand;
  k->pad[0] = CN_NAT_INGRESS;
  return stale;
}

/* State of the SNAT port probing loop (run with bpf_loop so the verifier checks it once). */
struct cn_nat_probe {
  struct cn_tuple ik; /* ingress key being claimed; its dport is the candidate */
  struct cn_nat_entry in_val;
  __u32 now, min, range, start, orig, tries;
  __u8 keep, found, full; /* bytes: the state counts against the 512-byte stack */
  __u16 port;
};

static long cn_nat_probe_cb(__u32 i, void* ctx) {
  struct cn_nat_probe* c = ctx;
  if (i >= c->tries || c->range == 0) return 1;
  __u32 cand = (i == 0 && c->keep) ? c->orig : c->min + (c->start + i) % c->range;
  c->port = bpf_htons((__u16)cand);
  c->ik.dport = c->port;
  long ret = bpf_map_update_elem(&cn_nat, &c->ik, &c->in_val, BPF_NOEXIST);
  if (ret == 0) {
    c->found = 1;
    return 1;
  }
  if (ret != -17 /* EEXIST */) {
    c->full = 1;
    return 1;
  }
  if (cn_nat_stale(&c->ik, c->now) &&
      bpf_map_update_elem(&cn_nat, &c->ik, &c->in_val, BPF_ANY) == 0) {
    c->found = 1;
    return 1;
  }
  __u32 r = CN_R_NAT_PORT_RETRY;
  struct cn_counter* cnt = bpf_map_lookup_elem(&cn_counters, &r);
  if (cnt) cnt->packets += 1;
  return 0;
}

/* Finds or creates the SNAT mapping of the packet's flow to `node_addr`; returns the port to use
 * (network order) in *port_out, or a drop reason. */
static __always_inline __u32 cn_snat_mapping(const struct cn_config* cfg, const struct cn_pkt* p,
                                             const union cn_addr* node_addr, __u32 now,
                                             __u16* port_out) {
  /* Block scopes keep the stack small: the probing state and the callback's frame count
   * together against the 512-byte limit. */
  {
    struct cn_tuple ek;
    cn_nat_key(&ek, &p->t.saddr, &p->t.daddr, p->t.sport, p->t.dport, p->t.proto, CN_NAT_EGRESS);
    struct cn_nat_entry* e = bpf_map_lookup_elem(&cn_nat, &ek);
    if (e && cn_addr_eq(&e->to_addr, node_addr)) {
      /* Still ours when the ingress claim points back at this flow. */
      __u16 to_port = e->to_port;
      cn_nat_key(&ek, &p->t.daddr, node_addr, p->t.dport, to_port, p->t.proto, CN_NAT_INGRESS);
      struct cn_nat_entry* in = bpf_map_lookup_elem(&cn_nat, &ek);
      if (in && cn_addr_eq(&in->to_addr, &p->t.saddr) && in->to_port == p->t.sport) {
        cn_nat_touch(cfg, p, e, now);
        cn_nat_touch(cfg, p, in, now);
        *port_out = to_port;
        return CN_R_SNAT;
      }
    }
  }

  __u32 min = cfg->nat_port_min_h, max = cfg->nat_port_max_h;
  if (max < min) return CN_R_DROP_NAT_NO_PORT;
  __u32 range = max - min + 1;
  __u32 orig = bpf_ntohs(p->t.sport);

  struct cn_nat_probe pr = {};
  pr.in_val.to_addr = p->t.saddr;
  pr.in_val.to_port = p->t.sport;
  pr.in_val.created_s = now;
  pr.in_val.expires_s = now + cn_nat_lifetime(cfg, p, 0);
  pr.in_val.tcp_closing = (p->tcp_flags & (CN_TCP_FIN | CN_TCP_RST)) ? 1 : 0;
  cn_nat_key(&pr.ik, &p->t.daddr, node_addr, p->t.dport, 0, p->t.proto, CN_NAT_INGRESS);
  pr.now = now;
  pr.min = min;
  pr.range = range;
  pr.start = bpf_get_prandom_u32() % range;
  pr.orig = orig;
  pr.keep = orig >= min && orig <= max;
  pr.tries = (__u32)cfg->nat_retries + 1;
  bpf_loop(CN_NAT_MAX_TRIES, cn_nat_probe_cb, &pr, 0);
  if (pr.full) return CN_R_DROP_NAT_FULL;
  if (!pr.found) return CN_R_DROP_NAT_NO_PORT;
  __u16 port = pr.port;

  /* The egress mapping reuses the probe's key and value with the node address and port (no
   * other key on the stack: it is tight). */
  cn_nat_key(&pr.ik, &p->t.saddr, &p->t.daddr, p->t.sport, p->t.dport, p->t.proto, CN_NAT_EGRESS);
  pr.in_val.to_addr = *node_addr;
  pr.in_val.to_port = port;
  if (bpf_map_update_elem(&cn_nat, &pr.ik, &pr.in_val, BPF_ANY) != 0) {
    cn_nat_key(&pr.ik, &p->t.daddr, node_addr, p->t.dport, port, p->t.proto, CN_NAT_INGRESS);
    bpf_map_delete_elem(&cn_nat, &pr.ik);
    return CN_R_DROP_NAT_FULL;
  }
  __u32 r = CN_R_NAT_NEW;
  struct cn_counter* c = bpf_map_lookup_elem(&cn_counters, &r);
  if (c) c->packets += 1;
  *port_out = port;
  return CN_R_SNAT;
}

/* SNATs the packet's source to node_addr. Updates p->t. Returns CN_R_SNAT or a drop reason
 * (CN_R_DROP_MALFORMED for IPv6 UDP without a checksum). */
static __always_inline __u32 cn_snat(struct __sk_buff* skb, const struct cn_config* cfg,
                                     struct cn_pkt* p, const union cn_addr* node_addr, __u32 now) {
  if (cn_udp6_no_csum(skb, p)) return CN_R_DROP_MALFORMED;
  __u16 port = 0;
  __u32 reason = cn_snat_mapping(cfg, p, node_addr, now, &port);
  if (reason != CN_R_SNAT) return reason;
  if (cn_rewrite_port(skb, p, 0, p->t.sport, port) < 0) return CN_R_DROP_CSUM;
  if (cn_rewrite_addr(skb, p, 0, &p->t.saddr, node_addr) < 0) return CN_R_DROP_CSUM;
  p->t.saddr = *node_addr;
  p->t.sport = port;
  return CN_R_SNAT;
}

/* Reverse SNAT of a reply arriving at a translated address. Updates p->t. Returns CN_R_REV_SNAT,
 * CN_R_PASS when no mapping exists, or a drop reason. */
static __always_inline __u32 cn_rev_snat(struct __sk_buff* skb, const struct cn_config* cfg,
                                         struct cn_pkt* p, __u32 now) {
  struct cn_tuple ik;
  cn_nat_key(&ik, &p->t.saddr, &p->t.daddr, p->t.sport, p->t.dport, p->t.proto, CN_NAT_INGRESS);
  struct cn_nat_entry* in = bpf_map_lookup_elem(&cn_nat, &ik);
  if (!in || in->expires_s < now) return CN_R_PASS;
  if (cn_udp6_no_csum(skb, p)) return CN_R_DROP_MALFORMED;
  union cn_addr to_addr = in->to_addr;
  __u16 to_port = in->to_port;
  cn_nat_touch(cfg, p, in, now);
  if (cn_rewrite_port(skb, p, 1, p->t.dport, to_port) < 0) return CN_R_DROP_CSUM;
  if (cn_rewrite_addr(skb, p, 1, &p->t.daddr, &to_addr) < 0) return CN_R_DROP_CSUM;
  p->t.daddr = to_addr;
  p->t.dport = to_port;
  return CN_R_REV_SNAT;
}

/* ICMP error about a SNATed flow (quoted: node_addr:port -> remote): restores the original source
 * in the outer destination and the quoted header. Returns CN_R_REV_SNAT or CN_R_PASS. */
static __always_inline __u32 cn_rev_snat_icmp_error(struct __sk_buff* skb, struct cn_pkt* p,
                                                    __u32 now) {
  struct cn_tuple ik;
  cn_nat_key(&ik, &p->inner.daddr, &p->inner.saddr, p->inner.dport, p->inner.sport, p->inner.proto,
             CN_NAT_INGRESS);
  struct cn_nat_entry* in = bpf_map_lookup_elem(&cn_nat, &ik);
  if (!in || in->expires_s < now) return CN_R_PASS;
  union cn_addr to_addr = in->to_addr;
  __u16 to_port = in->to_port;
  if (cn_rewrite_inner_port(skb, p, 0, p->inner.sport, to_port) < 0) return CN_R_DROP_CSUM;
  if (cn_rewrite_inner_addr(skb, p, 0, &p->inner.saddr, &to_addr) < 0) return CN_R_DROP_CSUM;
  if (cn_rewrite_addr(skb, p, 1, &p->t.daddr, &to_addr) < 0) return CN_R_DROP_CSUM;
  __u32 r = CN_R_ICMP_ERROR_XLATED;
  struct cn_counter* c = bpf_map_lookup_elem(&cn_counters, &r);
  if (c) c->packets += 1;
  return CN_R_REV_SNAT;
}

#endif /* CNINET_BPF_LIB_NAT_H_ */
