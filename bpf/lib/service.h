/* The load-balancing path shared by the pod and uplink programs: conntrack hit -> (reverse)
 * DNAT; miss -> service lookup, backend selection, conntrack pair, DNAT; no backend -> reject. */
#ifndef CNINET_BPF_LIB_SERVICE_H_
#define CNINET_BPF_LIB_SERVICE_H_

#include "lib/conntrack.h"
#include "lib/counters.h"
#include "lib/csum.h"
#include "lib/lb.h"
#include "lib/nat.h"
#include "lib/reject.h"

static __always_inline int cn_is_node_addr(const struct cn_config* cfg, const union cn_addr* addr) {
  if (cn_addr_is_zero(addr)) return 0;
#pragma unroll
  for (int i = 0; i < CN_MAX_NODE_ADDRS; i++)
    if (cn_addr_eq(&cfg->node_addrs[i], addr)) return 1;
  return 0;
}

/* The first node address of the packet's family (the SNAT address); 0 when there is none. */
static __always_inline int cn_node_addr(const struct cn_config* cfg, int ipv6, union cn_addr* out) {
#pragma unroll
  for (int i = 0; i < CN_MAX_NODE_ADDRS; i++) {
    const union cn_addr* a = &cfg->node_addrs[i];
    if (!cn_addr_is_zero(a) && cn_addr_is_v4(a) == !ipv6) {
      *out = *a;
      return 1;
    }
  }
  return 0;
}

/* True when `addr` (of the packet's family) is inside that family's cluster CIDR. */
static __always_inline int cn_in_cluster(const struct cn_config* cfg, int ipv6,
                                         const union cn_addr* addr) {
  int fam = ipv6 ? CN_FAM_V6 : CN_FAM_V4;
  if (cfg->cluster_prefix_len[fam] == 0) return 0;
  const union cn_addr* net = &cfg->cluster_net[fam];
  const union cn_addr* mask = &cfg->cluster_mask[fam];
  return (((addr->a32[0] & mask->a32[0]) ^ net->a32[0]) |
          ((addr->a32[1] & mask->a32[1]) ^ net->a32[1]) |
          ((addr->a32[2] & mask->a32[2]) ^ net->a32[2]) |
          ((addr->a32[3] & mask->a32[3]) ^ net->a32[3])) == 0;
}

static __always_inline int cn_is_icmp_proto(__u8 proto) {
  return proto == CN_IPPROTO_ICMP || proto == CN_IPPROTO_ICMPV6;
}

/* Destination rewrite to a backend (ICMP echo keeps its id). Updates p->t. */
static __always_inline int cn_dnat(struct __sk_buff* skb, struct cn_pkt* p,
                                   const union cn_addr* addr, __u16 port) {
  if (!cn_is_icmp_proto(p->t.proto) && port != 0) {
    if (cn_rewrite_port(skb, p, 1, p->t.dport, port) < 0) return -1;
    p->t.dport = port;
  }
  if (cn_rewrite_addr(skb, p, 1, &p->t.daddr, addr) < 0) return -1;
  p->t.daddr = *addr;
  return 0;
}

/* Source rewrite of a reply back to the service address. Updates p->t. */
static __always_inline int cn_rev_dnat(struct __sk_buff* skb, struct cn_pkt* p,
                                       const union cn_addr* addr, __u16 port) {
  if (!cn_is_icmp_proto(p->t.proto)) {
    if (cn_rewrite_port(skb, p, 0, p->t.sport, port) < 0) return -1;
    p->t.sport = port;
  }
  if (cn_rewrite_addr(skb, p, 0, &p->t.saddr, addr) < 0) return -1;
  p->t.saddr = *addr;
  return 0;
}

/* ICMP error sent by a backend about a service flow (quoted: client -> backend): restores the
 * service address in the outer source and in the quoted destination. */
static __always_inline __u32 cn_rev_dnat_icmp_error(struct __sk_buff* skb, struct cn_pkt* p,
                                                    __u32 now) {
  struct cn_tuple rt = {};
  rt.saddr = p->inner.daddr;
  rt.daddr = p->inner.saddr;
  rt.sport = p->inner.dport;
  rt.dport = p->inner.sport;
  rt.proto = p->inner.proto;
  struct cn_ct_entry* e = cn_ct_lookup(&rt, now);
  if (!e || !(e->flags & CN_CT_F_REPLY) || !(e->flags & CN_CT_F_SERVICE)) return CN_R_PASS;
  union cn_addr vip = e->nat_addr;
  __u16 vport = e->nat_port;
  union cn_addr backend = p->inner.daddr;
  if (cn_rewrite_inner_port(skb, p, 1, p->inner.dport, vport) < 0) return CN_R_DROP_CSUM;
  if (cn_rewrite_inner_addr(skb, p, 1, &backend, &vip) < 0) return CN_R_DROP_CSUM;
  if (cn_addr_eq(&p->t.saddr, &backend) && cn_rewrite_addr(skb, p, 0, &backend, &vip) < 0)
    return CN_R_DROP_CSUM;
  cn_count(CN_R_ICMP_ERROR_XLATED, 0);
  return CN_R_REV_DNAT;
}

