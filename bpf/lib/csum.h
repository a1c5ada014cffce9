/* Header rewrites with incremental checksum updates (bpf_l3_csum_replace / bpf_l4_csum_replace). */
#ifndef CNINET_BPF_LIB_CSUM_H_
#define CNINET_BPF_LIB_CSUM_H_

#include "lib/parse.h"

#define CN_IP_CSUM_OFF 10
#define CN_IP_SADDR_OFF 12
#define CN_IP_DADDR_OFF 16

/* Offset of the L4 checksum within the L4 header, or -1 when the protocol has none we update. */
static __always_inline int cn_l4_csum_off(__u8 proto) {
  if (proto == CN_IPPROTO_TCP) return 16;
  if (proto == CN_IPPROTO_UDP) return 6;
  if (proto == CN_IPPROTO_ICMP || proto == CN_IPPROTO_ICMPV6) return 2;
  return -1;
}

static __always_inline __u64 cn_l4_flags(__u8 proto) {
  return proto == CN_IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* skb->data and skb->data_end loaded straight from the context register: clang may otherwise keep
 * a pointer into the context across preceding helper calls, which the verifier refuses. */
#define CN_SKB_DATA(skb, data, data_end)                                           \
  do {                                                                             \
    asm volatile("%0 = *(u32 *)(%1 + %2)"                                          \
                 : "=r"(data)                                                      \
                 : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, data)));     \
    asm volatile("%0 = *(u32 *)(%1 + %2)"                                          \
                 : "=r"(data_end)                                                  \
                 : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, data_end))); \
  } while (0)

/* Writes `len` (2 or 4) bytes at `off` with a direct packet store (cheaper than
 * bpf_skb_store_bytes); the checksum helpers have already made the header writable. */
static __always_inline int cn_store(struct __sk_buff* skb, __u32 off, const void* val, __u32 len) {
  if (off > 256) return -1;
  void *data, *data_end;
  CN_SKB_DATA(skb, data, data_end);
  if (data + off + 4 > data_end) return bpf_skb_store_bytes(skb, off, val, len, 0);
  if (len == 4)
    *(__u32*)(data + off) = *(const __u32*)val;
  else
    *(__u16*)(data + off) = *(const __u16*)val;
  return 0;
}

/* Writes the 16 bytes of `val` (an IPv6 address) at `off` with direct packet stores, or with
 * bpf_skb_store_bytes when they are not in the linear part. */
static __always_inline int cn_store16(struct __sk_buff* skb, __u32 off, const union cn_addr* val) {
  if (off > 240) return bpf_skb_store_bytes(skb, off, val->a32, 16, 0);
  /* A bound the verifier sees on this very register (clang may check a copy of `off`). */
  asm volatile("%0 &= 0xff" : "+r"(off));
  void *data, *data_end;
  CN_SKB_DATA(skb, data, data_end);
  __u32* dst = data + off;
  if ((void*)(dst + 4) > data_end) return bpf_skb_store_bytes(skb, off, val->a32, 16, 0);
  dst[0] = val->a32[0];
  dst[1] = val->a32[1];
  dst[2] = val->a32[2];
  dst[3] = val->a32[3];
  return 0;
}

/* Incremental IPv4 header checksum update for a changed 4-byte field (RFC 1624, eqn. 3) through
 * a direct packet access. The header checksum carries no offload state, so this is what
 * bpf_l3_csum_replace does, without the helper call (~15 ns in bench/nat_path). */
static __always_inline int cn_l3_csum_replace4(struct __sk_buff* skb, __u32 l3_off, __u32 old,
                                               __u32 new) {
  if (l3_off > 256) return -1;
  void *data, *data_end;
  CN_SKB_DATA(skb, data, data_end);
  __u16* csum = data + l3_off + CN_IP_CSUM_OFF;
  if ((void*)(csum + 1) > data_end)
    return bpf_l3_csum_replace(skb, l3_off + CN_IP_CSUM_OFF, old, new, sizeof(new));
  __u32 s = (__u16) ~*csum;
  s += (__u16) ~(old & 0xffff);
  s += (__u16) ~(old >> 16);
  s += new & 0xffff;
  s += new >> 16;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  *csum = (__u16)~s;
  return 0;
}

/* IPv6 UDP with a zero checksum: invalid (RFC 8200 8.1), so the translation paths drop it as
 * malformed instead of rewriting it. The parser lets it through: tunnels on the uplink may use
 * it (RFC 6935). */
static __always_inline int cn_udp6_no_csum(struct __sk_buff* skb, const struct cn_pkt* p) {
  if (!p->ipv6 || p->t.proto != CN_IPPROTO_UDP) return 0;
  __u16 csum;
  if (bpf_skb_load_bytes(skb, p->l4_off + 6, &csum, sizeof(csum)) < 0) return 1;
  return csum == 0;
}

