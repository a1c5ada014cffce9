/* Reject for a service without backends: the packet is turned into an ICMP destination (port)
 * unreachable from the service address back to the client and sent out of the interface it came
 * in on, as kube-proxy's REJECT does. */
#ifndef CNINET_BPF_LIB_REJECT_H_
#define CNINET_BPF_LIB_REJECT_H_

#include <linux/ip.h>
#include <linux/ipv6.h>

#include "lib/csum.h"

#define CN_ICMP_QUOTE_L4 8

/* RFC 4443 2.4(c): an ICMPv6 error quotes as much of the invoking packet as fits in the minimum
 * IPv6 MTU (1280) with its own IPv6 (40) and ICMPv6 (8) headers. */
#define CN_ICMP6_QUOTE_MAX (1280 - 40 - 8)
/* Bytes of the quote summed per bpf_csum_diff call (from a stack buffer). */
#define CN_CSUM_CHUNK 64

/* One's complement sum (unfolded) of `len` bytes of the packet at `off`, added to `sum`; `len`
 * at most CN_ICMP6_QUOTE_MAX. The sum is taken in 64-byte chunks through a stack buffer, the last
 * one zero-padded (which adds nothing: every chunk starts at an even offset). Returns the sum or
 * a negative error. */
static __always_inline __s64 cn_csum_skb(struct __sk_buff* skb, __u32 off, __u32 len, __u32 sum) {
  __u8 buf[CN_CSUM_CHUNK];
  __u32 full = len / CN_CSUM_CHUNK, rest = len % CN_CSUM_CHUNK;
  for (__u32 i = 0; i < CN_ICMP6_QUOTE_MAX / CN_CSUM_CHUNK; i++) {
    if (i >= full) break;
    if (bpf_skb_load_bytes(skb, off + i * CN_CSUM_CHUNK, buf, sizeof(buf)) < 0) return -1;
    __s64 s = bpf_csum_diff(0, 0, (__be32*)buf, sizeof(buf), sum);
    if (s < 0) return s;
    sum = (__u32)s;
  }
  if (rest == 0) return sum;
  __builtin_memset(buf, 0, sizeof(buf));
  rest &= CN_CSUM_CHUNK - 1;
  if (rest == 0 || full > CN_ICMP6_QUOTE_MAX / CN_CSUM_CHUNK) return -1;
  if (bpf_skb_load_bytes(skb, off + full * CN_CSUM_CHUNK, buf, rest) < 0) return -1;
  return bpf_csum_diff(0, 0, (__be32*)buf, sizeof(buf), sum);
}

/* IPv6: the packet becomes an ICMPv6 destination unreachable (code 4, port unreachable) from the
 * service address quoting the packet up to CN_ICMP6_QUOTE_MAX bytes; the ICMPv6 checksum covers
 * the pseudo-header, the ICMPv6 header and the whole quote. Only packets without extension
 * headers are quoted. */