#define CN_AF_INET 2
#define CN_AF_INET6 10

/* Sends a packet where bpf_fib_lookup (result `rc`) routes it: next-hop MACs and a redirect, or
 * redirect_neigh when the neighbour is not resolved yet. */
static __always_inline int cn_fib_forward(struct __sk_buff* skb, const struct bpf_fib_lookup* fib,
                                          long rc) {
  if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) return bpf_redirect_neigh(fib->ifindex, 0, 0, 0);
  __u8 macs[12];
  __builtin_memcpy(macs, fib->dmac, 6);
  __builtin_memcpy(macs + 6, fib->smac, 6);
  if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0) return TC_ACT_SHOT;
  return bpf_redirect(fib->ifindex, 0);
}

/* cn_route_local_src for IPv6: FIB lookup AF_INET6, hop limit decrement (no header checksum). */
static __always_inline int cn_route_local_src6(struct __sk_buff* skb, const struct cn_pkt* p) {
  struct bpf_fib_lookup fib = {};
  fib.family = CN_AF_INET6;
  fib.l4_protocol = p->t.proto;
  fib.sport = p->t.sport;
  fib.dport = p->t.dport;
  fib.tot_len = (__u16)(skb->len - p->l3_off);
  __builtin_memcpy(fib.ipv6_src, p->t.saddr.a32, 16);
  __builtin_memcpy(fib.ipv6_dst, p->t.daddr.a32, 16);
  fib.ifindex = skb->ifindex;
  long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
  if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) return TC_ACT_OK;
  __u8 hop;
  if (bpf_skb_load_bytes(skb, p->l3_off + 7, &hop, 1) < 0) return TC_ACT_OK;
  if (hop <= 1) return TC_ACT_OK; /* the stack sends time exceeded */
  hop -= 1;
  if (bpf_skb_store_bytes(skb, p->l3_off + 7, &hop, 1, 0) < 0) return TC_ACT_SHOT;
  return cn_fib_forward(skb, &fib, rc);
}

/* A reply whose source became a node address (NodePort) cannot go up the stack: the kernel would
 * drop it as a martian (local source arriving from outside). Route it here instead: FIB lookup,
 * TTL decrement, MAC rewrite, redirect (or redirect_neigh when the neighbour is unresolved).
 * Returns the tc action; TC_ACT_OK when there is no route (left to the stack). */
static __always_inline int cn_route_local_src(struct __sk_buff* skb, const struct cn_pkt* p) {
  if (p->ipv6) return cn_route_local_src6(skb, p);
  struct bpf_fib_lookup fib = {};
  fib.family = CN_AF_INET;
  fib.l4_protocol = p->t.proto;
  fib.sport = p->t.sport;
  fib.dport = p->t.dport;
  fib.tot_len = (__u16)(skb->len - p->l3_off);
  fib.ipv4_src = p->t.saddr.a32[3];
  fib.ipv4_dst = p->t.daddr.a32[3];
  fib.ifindex = skb->ifindex;
  long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
  if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) return TC_ACT_OK;
  __u16 old_word, new_word;
  if (bpf_skb_load_bytes(skb, p->l3_off + 8, &old_word, 2) < 0) return TC_ACT_OK;
  __u8* ttl = (__u8*)&old_word;
  if (*ttl <= 1) return TC_ACT_OK; /* the stack sends time exceeded */
  new_word = old_word;
  ((__u8*)&new_word)[0] = *ttl - 1;
  if (bpf_l3_csum_replace(skb, p->l3_off + CN_IP_CSUM_OFF, old_word, new_word, 2) < 0)
    return TC_ACT_SHOT;
  if (bpf_skb_store_bytes(skb, p->l3_off + 8, &new_word, 2, 0) < 0) return TC_ACT_SHOT;
  return cn_fib_forward(skb, &fib, rc);
}