/* Rewrites the source (is_dst=0) or destination address. IPv4: fixes the IP checksum and the
 * TCP/UDP pseudo-header checksum. IPv6 (no header checksum): fixes the TCP/UDP/ICMPv6 checksum,
 * whose pseudo-header covers the 16-byte addresses, with one bpf_csum_diff. Returns 0 or a
 * negative error. */
static __always_inline int cn_rewrite_addr(struct __sk_buff* skb, const struct cn_pkt* p,
                                           int is_dst, const union cn_addr* old_a,
                                           const union cn_addr* new_a) {
  if (cn_addr_eq(old_a, new_a)) return 0;
  int ret;
  if (p->ipv6) {
    /* The pseudo-header difference summed inline (one's complement: ~old + new per word) and
     * the address written with direct stores: one helper call, as for IPv4 (bench/README.md,
     * nat_path Steps: bpf_csum_diff + bpf_skb_store_bytes cost IPv6 ~40 ns a rewrite). */
    union cn_addr o = *old_a, n = *new_a;
    __u64 s = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) s += (__u64)(__u32)~o.a32[i] + n.a32[i];
    s = (s & 0xffffffff) + (s >> 32);
    s = (s & 0xffffffff) + (s >> 32);
    if (p->t.proto == CN_IPPROTO_TCP || p->t.proto == CN_IPPROTO_UDP ||
        p->t.proto == CN_IPPROTO_ICMPV6) {
      ret = bpf_l4_csum_replace(skb, p->l4_off + cn_l4_csum_off(p->t.proto), 0, (__u32)s,
                                BPF_F_PSEUDO_HDR | cn_l4_flags(p->t.proto));
      if (ret < 0) return ret;
    }
    return cn_store16(skb, p->l3_off + (is_dst ? CN_IP6_DADDR_OFF : CN_IP6_SADDR_OFF), &n);
  }
  __u32 old_addr = old_a->a32[3], new_addr = new_a->a32[3];
  if (p->t.proto == CN_IPPROTO_TCP || p->t.proto == CN_IPPROTO_UDP) {
    ret = bpf_l4_csum_replace(skb, p->l4_off + cn_l4_csum_off(p->t.proto), old_addr, new_addr,
                              BPF_F_PSEUDO_HDR | sizeof(new_addr) | cn_l4_flags(p->t.proto));
    if (ret < 0) return ret;
  }
  ret = cn_l3_csum_replace4(skb, p->l3_off, old_addr, new_addr);
  if (ret < 0) return ret;
  return cn_store(skb, p->l3_off + (is_dst ? CN_IP_DADDR_OFF : CN_IP_SADDR_OFF), &new_addr,
                  sizeof(new_addr));
}

/* Rewrites the source or destination port (TCP/UDP) or the echo id (ICMP) and the L4 checksum. */
static __always_inline int cn_rewrite_port(struct __sk_buff* skb, const struct cn_pkt* p,
                                           int is_dst, __u16 old_port, __u16 new_port) {
  if (old_port == new_port) return 0;
  __u32 off;
  if (p->t.proto == CN_IPPROTO_ICMP || p->t.proto == CN_IPPROTO_ICMPV6)
    off = p->l4_off + CN_ICMP_ID_OFF;
  else if (p->t.proto == CN_IPPROTO_TCP || p->t.proto == CN_IPPROTO_UDP)
    off = p->l4_off + (is_dst ? 2 : 0);
  else
    return 0;
  int ret = bpf_l4_csum_replace(skb, p->l4_off + cn_l4_csum_off(p->t.proto), old_port, new_port,
                                sizeof(new_port) | cn_l4_flags(p->t.proto));
  if (ret < 0) return ret;
  return cn_store(skb, off, &new_port, sizeof(new_port));
}

/* Folds a 32-bit one's complement sum into the 16-bit checksum. */
static __always_inline __u16 cn_csum_fold(__u32 csum) {
  csum = (csum & 0xffff) + (csum >> 16);
  csum = (csum & 0xffff) + (csum >> 16);
  return (__u16)~csum;
}

/* One's complement difference (unfolded) of replacing the 32-bit value `old` with `new`. */
static __always_inline __u32 cn_csum_diff4(__u32 old, __u32 new) {
  __u64 s = (__u64)(__u32)~old + new;
  return (__u32)((s & 0xffffffff) + (s >> 32));
}

/* ICMP error: applies `diff` (a change of the quoted TCP/UDP segment or of its pseudo-header) to
 * the quoted L4 checksum when the quote holds it, and the change of that field to the outer ICMP
 * checksum, so the quote still carries a valid checksum (a quote is the whole packet in ICMPv6).
 * A quoted UDP checksum of 0 (none) stays 0. */
