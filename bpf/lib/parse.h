/* Packet parsing: Ethernet, IPv4 and IPv6 (extension headers walked, bounded) with TCP, UDP,
 * ICMP and ICMPv6. Addresses are kept as union cn_addr (IPv4 as IPv4-mapped IPv6), so the
 * conntrack/NAT/LB code is one path for both families. The parsed headers are copied into struct
 * cn_pkt so later rewrites never touch stale packet pointers. */
#ifndef CNINET_BPF_LIB_PARSE_H_
#define CNINET_BPF_LIB_PARSE_H_

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "lib/common.h"

enum cn_parse_result {
  CN_PARSE_OK = 0, /* TCP/UDP/ICMP(v6) with a tuple */
  CN_PARSE_NON_IP,
  CN_PARSE_IPV6, /* IPv6 with unknown or too many extension headers: passed untranslated */
  CN_PARSE_FRAGMENT,
  CN_PARSE_OTHER_L4, /* another protocol or an ICMP type we do not track */
  CN_PARSE_MALFORMED,
  CN_PARSE_ICMP6_CONTROL, /* NDP and other ICMPv6 control messages: passed untouched */
};

#define CN_IPPROTO_HOPOPTS 0
#define CN_IPPROTO_ROUTING 43
#define CN_IPPROTO_FRAGMENT 44
#define CN_IPPROTO_DSTOPTS 60
/* Most IPv6 extension headers walked before the L4 header. */
#define CN_IPV6_MAX_EXT 4
#define CN_IPV6_HDR_LEN 40
#define CN_IP6_SADDR_OFF 8
#define CN_IP6_DADDR_OFF 24

/* ICMPv6 types. */
#define CN_ICMP6_DEST_UNREACH 1
#define CN_ICMP6_PKT_TOOBIG 2
#define CN_ICMP6_TIME_EXCEED 3
#define CN_ICMP6_PARAMPROB 4
#define CN_ICMP6_PORT_UNREACH 4 /* code of destination unreachable */
#define CN_ICMP6_ECHO_REQUEST 128
#define CN_ICMP6_ECHO_REPLY 129

#define CN_TCP_FIN 0x01
#define CN_TCP_SYN 0x02
#define CN_TCP_RST 0x04
#define CN_TCP_ACK 0x10

/* Offset of the echo id within the ICMP header. */
#define CN_ICMP_ID_OFF 4

/* ICMP (linux/icmp.h pulls in libc headers, which a BPF build cannot use). */
#define CN_ICMP_ECHOREPLY 0
#define CN_ICMP_DEST_UNREACH 3
#define CN_ICMP_PORT_UNREACH 3
#define CN_ICMP_ECHO 8
#define CN_ICMP_TIME_EXCEEDED 11
#define CN_ICMP_PARAMETERPROB 12

struct cn_icmphdr {
  __u8 type;
  __u8 code;
  __u16 checksum;
  __u16 id;
  __u16 sequence;
};

struct cn_pkt {
  __u32 l3_off;
  __u32 l4_off;
  __u32 ihl;         /* IPv4 header length in bytes (IPv6: 40 + extension headers) */
  struct cn_tuple t; /* outer tuple (ICMP echo id as port) */
  __u8 tcp_flags;
  __u8 icmp_type;
  __u8 icmp_error;    /* 1: ICMP error whose quoted TCP/UDP header is in `inner` */
  __u8 ipv6;          /* 1: IPv6 (addresses are native), 0: IPv4 (IPv4-mapped) */
  __u32 inner_l3_off; /* quoted IP header (ICMP errors) */
  __u32 inner_l4_off;
  struct cn_tuple inner;
  __u8 src_mac[6];
  __u8 dst_mac[6];
};

/* IPv4-mapped IPv6 form of a network-order IPv4 address. */
static __always_inline void cn_addr_set_v4(union cn_addr* a, __u32 v4) {
  a->a32[0] = 0;
  a->a32[1] = 0;
  a->a32[2] = bpf_htonl(0xffff);
  a->a32[3] = v4;
}

static __always_inline int cn_addr_eq(const union cn_addr* a, const union cn_addr* b) {
  return ((a->a32[0] ^ b->a32[0]) | (a->a32[1] ^ b->a32[1]) | (a->a32[2] ^ b->a32[2]) |
          (a->a32[3] ^ b->a32[3])) == 0;
}

