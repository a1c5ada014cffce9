/* SNAT/masquerade: port allocation per destination through a port index (keep the original port
 * when free, else a free port of the same or a random block), mappings for both directions,
 * reverse SNAT. */
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

/* SNAT port index (a hint; cn_nat's BPF_NOEXIST insert stays the authority): per destination
 * (node address, remote address:port, proto) and 64-port block, a bitmap of node ports in use.
 * A node port conflicts only with a mapping to the same destination (as in nf_conntrack), so
 * occupancy is per destination, and one lookup shows a block's free ports instead of one failed
 * insert per taken port. Bits are set here (plain |=: a bit lost to a race costs one retry
 * later; a block's entry is created on its first conflict), cleared by user space when it deletes
 * mappings (NatTable::Gc/DeleteIf), rebuilt from cn_nat on load (NatTable::SyncPortIndex). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct cn_nat_ports_key);
  __type(value, __u64);
} cn_nat_ports SEC(".maps");

/* Index of the lowest set bit of x (x != 0); branches instead of a count-trailing-zeros insn. */
static __always_inline __u32 cn_ctz64(__u64 x) {
  __u32 n = 0;
  if (!(x & 0xffffffffULL)) n += 32, x >>= 32;
  if (!(x & 0xffffULL)) n += 16, x >>= 16;
  if (!(x & 0xffULL)) n += 8, x >>= 8;
  if (!(x & 0xfULL)) n += 4, x >>= 4;
  if (!(x & 0x3ULL)) n += 2, x >>= 2;
  if (!(x & 0x1ULL)) n += 1;
  return n;
}

/* Bits of block `b` whose ports lie in [min, max]. */
static __always_inline __u64 cn_nat_block_mask(__u32 b, __u32 min, __u32 max) {
  __u32 base = b << 6;
  __u32 lo = min > base ? min - base : 0;
  __u32 hi = max < base + 63 ? max - base : 63;
  if (lo > 63 || hi > 63 || lo > hi) return 0;
  return (~0ULL << lo) & (~0ULL >> (63 - hi));
}

/* A free bit of `free` (non-zero): the first at or after `rot` (cyclically), so concurrent
 * allocators starting at different rotations rarely race for the same port. */
static __always_inline __u32 cn_nat_pick(__u64 free, __u32 rot) {
  rot &= 63;
  __u64 r = rot ? (free >> rot) | (free << (64 - rot)) : free;
  return (cn_ctz64(r) + rot) & 63;
}

static __always_inline void cn_nat_port_mark(struct cn_nat_ports_key* pk, __u32 port) {
  __u64 bit = 1ULL << (port & 63);
  pk->block = (__u16)(port >> 6);
  __u64* bits = bpf_map_lookup_elem(&cn_nat_ports, pk);
  if (bits) {
    if (!(*bits & bit)) *bits |= bit;
    return;
  }
  bpf_map_update_elem(&cn_nat_ports, pk, &bit, BPF_NOEXIST); /* a full index only loses a hint */
}

/* State of the SNAT port allocation loop (run with bpf_loop so the verifier checks it once). It
 * lives in a per-CPU scratch slot, not on the stack: with the index key it no longer fits the
 * 512 bytes the program's and the callback's frames share. */
struct cn_nat_probe {
  struct cn_tuple ik; /* ingress key being claimed; its dport is the candidate */
  struct cn_nat_entry in_val;
  struct cn_nat_ports_key pk; /* index key of the destination; block = the block probed */
  __u32 now, min, max, rnd, orig, tries;
  __u16 block, bmin, bmax;
  __u8 keep, found, full; /* bytes: the state counts against the 512-byte stack */
  __u16 port;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct cn_nat_probe);
} cn_nat_scratch SEC(".maps");

/* A claimed port whose mapping pair is entirely expired may be taken over. The egress key is
 * built in c->ik itself (the ingress key being claimed) and restored from the probe state after:
 * no key or address on the stack, which the program's and the callback's frames share. */
static __always_inline int cn_nat_stale(struct cn_nat_probe* c) {
  struct cn_tuple* k = &c->ik;
  struct cn_nat_entry* in = bpf_map_lookup_elem(&cn_nat, k);
  if (!in) return 1;
  if (in->expires_s >= c->now) return 0;
  k->daddr = k->saddr;
  k->dport = k->sport;
  k->saddr = in->to_addr;
  k->sport = in->to_port;
  k->pad[0] = CN_NAT_EGRESS;
  struct cn_nat_entry* eg = bpf_map_lookup_elem(&cn_nat, k);
  int stale = !eg || eg->expires_s < c->now;
  if (eg && stale) bpf_map_delete_elem(&cn_nat, k);
  k->saddr = c->pk.remote;
  k->sport = c->pk.rport;
  k->daddr = c->pk.node;
  k->dport = c->port;
  k->pad[0] = CN_NAT_INGRESS;
  return stale;
}

/* One round i: the index shows the block's free ports; claim one (the original port when free in
 * round 0) with BPF_NOEXIST. A block the index shows full gets one blind candidate (it may hold
 * an expired mapping to take over, or a bit whose clear was lost) and the next round moves on to
 * the next block. Every round after the first counts as a retry. */