/* Both directions of a hairpin flow (a pod reaching itself through a Service, SNATed to the node
 * address; CN_CT_F_SNAT without CN_CT_F_NODEPORT) leave through the veth they came in on: the stack
 * would drop a node address as the source (martian) and would answer a packet routed back out of
 * its ingress interface with an ICMP redirect. MACs are swapped, the TTL is left alone (as for the
 * reject). Returns the tc action. */
static __always_inline int cn_hairpin_back(struct __sk_buff* skb, const struct cn_pkt* p) {
  /* Straight from the parsed copy (no 12-byte buffer: the stack is tight). */
  if (bpf_skb_store_bytes(skb, 0, p->src_mac, 6, 0) < 0 ||
      bpf_skb_store_bytes(skb, 6, p->dst_mac, 6, 0) < 0)
    return TC_ACT_SHOT;
  return bpf_redirect(skb->ifindex, 0);
}

/* Applies a conntrack hit. Returns the verdict reason (CN_R_PASS for untranslated flows; IPv6 UDP
 * without a checksum in a service flow is dropped as malformed). `from_pod`: replies of hairpin
 * flows are sent back out of the pod's veth (*action); their forward packets are left DNATed
 * for cn_hairpin_snat(). */
static __always_inline __u32 cn_ct_apply(struct __sk_buff* skb, const struct cn_config* cfg,
                                         struct cn_pkt* p, struct cn_ct_entry* e, __u32 now,
                                         int* action, int from_pod) {
  if ((e->flags & CN_CT_F_SERVICE) && cn_udp6_no_csum(skb, p)) return CN_R_DROP_MALFORMED;
  struct cn_tuple key = p->t;
  cn_ct_update(cfg, &key, e, p, skb->len, now);
  cn_count(CN_R_CT_HIT, 0);
  __u16 flags = e->flags;
  union cn_addr nat_addr = e->nat_addr;
  __u16 nat_port = e->nat_port;
  if (!(flags & CN_CT_F_SERVICE)) return CN_R_PASS;
  int hairpin = from_pod && (flags & (CN_CT_F_SNAT | CN_CT_F_NODEPORT)) == CN_CT_F_SNAT;
  if (flags & CN_CT_F_REPLY) {
    if (cn_rev_dnat(skb, p, &nat_addr, nat_port) < 0) return CN_R_DROP_CSUM;
    if (action && hairpin)
      *action = cn_hairpin_back(skb, p);
    else if (action && cn_is_node_addr(cfg, &nat_addr))
      *action = cn_route_local_src(skb, p);
    return CN_R_REV_DNAT;
  }
  if (cn_dnat(skb, p, &nat_addr, nat_port) < 0) return CN_R_DROP_CSUM;
  if ((flags & CN_CT_F_REMOTE) && cfg->service_mark) skb->mark |= cfg->service_mark;
  /* A hairpin's SNAT follows in from-pod (cn_hairpin_snat(), one copy: the stack is tight). */
  if ((flags & CN_CT_F_SNAT) && !from_pod) {
    union cn_addr node;
    if (!cn_node_addr(cfg, p->ipv6, &node)) return CN_R_DROP_NAT_NO_PORT;
    __u32 r = cn_snat(skb, cfg, p, &node, now);
    if (r != CN_R_SNAT) return r;
  }
  return CN_R_DNAT;
}

/* A new flow to a service: select, track, translate; reject without backends. `from_world`
 * enables SNAT to the node address for remote backends. IPv6 UDP without a checksum is dropped
 * as malformed before anything is tracked. */