static __always_inline int cn_addr_is_zero(const union cn_addr* a) {
  return (a->a32[0] | a->a32[1] | a->a32[2] | a->a32[3]) == 0;
}

static __always_inline int cn_addr_is_v4(const union cn_addr* a) {
  return a->a32[0] == 0 && a->a32[1] == 0 && a->a32[2] == bpf_htonl(0xffff);
}

/* Copies a 16-byte IPv6 address out of the packet (4-byte aligned in the header). */
static __always_inline void cn_addr_load6(union cn_addr* a, const void* src) {
  const __u32* s = src;
  a->a32[0] = s[0];
  a->a32[1] = s[1];
  a->a32[2] = s[2];
  a->a32[3] = s[3];
}

static __always_inline int cn_is_icmp6_error(__u8 type) {
  return type >= CN_ICMP6_DEST_UNREACH && type <= CN_ICMP6_PARAMPROB;
}

static __always_inline int cn_is_icmp_error(__u8 type) {
  return type == CN_ICMP_DEST_UNREACH || type == CN_ICMP_TIME_EXCEEDED ||
         type == CN_ICMP_PARAMETERPROB;
}

/* Ensures the first `want` bytes (or the whole packet, if shorter) are in the linear area. */
static __always_inline void cn_pull(struct __sk_buff* skb, __u32 want) {
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  __u32 linear = (__u32)(data_end - data);
  if (linear < want && skb->len > linear) bpf_skb_pull_data(skb, skb->len < want ? skb->len : want);
}

/* TCP or UDP ports (and TCP flags) of the L4 header at `l4` with `l4_len` bytes. */
static __always_inline int cn_parse_ports(struct cn_pkt* p, void* l4, __u32 l4_len,
                                          void* data_end) {
  if (p->t.proto == CN_IPPROTO_TCP) {
    struct tcphdr* th = l4;
    if ((void*)(th + 1) > data_end || l4_len < sizeof(*th)) return CN_PARSE_MALFORMED;
    if (th->doff < 5) return CN_PARSE_MALFORMED;
    p->t.sport = th->source;
    p->t.dport = th->dest;
    p->tcp_flags = ((__u8*)th)[13];
    return CN_PARSE_OK;
  }
  struct udphdr* uh = l4;
  if ((void*)(uh + 1) > data_end || l4_len < sizeof(*uh)) return CN_PARSE_MALFORMED;
  p->t.sport = uh->source;
  p->t.dport = uh->dest;
  return CN_PARSE_OK;
}

/* The packet an ICMP error quotes (an IPv4 header without options + the first 8 bytes of TCP or
 * UDP) into p->inner; CN_PARSE_OTHER_L4 when it quotes anything else. */
static __always_inline int cn_parse_icmp_quote(struct cn_pkt* p, struct cn_icmphdr* ih,
                                               void* data_end) {
  struct iphdr* in = (void*)(ih + 1);
  if ((void*)(in + 1) > data_end) return CN_PARSE_OTHER_L4;
  if (in->version != 4 || in->ihl != 5) return CN_PARSE_OTHER_L4;
  if (in->protocol != CN_IPPROTO_TCP && in->protocol != CN_IPPROTO_UDP) return CN_PARSE_OTHER_L4;
  __u16* ports = (void*)(in + 1);
  if ((void*)(ports + 2) > data_end) return CN_PARSE_OTHER_L4;
  p->icmp_error = 1;
  p->inner_l3_off = p->l4_off + sizeof(*ih);
  p->inner_l4_off = p->inner_l3_off + sizeof(*in);
  cn_addr_set_v4(&p->inner.saddr, in->saddr);
  cn_addr_set_v4(&p->inner.daddr, in->daddr);
  p->inner.sport = ports[0];
  p->inner.dport = ports[1];
  p->inner.proto = in->protocol;
  p->inner.pad[0] = p->inner.pad[1] = p->inner.pad[2] = 0;
  return CN_PARSE_OK;
}

/* ICMP: echo request/reply carry their id as a port; errors quote a TCP/UDP packet. */
static __always_inline int cn_parse_icmp(struct cn_pkt* p, void* l4, __u32 l4_len, void* data_end) {
  struct cn_icmphdr* ih = l4;
  if ((void*)(ih + 1) > data_end || l4_len < sizeof(*ih)) return CN_PARSE_MALFORMED;
  p->icmp_type = ih->type;
  if (ih->type == CN_ICMP_ECHO) {
    p->t.sport = ih->id;
    return CN_PARSE_OK;
  }
  if (ih->type == CN_ICMP_ECHOREPLY) {
    p->t.dport = ih->id;
    return CN_PARSE_OK;
  }
  if (!cn_is_icmp_error(ih->type)) return CN_PARSE_OTHER_L4;
  return cn_parse_icmp_quote(p, ih, data_end);
}