static __always_inline __u32 cn_reject6(struct __sk_buff* skb, const struct cn_pkt* p,
                                        int* action) {
  *action = TC_ACT_SHOT;
  if (p->ihl != CN_IPV6_HDR_LEN || p->icmp_error) return CN_R_DROP_NO_BACKEND;
  __be16 payload_len;
  if (bpf_skb_load_bytes(skb, p->l3_off + 4, &payload_len, sizeof(payload_len)) < 0)
    return CN_R_DROP_NO_BACKEND;
  __u32 quote_len = CN_IPV6_HDR_LEN + bpf_ntohs(payload_len);
  if (quote_len > CN_ICMP6_QUOTE_MAX) quote_len = CN_ICMP6_QUOTE_MAX;
  /* Drops what lies beyond the quote (the rest of a long packet, link-layer padding). */
  if (bpf_skb_change_tail(skb, p->l3_off + quote_len, 0) < 0) return CN_R_DROP_NO_BACKEND;
  struct {
    struct ipv6hdr ip;
    struct cn_icmphdr icmp;
  } out = {};
  __u32 icmp_len = sizeof(out.icmp) + quote_len;
  union cn_addr vip = p->t.daddr, client = p->t.saddr;
  __builtin_memcpy(&out.ip.saddr, vip.a32, sizeof(vip));
  __builtin_memcpy(&out.ip.daddr, client.a32, sizeof(client));
  out.ip.version = 6;
  out.ip.payload_len = bpf_htons(icmp_len);
  out.ip.nexthdr = CN_IPPROTO_ICMPV6;
  out.ip.hop_limit = 64;
  out.icmp.type = CN_ICMP6_DEST_UNREACH;
  out.icmp.code = CN_ICMP6_PORT_UNREACH;
  /* Pseudo-header (source, destination, upper-layer length, next header), header, quote. */
  __be32 ph[2] = {bpf_htonl(icmp_len), bpf_htonl(CN_IPPROTO_ICMPV6)};
  __s64 sum = bpf_csum_diff(0, 0, (__be32*)&out.ip.saddr, 32, 0);
  if (sum >= 0) sum = bpf_csum_diff(0, 0, ph, sizeof(ph), (__u32)sum);
  if (sum >= 0) sum = bpf_csum_diff(0, 0, (__be32*)&out.icmp, sizeof(out.icmp), (__u32)sum);
  if (sum >= 0) sum = cn_csum_skb(skb, p->l3_off, quote_len, (__u32)sum);
  if (sum < 0) return CN_R_DROP_NO_BACKEND;
  out.icmp.checksum = cn_csum_fold((__u32)sum);
  if (bpf_skb_adjust_room(skb, sizeof(out), BPF_ADJ_ROOM_MAC, 0) < 0) return CN_R_DROP_NO_BACKEND;
  /* Layout now: eth | new ip6 (40) | icmp6 (8) | quoted packet. */
  if (bpf_skb_store_bytes(skb, p->l3_off, &out, sizeof(out), 0) < 0) return CN_R_DROP_NO_BACKEND;
  __u8 macs[12];
  __builtin_memcpy(macs, p->src_mac, 6);
  __builtin_memcpy(macs + 6, p->dst_mac, 6);
  if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0) return CN_R_DROP_NO_BACKEND;
  *action = bpf_redirect(skb->ifindex, 0);
  return CN_R_REJECT;
}

/* IPv4 (UDP, ICMP echo: TCP gets cn_reject_tcp()): the packet becomes an ICMP destination
 * unreachable (type 3, code 3) from the service address quoting its IP header and 8 bytes of L4
 * (RFC 792). The cut stays beyond a CHECKSUM_PARTIAL skb's L4 checksum field (UDP's ends at byte
 * 8), which bpf_skb_change_tail() would refuse to cut: that refusal made every real TCP SYN a
 * `drop_no_backend` when TCP was quoted too (issue 15). The skb keeps CHECKSUM_PARTIAL with
 * csum_start/csum_offset in the quoted L4 header (nothing here can clear it; the receiving pod's
 * stack treats it as verified). Only option-less headers are quoted (the policy program parses
 * the quote). */