static __always_inline struct cn_verdict cn_service_new(struct __sk_buff* skb,
                                                        const struct cn_config* cfg,
                                                        struct cn_pkt* p,
                                                        const struct cn_svc_entry* svc, __u32 now,
                                                        int from_world) {
  struct cn_verdict v = {TC_ACT_SHOT, CN_R_DROP_NO_BACKEND};
  if (cn_udp6_no_csum(skb, p)) {
    v.reason = CN_R_DROP_MALFORMED;
    return v;
  }
  __u32 backend_id = 0;
  struct cn_backend be = {};
  int lb = cn_lb_select(svc, p, now, &backend_id, &be);
  if (lb == CN_LB_BACKEND_GONE) {
    v.reason = CN_R_DROP_BACKEND_GONE;
    return v;
  }
  if (lb != CN_LB_OK) {
    if (!(svc->flags & CN_SVC_F_DROP_EMPTY)) v.reason = cn_reject(skb, p, &v.action);
    return v;
  }
  __u16 port = be.port ? be.port : p->t.dport;
  if (cn_is_icmp_proto(p->t.proto)) port = p->t.dport;
  __u16 flags = CN_CT_F_SERVICE;
  /* Hairpin: the client is its own backend. With its own address as the source the pod would
   * drop the packet (a local source arriving from outside), so the flow is also SNATed to the
   * node address of its family, as kube-proxy masquerades it; the pod's reply comes back to
   * from-pod, where conntrack reverses both translations (cn_hairpin_back() sends both ways
   * out of the veth they came in on). */
  if (!from_world && cn_addr_eq(&be.addr, &p->t.saddr)) flags |= CN_CT_F_SNAT;
  int remote = 0;
  if (from_world || cfg->service_mark) {
    union cn_addr a = be.addr;
    remote = bpf_map_lookup_elem(&cn_endpoints, &a) == 0;
  }
  if (from_world) {
    flags |= CN_CT_F_NODEPORT;
    if (remote) flags |= CN_CT_F_SNAT;
  }
  /* The backend's node cannot see this DNAT: tell it through the mark (VXLAN GBP carries it). */
  if (remote && cfg->service_mark) flags |= CN_CT_F_REMOTE;
  if (cn_ct_create(cfg, p, skb->len, now, &be.addr, port, flags, svc->svc_id, backend_id) < 0) {
    v.reason = CN_R_DROP_CT_FULL;
    return v;
  }
  cn_count(CN_R_CT_NEW, 0);
  if (cn_dnat(skb, p, &be.addr, port) < 0) {
    v.reason = CN_R_DROP_CSUM;
    return v;
  }
  v.action = TC_ACT_OK;
  v.reason = CN_R_DNAT;
  if (flags & CN_CT_F_REMOTE) skb->mark |= cfg->service_mark;
  /* (A hairpin's SNAT follows in from-pod, cn_hairpin_snat(): the stack is tight here.) */
  if (from_world && remote) {
    union cn_addr node;
    __u32 r = cn_node_addr(cfg, p->ipv6, &node) ? cn_snat(skb, cfg, p, &node, now)
                                                : CN_R_DROP_NAT_NO_PORT;
    if (r != CN_R_SNAT) {
      v.action = TC_ACT_SHOT;
      v.reason = r;
    }
  }
  return v;
}

/* A packet of a hairpin flow that cn_service_new() or cn_ct_apply() DNATed to its own source:
 * SNAT to the node address, then back out of the pod's veth. */
static __always_inline struct cn_verdict cn_hairpin_snat(struct __sk_buff* skb,
                                                         const struct cn_config* cfg,
                                                         struct cn_pkt* p, __u32 now) {
  struct cn_verdict v = {TC_ACT_SHOT, CN_R_DROP_NAT_NO_PORT};
  union cn_addr node;
  if (cn_node_addr(cfg, p->ipv6, &node)) v.reason = cn_snat(skb, cfg, p, &node, now);
  if (v.reason != CN_R_SNAT) return v;
  v.reason = CN_R_DNAT;
  v.action = cn_hairpin_back(skb, p);
  return v;
}

/* Tracks an untranslated new flow (both directions). */
static __always_inline struct cn_verdict cn_track_plain(struct __sk_buff* skb,
                                                        const struct cn_config* cfg,
                                                        struct cn_pkt* p, __u32 now, __u16 flags) {
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  union cn_addr daddr = p->t.daddr;
  if (cn_ct_create(cfg, p, skb->len, now, &daddr, p->t.dport, flags, 0, 0) < 0) {
    v.action = TC_ACT_SHOT;
    v.reason = CN_R_DROP_CT_FULL;
    return v;
  }
  cn_count(CN_R_CT_NEW, 0);
  return v;
}

/* Maps a parse result that ends processing to its verdict. Returns 1 when the verdict is final. */
static __always_inline int cn_parse_verdict(int res, struct cn_verdict* v) {
  v->action = TC_ACT_OK;
  switch (res) {
    case CN_PARSE_OK:
      return 0;
    case CN_PARSE_NON_IP:
      v->reason = CN_R_PASS_NON_IP;
      return 1;
    case CN_PARSE_IPV6:
      v->reason = CN_R_PASS_IPV6;
      return 1;
    case CN_PARSE_FRAGMENT:
      v->reason = CN_R_PASS_FRAGMENT;
      return 1;
    case CN_PARSE_OTHER_L4:
      v->reason = CN_R_PASS;
      return 1;
    case CN_PARSE_ICMP6_CONTROL:
      v->reason = CN_R_PASS;
      cn_count(CN_R_ICMP6_CONTROL, 0);
      return 1;
    default:
      v->action = TC_ACT_SHOT;
      v->reason = CN_R_DROP_MALFORMED;
      return 1;
  }
}

#endif /* CNINET_BPF_LIB_SERVICE_H_ */