/* The IPv4 header at p->l3_off and its L4 header. */
static __always_inline int cn_parse_ipv4(struct __sk_buff* skb, struct cn_pkt* p, struct iphdr* ip,
                                         void* data_end) {
  if ((void*)(ip + 1) > data_end) return CN_PARSE_MALFORMED;
  if (ip->version != 4 || ip->ihl < 5) return CN_PARSE_MALFORMED;
  __u32 ihl = ip->ihl * 4;
  __u32 tot = bpf_ntohs(ip->tot_len);
  if (tot < ihl || p->l3_off + tot > skb->len) return CN_PARSE_MALFORMED;
  p->ihl = ihl;
  p->l4_off = p->l3_off + ihl;
  cn_addr_set_v4(&p->t.saddr, ip->saddr);
  cn_addr_set_v4(&p->t.daddr, ip->daddr);
  p->t.proto = ip->protocol;
  p->t.sport = 0;
  p->t.dport = 0;
  p->t.pad[0] = p->t.pad[1] = p->t.pad[2] = 0;
  p->tcp_flags = 0;
  p->icmp_type = 0;
  p->icmp_error = 0;
  if (ip->frag_off & bpf_htons(0x3fff)) return CN_PARSE_FRAGMENT; /* MF or offset */

  __u32 l4_len = tot - ihl;
  void* l4 = (void*)ip + ihl;
  if (ip->protocol == CN_IPPROTO_TCP || ip->protocol == CN_IPPROTO_UDP)
    return cn_parse_ports(p, l4, l4_len, data_end);
  if (ip->protocol == CN_IPPROTO_ICMP) return cn_parse_icmp(p, l4, l4_len, data_end);
  return CN_PARSE_OTHER_L4;
}

/* The packet an ICMPv6 error quotes (an IPv6 header without extension headers + the first 8
 * bytes of TCP or UDP) into p->inner; CN_PARSE_OTHER_L4 when it quotes anything else. */
static __always_inline int cn_parse_icmp6_quote(struct cn_pkt* p, struct cn_icmphdr* ih,
                                                void* data_end) {
  struct ipv6hdr* in = (void*)(ih + 1);
  if ((void*)(in + 1) > data_end) return CN_PARSE_OTHER_L4;
  if (in->version != 6) return CN_PARSE_OTHER_L4;
  if (in->nexthdr != CN_IPPROTO_TCP && in->nexthdr != CN_IPPROTO_UDP) return CN_PARSE_OTHER_L4;
  __u16* ports = (void*)(in + 1);
  if ((void*)(ports + 2) > data_end) return CN_PARSE_OTHER_L4;
  p->icmp_error = 1;
  p->inner_l3_off = p->l4_off + sizeof(*ih);
  p->inner_l4_off = p->inner_l3_off + sizeof(*in);
  cn_addr_load6(&p->inner.saddr, &in->saddr);
  cn_addr_load6(&p->inner.daddr, &in->daddr);
  p->inner.sport = ports[0];
  p->inner.dport = ports[1];
  p->inner.proto = in->nexthdr;
  p->inner.pad[0] = p->inner.pad[1] = p->inner.pad[2] = 0;
  return CN_PARSE_OK;
}

/* ICMPv6: echo request/reply carry their id as a port; errors quote a TCP/UDP packet; NDP and
 * the other control messages are passed. */
static __always_inline int cn_parse_icmp6(struct cn_pkt* p, void* l4, __u32 l4_len,
                                          void* data_end) {
  struct cn_icmphdr* ih = l4;
  if ((void*)(ih + 1) > data_end || l4_len < sizeof(*ih)) return CN_PARSE_MALFORMED;
  p->icmp_type = ih->type;
  if (ih->type == CN_ICMP6_ECHO_REQUEST) {
    p->t.sport = ih->id;
    return CN_PARSE_OK;
  }
  if (ih->type == CN_ICMP6_ECHO_REPLY) {
    p->t.dport = ih->id;
    return CN_PARSE_OK;
  }
  if (!cn_is_icmp6_error(ih->type)) return CN_PARSE_ICMP6_CONTROL;
  return cn_parse_icmp6_quote(p, ih, data_end);
}