static __always_inline int cn_fix_inner_l4_csum(struct __sk_buff* skb, const struct cn_pkt* p,
                                                __u32 diff) {
  int rel = cn_l4_csum_off(p->inner.proto);
  if (rel < 0) return 0;
  __u32 off = p->inner_l4_off + (__u32)rel;
  /* The quote ends with the outer IP packet (IPv6 payload length / IPv4 total length). */
  __be16 len;
  if (bpf_skb_load_bytes(skb, p->l3_off + (p->ipv6 ? 4 : 2), &len, sizeof(len)) < 0) return -1;
  __u32 end = p->l3_off + bpf_ntohs(len) + (p->ipv6 ? CN_IPV6_HDR_LEN : 0);
  if (off + 2 > end) return 0; /* truncated quote */
  __u16 old_csum, new_csum;
  if (bpf_skb_load_bytes(skb, off, &old_csum, sizeof(old_csum)) < 0) return -1;
  if (old_csum == 0 && p->inner.proto == CN_IPPROTO_UDP) return 0;
  __u64 s = (__u64)(__u16)~old_csum + diff;
  new_csum = cn_csum_fold((__u32)((s & 0xffffffff) + (s >> 32)));
  if (new_csum == 0 && p->inner.proto == CN_IPPROTO_UDP) new_csum = 0xffff;
  if (new_csum == old_csum) return 0;
  int ret = bpf_l4_csum_replace(skb, p->l4_off + 2, old_csum, new_csum, sizeof(new_csum));
  if (ret < 0) return ret;
  return bpf_skb_store_bytes(skb, off, &new_csum, sizeof(new_csum), 0);
}

/* ICMP error: rewrites an address of the quoted IP header (is_dst selects which). IPv4: fixes the
 * quoted IP checksum and the outer ICMP checksum that covers it; IPv6: the quoted header has no
 * checksum, the outer ICMPv6 checksum covers the 16 bytes as data. Both: the quoted TCP/UDP
 * checksum (its pseudo-header holds the address) when the quote holds it. */
static __always_inline int cn_rewrite_inner_addr(struct __sk_buff* skb, const struct cn_pkt* p,
                                                 int is_dst, const union cn_addr* old_a,
                                                 const union cn_addr* new_a) {
  if (cn_addr_eq(old_a, new_a)) return 0;
  __u32 icmp_csum = p->l4_off + 2;
  int ret;
  if (p->ipv6) {
    union cn_addr o = *old_a, n = *new_a;
    __s64 diff = bpf_csum_diff(o.a32, sizeof(o), n.a32, sizeof(n), 0);
    if (diff < 0) return (int)diff;
    ret = cn_fix_inner_l4_csum(skb, p, (__u32)diff);
    if (ret < 0) return ret;
    ret = bpf_l4_csum_replace(skb, icmp_csum, 0, (__u32)diff, 0);
    if (ret < 0) return ret;
    return bpf_skb_store_bytes(
        skb, p->inner_l3_off + (is_dst ? CN_IP6_DADDR_OFF : CN_IP6_SADDR_OFF), n.a32, 16, 0);
  }
  __u32 old_addr = old_a->a32[3], new_addr = new_a->a32[3];
  ret = cn_fix_inner_l4_csum(skb, p, cn_csum_diff4(old_addr, new_addr));
  if (ret < 0) return ret;
  __u32 inner_csum_off = p->inner_l3_off + CN_IP_CSUM_OFF;
  __u16 old_csum, new_csum;
  if (bpf_skb_load_bytes(skb, inner_csum_off, &old_csum, 2) < 0) return -1;
  ret = bpf_l3_csum_replace(skb, inner_csum_off, old_addr, new_addr, sizeof(new_addr));
  if (ret < 0) return ret;
  if (bpf_skb_load_bytes(skb, inner_csum_off, &new_csum, 2) < 0) return -1;
  ret = bpf_l4_csum_replace(skb, icmp_csum, old_csum, new_csum, 2);
  if (ret < 0) return ret;
  ret = bpf_l4_csum_replace(skb, icmp_csum, old_addr, new_addr, sizeof(new_addr));
  if (ret < 0) return ret;
  return bpf_skb_store_bytes(skb, p->inner_l3_off + (is_dst ? CN_IP_DADDR_OFF : CN_IP_SADDR_OFF),
                             &new_addr, sizeof(new_addr), 0);
}

/* ICMP error: rewrites a port of the quoted L4 header, fixing the quoted L4 checksum (when the
 * quote holds it) and the outer ICMP checksum. */
static __always_inline int cn_rewrite_inner_port(struct __sk_buff* skb, const struct cn_pkt* p,
                                                 int is_dst, __u16 old_port, __u16 new_port) {
  if (old_port == new_port) return 0;
  int ret = cn_fix_inner_l4_csum(skb, p, cn_csum_diff4(old_port, new_port));
  if (ret < 0) return ret;
  ret = bpf_l4_csum_replace(skb, p->l4_off + 2, old_port, new_port, sizeof(new_port));
  if (ret < 0) return ret;
  return bpf_skb_store_bytes(skb, p->inner_l4_off + (is_dst ? 2 : 0), &new_port, sizeof(new_port),
                             0);
}

#endif /* CNINET_BPF_LIB_CSUM_H_ */