static __always_inline __u32 cn_reject4(struct __sk_buff* skb, const struct cn_pkt* p,
                                        int* action) {
  *action = TC_ACT_SHOT;
  /* Never reject ICMP errors. */
  if (p->ihl != 20 || p->icmp_error) return CN_R_DROP_NO_BACKEND;
  const __u32 l4_len = CN_ICMP_QUOTE_L4;
  __u32 quote_end = p->l4_off + l4_len;
  if (skb->len < quote_end) return CN_R_DROP_NO_BACKEND;

  /* Layout after the rewrite: eth | new ip (20) | icmp (8) | quoted ip (20) | quoted l4 (8). */
  struct {
    struct iphdr ip;
    struct cn_icmphdr icmp;
    struct iphdr quoted_ip;
    __u8 quoted_l4[CN_ICMP_QUOTE_L4];
  } out = {};
  if (bpf_skb_load_bytes(skb, p->l3_off, &out.quoted_ip, sizeof(out.quoted_ip)) < 0 ||
      bpf_skb_load_bytes(skb, p->l4_off, out.quoted_l4, l4_len) < 0)
    return CN_R_DROP_NO_BACKEND;
  if (bpf_skb_change_tail(skb, quote_end, 0) < 0) return CN_R_DROP_NO_BACKEND;
  if (bpf_skb_adjust_room(skb, sizeof(struct iphdr) + sizeof(struct cn_icmphdr), BPF_ADJ_ROOM_MAC,
                          0) < 0)
    return CN_R_DROP_NO_BACKEND;
  __u32 len = sizeof(out.ip) + sizeof(out.icmp) + sizeof(out.quoted_ip) + l4_len;
  out.ip.version = 4;
  out.ip.ihl = 5;
  out.ip.tot_len = bpf_htons(len);
  out.ip.ttl = 64;
  out.ip.protocol = CN_IPPROTO_ICMP;
  out.ip.saddr = out.quoted_ip.daddr;
  out.ip.daddr = out.quoted_ip.saddr;
  out.icmp.type = CN_ICMP_DEST_UNREACH;
  out.icmp.code = CN_ICMP_PORT_UNREACH;
  __s64 ip_sum = bpf_csum_diff(0, 0, (__be32*)&out.ip, sizeof(out.ip), 0);
  if (ip_sum < 0) return CN_R_DROP_NO_BACKEND;
  out.ip.check = cn_csum_fold((__u32)ip_sum);
  __s64 icmp_sum = bpf_csum_diff(0, 0, (__be32*)&out.icmp, sizeof(out) - sizeof(out.ip), 0);
  if (icmp_sum < 0) return CN_R_DROP_NO_BACKEND;
  out.icmp.checksum = cn_csum_fold((__u32)icmp_sum);
  if (bpf_skb_store_bytes(skb, p->l3_off, &out, sizeof(out), 0) < 0) return CN_R_DROP_NO_BACKEND;
  /* Swap MACs: the error goes back to the sender. */
  if (bpf_skb_store_bytes(skb, 0, p->src_mac, 6, 0) < 0 ||
      bpf_skb_store_bytes(skb, 6, p->dst_mac, 6, 0) < 0)
    return CN_R_DROP_NO_BACKEND;
  *action = bpf_redirect(skb->ifindex, 0);
  return CN_R_REJECT;
}

/* TCP: the segment becomes a reset from the service address (RFC 9293 3.10.7.1: <SEQ=SEG.ACK>
 * <CTL=RST> when it carries an ACK, else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>), sent back
 * out of the interface it came in on. Not an ICMP error: the pod's SYN crosses its veth and
 * comes back in the same softirq run, while connect() still holds the socket lock, and TCP only
 * notes an ICMP error for a locked socket (sk_err_soft, TcpExtLockDroppedIcmps) until the SYN is
 * retransmitted a second later; a reset is queued to the socket's backlog and refuses the
 * connection (ECONNREFUSED) as soon as connect() releases it. A reset is never answered. */
