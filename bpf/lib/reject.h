/* Reject for a service without backends: the packet is turned into an ICMP destination (port)
 * unreachable from the service address back to the client and sent out of the interface it came
 * in on, as kube-proxy's REJECT does. */
#ifndef CNINET_BPF_LIB_REJECT_H_
#define CNINET_BPF_LIB_REJECT_H_

#include <linux/ip.h>
#include <linux/ipv6.h>

#include "lib/csum.h"

#define CN_ICMP_QUOTE_L4 8

/* IPv6: the packet becomes an ICMPv6 destination unreachable (code 4, port unreachable) from the
 * service address quoting the IPv6 header and 8 bytes of L4; the ICMPv6 checksum covers the
 * pseudo-header. Only packets without extension headers are quoted. */
static __always_inline __u32 cn_reject6(struct __sk_buff* skb, const struct cn_pkt* p,
                                        int* action) {
  *action = TC_ACT_SHOT;
  if (p->ihl != CN_IPV6_HDR_LEN || p->icmp_error) return CN_R_DROP_NO_BACKEND;
  __u32 quote_end = p->l4_off + CN_ICMP_QUOTE_L4;
  if (skb->len < quote_end) return CN_R_DROP_NO_BACKEND;
  struct ipv6hdr orig;
  if (bpf_skb_load_bytes(skb, p->l3_off, &orig, sizeof(orig)) < 0) return CN_R_DROP_NO_BACKEND;
  if (bpf_skb_change_tail(skb, quote_end, 0) < 0) return CN_R_DROP_NO_BACKEND;
  if (bpf_skb_adjust_room(skb, sizeof(struct ipv6hdr) + sizeof(struct cn_icmphdr), BPF_ADJ_ROOM_MAC,
                          0) < 0)
    return CN_R_DROP_NO_BACKEND;
  /* Layout now: eth | new ip6 (40) | icmp6 (8) | quoted ip6 (40) | quoted l4 (8). */
  struct {
    struct ipv6hdr ip;
    struct cn_icmphdr icmp;
    struct ipv6hdr quoted_ip;
    __u8 quoted_l4[CN_ICMP_QUOTE_L4];
  } out = {};
  __u32 icmp_len = sizeof(out) - sizeof(out.ip);
  out.ip.version = 6;
  out.ip.payload_len = bpf_htons(icmp_len);
  out.ip.nexthdr = CN_IPPROTO_ICMPV6;
  out.ip.hop_limit = 64;
  out.ip.saddr = orig.daddr;
  out.ip.daddr = orig.saddr;
  out.icmp.type = CN_ICMP6_DEST_UNREACH;
  out.icmp.code = CN_ICMP6_PORT_UNREACH;
  out.quoted_ip = orig;
  __u32 quoted_l4_off = p->l3_off + sizeof(out) - CN_ICMP_QUOTE_L4;
  if (bpf_skb_load_bytes(skb, quoted_l4_off, out.quoted_l4, sizeof(out.quoted_l4)) < 0)
    return CN_R_DROP_NO_BACKEND;
  /* Pseudo-header: source, destination, upper-layer length, next header. */
  __be32 ph[2] = {bpf_htonl(icmp_len), bpf_htonl(CN_IPPROTO_ICMPV6)};
  __s64 sum = bpf_csum_diff(0, 0, (__be32*)&out.ip.saddr, 32, 0);
  if (sum < 0) return CN_R_DROP_NO_BACKEND;
  sum = bpf_csum_diff(0, 0, ph, sizeof(ph), (__u32)sum);
  if (sum < 0) return CN_R_DROP_NO_BACKEND;
  sum = bpf_csum_diff(0, 0, (__be32*)&out.icmp, icmp_len, (__u32)sum);
  if (sum < 0) return CN_R_DROP_NO_BACKEND;
  out.icmp.checksum = cn_csum_fold((__u32)sum);
  if (bpf_skb_store_bytes(skb, p->l3_off, &out, sizeof(out), 0) < 0) return CN_R_DROP_NO_BACKEND;
  __u8 macs[12];
  __builtin_memcpy(macs, p->src_mac, 6);
  __builtin_memcpy(macs + 6, p->dst_mac, 6);
  if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0) return CN_R_DROP_NO_BACKEND;
  *action = bpf_redirect(skb->ifindex, 0);
  return CN_R_REJECT;
}