/* The IPv6 header at p->l3_off, its extension headers (hop-by-hop, routing, destination options;
 * at most CN_IPV6_MAX_EXT) and its L4 header. A fragment header ends parsing with
 * CN_PARSE_FRAGMENT, anything else unknown or too deep with CN_PARSE_IPV6 (passed untranslated). */
static __always_inline int cn_parse_ipv6(struct __sk_buff* skb, struct cn_pkt* p,
                                         struct ipv6hdr* ip6, void* data_end) {
  if ((void*)(ip6 + 1) > data_end || ip6->version != 6) return CN_PARSE_MALFORMED;
  __u32 end = p->l3_off + CN_IPV6_HDR_LEN + bpf_ntohs(ip6->payload_len);
  if (end > skb->len) return CN_PARSE_MALFORMED;
  p->ipv6 = 1;
  cn_addr_load6(&p->t.saddr, &ip6->saddr);
  cn_addr_load6(&p->t.daddr, &ip6->daddr);
  p->t.sport = 0;
  p->t.dport = 0;
  p->t.pad[0] = p->t.pad[1] = p->t.pad[2] = 0;
  p->tcp_flags = 0;
  p->icmp_type = 0;
  p->icmp_error = 0;
  __u8 nexthdr = ip6->nexthdr;
  __u32 off = p->l3_off + CN_IPV6_HDR_LEN;
#pragma unroll
  for (int i = 0; i < CN_IPV6_MAX_EXT; i++) {
    if (nexthdr == CN_IPPROTO_FRAGMENT) return CN_PARSE_FRAGMENT;
    if (nexthdr != CN_IPPROTO_HOPOPTS && nexthdr != CN_IPPROTO_ROUTING &&
        nexthdr != CN_IPPROTO_DSTOPTS)
      break;
    __u8 eh[2];
    if (bpf_skb_load_bytes(skb, off, eh, sizeof(eh)) < 0) return CN_PARSE_MALFORMED;
    nexthdr = eh[0];
    off += ((__u32)eh[1] + 1) * 8;
  }
  if (nexthdr == CN_IPPROTO_FRAGMENT) return CN_PARSE_FRAGMENT;
  if (nexthdr == CN_IPPROTO_HOPOPTS || nexthdr == CN_IPPROTO_ROUTING ||
      nexthdr == CN_IPPROTO_DSTOPTS)
    return CN_PARSE_IPV6; /* too deep */
  if (off > end) return CN_PARSE_MALFORMED;
  p->ihl = off - p->l3_off;
  p->l4_off = off;
  p->t.proto = nexthdr;
  if (nexthdr != CN_IPPROTO_TCP && nexthdr != CN_IPPROTO_UDP && nexthdr != CN_IPPROTO_ICMPV6)
    return CN_PARSE_OTHER_L4;
  /* Bounded offset for direct access (ext headers beyond it are passed untranslated). */
  if (off > 256) return CN_PARSE_IPV6;
  cn_pull(skb, off + 48 + 40 < skb->len ? off + 48 + 40 : skb->len);
  void* data = (void*)(long)skb->data;
  data_end = (void*)(long)skb->data_end;
  void* l4 = data + off;
  __u32 l4_len = end - off;
  if (nexthdr == CN_IPPROTO_ICMPV6) return cn_parse_icmp6(p, l4, l4_len, data_end);
  return cn_parse_ports(p, l4, l4_len, data_end);
}

/* Parses Ethernet and the IP packet it carries into `p`. */
static __always_inline int cn_parse(struct __sk_buff* skb, struct cn_pkt* p) {
  cn_pull(skb, 128);
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return CN_PARSE_MALFORMED;
  __builtin_memcpy(p->src_mac, eth->h_source, 6);
  __builtin_memcpy(p->dst_mac, eth->h_dest, 6);
  p->l3_off = sizeof(*eth);
  if (eth->h_proto == bpf_htons(ETH_P_IPV6))
    return cn_parse_ipv6(skb, p, (void*)(eth + 1), data_end);
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return CN_PARSE_NON_IP;
  return cn_parse_ipv4(skb, p, (void*)(eth + 1), data_end);
}

#endif /* CNINET_BPF_LIB_PARSE_H_ */