static __always_inline __u32 cn_reject_tcp(struct __sk_buff* skb, const struct cn_pkt* p,
                                           int* action) {
  *action = TC_ACT_SHOT;
  __u32 hl = p->ipv6 ? CN_IPV6_HDR_LEN : 20;
  if ((p->tcp_flags & CN_TCP_RST) || p->ihl != hl) return CN_R_DROP_NO_BACKEND;
  struct tcphdr th;
  __be16 l3_len;
  if (bpf_skb_load_bytes(skb, p->l4_off, &th, sizeof(th)) < 0 ||
      bpf_skb_load_bytes(skb, p->l3_off + (p->ipv6 ? 4 : 2), &l3_len, sizeof(l3_len)) < 0)
    return CN_R_DROP_NO_BACKEND;
  /* SEG.LEN: the payload, plus one for SYN and one for FIN. */
  __u32 seg_len = bpf_ntohs(l3_len) + (p->ipv6 ? CN_IPV6_HDR_LEN : 0) - hl - th.doff * 4 +
                  ((p->tcp_flags & CN_TCP_SYN) ? 1 : 0) + ((p->tcp_flags & CN_TCP_FIN) ? 1 : 0);
  struct tcphdr rst = {};
  rst.source = th.dest;
  rst.dest = th.source;
  rst.doff = 5;
  rst.rst = 1;
  if (p->tcp_flags & CN_TCP_ACK) {
    rst.seq = th.ack_seq;
  } else {
    rst.ack_seq = bpf_htonl(bpf_ntohl(th.seq) + seg_len);
    rst.ack = 1;
  }
  /* Pseudo-header (source, destination, protocol, length), then the header. */
  union cn_addr src = p->t.daddr, dst = p->t.saddr;
  __s64 sum;
  if (p->ipv6) {
    __be32 ph[2] = {bpf_htonl(sizeof(rst)), bpf_htonl(CN_IPPROTO_TCP)};
    sum = bpf_csum_diff(0, 0, (__be32*)src.a32, 16, 0);
    if (sum >= 0) sum = bpf_csum_diff(0, 0, (__be32*)dst.a32, 16, (__u32)sum);
    if (sum >= 0) sum = bpf_csum_diff(0, 0, ph, sizeof(ph), (__u32)sum);
  } else {
    __be32 ph[3] = {src.a32[3], dst.a32[3], bpf_htonl((CN_IPPROTO_TCP << 16) | sizeof(rst))};
    sum = bpf_csum_diff(0, 0, ph, sizeof(ph), 0);
  }
  if (sum >= 0) sum = bpf_csum_diff(0, 0, (__be32*)&rst, sizeof(rst), (__u32)sum);
  if (sum < 0) return CN_R_DROP_NO_BACKEND;
  rst.check = cn_csum_fold((__u32)sum);
  /* Drops the payload, options and link-layer padding: the reset is L3 header + 20 bytes. */
  if (bpf_skb_change_tail(skb, p->l4_off + sizeof(rst), 0) < 0) return CN_R_DROP_NO_BACKEND;
  if (p->ipv6) {
    struct ipv6hdr ip6 = {};
    ip6.version = 6;
    ip6.payload_len = bpf_htons(sizeof(rst));
    ip6.nexthdr = CN_IPPROTO_TCP;
    ip6.hop_limit = 64;
    __builtin_memcpy(&ip6.saddr, src.a32, 16);
    __builtin_memcpy(&ip6.daddr, dst.a32, 16);
    if (bpf_skb_store_bytes(skb, p->l3_off, &ip6, sizeof(ip6), 0) < 0) return CN_R_DROP_NO_BACKEND;
  } else {
    struct iphdr ip = {};
    ip.version = 4;
    ip.ihl = 5;
    ip.tot_len = bpf_htons(sizeof(ip) + sizeof(rst));
    ip.ttl = 64;
    ip.protocol = CN_IPPROTO_TCP;
    ip.saddr = src.a32[3];
    ip.daddr = dst.a32[3];
    __s64 ip_sum = bpf_csum_diff(0, 0, (__be32*)&ip, sizeof(ip), 0);
    if (ip_sum < 0) return CN_R_DROP_NO_BACKEND;
    ip.check = cn_csum_fold((__u32)ip_sum);
    if (bpf_skb_store_bytes(skb, p->l3_off, &ip, sizeof(ip), 0) < 0) return CN_R_DROP_NO_BACKEND;
  }
  if (bpf_skb_store_bytes(skb, p->l4_off, &rst, sizeof(rst), 0) < 0 ||
      bpf_skb_store_bytes(skb, 0, p->src_mac, 6, 0) < 0 ||
      bpf_skb_store_bytes(skb, 6, p->dst_mac, 6, 0) < 0)
    return CN_R_DROP_NO_BACKEND;
  *action = bpf_redirect(skb->ifindex, 0);
  return CN_R_REJECT;
}

/* Rewrites the packet in place into the reject: a TCP reset for TCP, an ICMP/ICMPv6 port
 * unreachable for the rest. Returns CN_R_REJECT (action redirect) or a drop reason when the
 * packet cannot be turned into one. */
static __always_inline __u32 cn_reject(struct __sk_buff* skb, const struct cn_pkt* p, int* action) {
  if (p->t.proto == CN_IPPROTO_TCP && !p->icmp_error) return cn_reject_tcp(skb, p, action);
  if (p->ipv6) return cn_reject6(skb, p, action);
  return cn_reject4(skb, p, action);
}

#endif /* CNINET_BPF_LIB_REJECT_H_ */