/* Rewrites the packet in place into the ICMP error. Returns CN_R_REJECT (action redirect) or a
 * drop reason when the packet cannot be turned into one. */
static __always_inline __u32 cn_reject(struct __sk_buff* skb, const struct cn_pkt* p, int* action) {
  if (p->ipv6) return cn_reject6(skb, p, action);
  *action = TC_ACT_SHOT;
  /* Only option-less IPv4 with at least 8 bytes of L4 can be quoted; never reject ICMP errors. */
  if (p->ihl != 20 || p->icmp_error) return CN_R_DROP_NO_BACKEND;
  __u32 quote_end = p->l4_off + CN_ICMP_QUOTE_L4;
  if (skb->len < quote_end) return CN_R_DROP_NO_BACKEND;

  struct iphdr orig;
  if (bpf_skb_load_bytes(skb, p->l3_off, &orig, sizeof(orig)) < 0) return CN_R_DROP_NO_BACKEND;
  if (bpf_skb_change_tail(skb, quote_end, 0) < 0) return CN_R_DROP_NO_BACKEND;
  if (bpf_skb_adjust_room(skb, sizeof(struct iphdr) + sizeof(struct cn_icmphdr), BPF_ADJ_ROOM_MAC,
                          0) < 0)
    return CN_R_DROP_NO_BACKEND;

  /* Layout now: eth | new ip (20) | icmp (8) | quoted ip (20) | quoted l4 (8). */
  struct {
    struct iphdr ip;
    struct cn_icmphdr icmp;
    struct iphdr quoted_ip;
    __u8 quoted_l4[CN_ICMP_QUOTE_L4];
  } out = {};
  out.ip.version = 4;
  out.ip.ihl = 5;
  out.ip.tot_len = bpf_htons(sizeof(out));
  out.ip.ttl = 64;
  out.ip.protocol = CN_IPPROTO_ICMP;
  out.ip.saddr = orig.daddr;
  out.ip.daddr = orig.saddr;
  out.icmp.type = CN_ICMP_DEST_UNREACH;
  out.icmp.code = CN_ICMP_PORT_UNREACH;
  out.quoted_ip = orig;
  __u32 quoted_l4_off =
      p->l3_off + sizeof(struct iphdr) + sizeof(struct cn_icmphdr) + sizeof(struct iphdr);
  if (bpf_skb_load_bytes(skb, quoted_l4_off, out.quoted_l4, sizeof(out.quoted_l4)) < 0)
    return CN_R_DROP_NO_BACKEND;

  __s64 ip_sum = bpf_csum_diff(0, 0, (__be32*)&out.ip, sizeof(out.ip), 0);
  if (ip_sum < 0) return CN_R_DROP_NO_BACKEND;
  out.ip.check = cn_csum_fold((__u32)ip_sum);
  __s64 icmp_sum = bpf_csum_diff(0, 0, (__be32*)&out.icmp, sizeof(out) - sizeof(out.ip), 0);
  if (icmp_sum < 0) return CN_R_DROP_NO_BACKEND;
  out.icmp.checksum = cn_csum_fold((__u32)icmp_sum);

  if (bpf_skb_store_bytes(skb, p->l3_off, &out, sizeof(out), 0) < 0) return CN_R_DROP_NO_BACKEND;
  /* Swap MACs: the error goes back to the sender. */
  __u8 macs[12];
  __builtin_memcpy(macs, p->src_mac, 6);
  __builtin_memcpy(macs + 6, p->dst_mac, 6);
  if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0) return CN_R_DROP_NO_BACKEND;
  *action = bpf_redirect(skb->ifindex, 0);
  return CN_R_REJECT;
}

#endif /* CNINET_BPF_LIB_REJECT_H_ */
