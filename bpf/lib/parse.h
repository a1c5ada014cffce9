/* Packet parsing: Ethernet, IPv4 (+ TCP, UDP, ICMP), IPv6 (recognised and passed). The parsed
 * headers are copied into struct cn_pkt so later rewrites never touch stale packet pointers. */
#ifndef CNINET_BPF_LIB_PARSE_H_
#define CNINET_BPF_LIB_PARSE_H_

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "lib/common.h"

enum cn_parse_result {
  CN_PARSE_OK = 0, /* IPv4 TCP/UDP/ICMP with a tuple */
  CN_PARSE_NON_IP,
  CN_PARSE_IPV6,
  CN_PARSE_FRAGMENT,
  CN_PARSE_OTHER_L4, /* IPv4 with another protocol or an ICMP type we do not track */
  CN_PARSE_MALFORMED,
};

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
  __u32 ihl;         /* IPv4 header length in bytes */
  struct cn_tuple t; /* outer tuple (ICMP echo id as port) */
  __u8 tcp_flags;
  __u8 icmp_type;
  __u8 icmp_error; /* 1: ICMP error whose quoted TCP/UDP header is in `inner` */
  __u8 pad;
  __u32 inner_l3_off; /* quoted IPv4 header (ICMP errors) */
  __u32 inner_l4_off;
  struct cn_tuple inner;
  __u8 src_mac[6];
  __u8 dst_mac[6];
};

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
  p->inner.saddr = in->saddr;
  p->inner.daddr = in->daddr;
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
  p->t.saddr = ip->saddr;
  p->t.daddr = ip->daddr;
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
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > data_end || ip6->version != 6) return CN_PARSE_MALFORMED;
    return CN_PARSE_IPV6;
  }
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return CN_PARSE_NON_IP;
  return cn_parse_ipv4(skb, p, (void*)(eth + 1), data_end);
}

#endif /* CNINET_BPF_LIB_PARSE_H_ */