static __always_inline long cn_nat_probe_round(__u32 i) {
  __u32 zero = 0;
  struct cn_nat_probe* c = bpf_map_lookup_elem(&cn_nat_scratch, &zero);
  if (!c || i >= c->tries) return 1;
  if (i > 0) {
    __u32 r = CN_R_NAT_PORT_RETRY;
    struct cn_counter* cnt = bpf_map_lookup_elem(&cn_counters, &r);
    if (cnt) cnt->packets += 1;
  }
  __u32 b = c->block;
  c->pk.block = (__u16)b;
  __u64* bits = bpf_map_lookup_elem(&cn_nat_ports, &c->pk);
  __u64 used = bits ? *bits : 0;
  __u64 free = ~used & cn_nat_block_mask(b, c->min, c->max);
  __u32 cand;
  if (i == 0 && c->keep && (free >> (c->orig & 63)) & 1) {
    cand = c->orig;
  } else if (free) {
    cand = (b << 6) + cn_nat_pick(free, c->rnd + i);
  } else {
    cand = (b << 6) + ((c->rnd + i) & 63);
    if (cand < c->min || cand > c->max) cand = c->min + (c->rnd + i) % (c->max - c->min + 1);
    c->block = b >= c->bmax ? c->bmin : b + 1;
  }
  c->port = bpf_htons((__u16)cand);
  c->ik.dport = c->port;
  long ret = bpf_map_update_elem(&cn_nat, &c->ik, &c->in_val, BPF_NOEXIST);
  if (ret == 0) {
    c->found = 1;
  } else if (ret != -17 /* EEXIST */) {
    c->full = 1;
    return 1;
  } else if (cn_nat_stale(c) && bpf_map_update_elem(&cn_nat, &c->ik, &c->in_val, BPF_ANY) == 0) {
    c->found = 1;
  }
  /* The index learns the port is in use: through the block's value already looked up. A block
   * without an entry gets one only on a conflict (ret != 0): flows to a destination that never
   * conflict (most) pay no index insert; a busy destination's blocks are indexed from their first
   * conflict on, and an unindexed mapping costs one retry when met. */
  if (bits && (cand >> 6) == b)
    *bits |= 1ULL << (cand & 63);
  else if (ret != 0 || bits)
    cn_nat_port_mark(&c->pk, cand);
  return c->found ? 1 : 0;
}

static long cn_nat_probe_cb(__u32 i, void* ctx) { return cn_nat_probe_round(i); }

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
  if (max < min || max > 65535) return CN_R_DROP_NAT_NO_PORT;
  __u32 orig = bpf_ntohs(p->t.sport);

  __u32 zero = 0;
  struct cn_nat_probe* pr = bpf_map_lookup_elem(&cn_nat_scratch, &zero);
  if (!pr) return CN_R_DROP_NAT_NO_PORT;
  pr->in_val.to_addr = p->t.saddr;
  pr->in_val.to_port = p->t.sport;
  pr->in_val.tcp_closing = (p->tcp_flags & (CN_TCP_FIN | CN_TCP_RST)) ? 1 : 0;
  pr->in_val.pad = 0;
  pr->in_val.created_s = now;
  pr->in_val.expires_s = now + cn_nat_lifetime(cfg, p, 0);
  cn_nat_key(&pr->ik, &p->t.daddr, node_addr, p->t.dport, 0, p->t.proto, CN_NAT_INGRESS);
  pr->pk.node = *node_addr;
  pr->pk.remote = p->t.daddr;
  pr->pk.rport = p->t.dport;
  pr->pk.proto = p->t.proto;
  pr->pk.pad[0] = pr->pk.pad[1] = pr->pk.pad[2] = 0;
  pr->now = now;
  pr->min = min;
  pr->max = max;
  pr->orig = orig;
  pr->keep = orig >= min && orig <= max;
  pr->found = 0;
  pr->full = 0;
  pr->port = 0;
  pr->bmin = (__u16)(min >> 6);
  pr->bmax = (__u16)(max >> 6);
  pr->rnd = bpf_get_prandom_u32();
  pr->block = pr->keep ? (__u16)(orig >> 6)
                       : (__u16)(pr->bmin + (pr->rnd >> 8) % ((__u32)pr->bmax - pr->bmin + 1));
  pr->tries = (__u32)cfg->nat_retries + 1;
  bpf_loop(CN_NAT_MAX_TRIES, cn_nat_probe_cb, 0, 0);
  if (pr->full) return CN_R_DROP_NAT_FULL;
  if (!pr->found) return CN_R_DROP_NAT_NO_PORT;
  __u16 port = pr->port;

  /* The egress mapping reuses the probe's key and value with the node address and port. */
  cn_nat_key(&pr->ik, &p->t.saddr, &p->t.daddr, p->t.sport, p->t.dport, p->t.proto, CN_NAT_EGRESS);
  pr->in_val.to_addr = *node_addr;
  pr->in_val.to_port = port;
  if (bpf_map_update_elem(&cn_nat, &pr->ik, &pr->in_val, BPF_ANY) != 0) {
    cn_nat_key(&pr->ik, &p->t.daddr, node_addr, p->t.dport, port, p->t.proto, CN_NAT_INGRESS);
    bpf_map_delete_elem(&cn_nat, &pr->ik);
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
