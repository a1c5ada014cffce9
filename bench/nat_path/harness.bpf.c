// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* NAT-path benchmark harness. BPF_PROG_TEST_RUN with `repeat` runs a tc program many times on
 * ONE skb, so a program that rewrites the packet (DNAT, SNAT) would see its own output from the
 * second run on. Before every run this program writes the fixture's original bytes back over the
 * packet (and, for new-flow cases, a fresh source port with the checksum fixed), then tail-calls
 * the datapath's real program, unchanged. The same harness tail-calling an empty program
 * (NB_SLOT_EMPTY) measures the harness's own cost, which the driver subtracts. */
// linux/bpf.h must come before the libbpf BPF headers.
// clang-format off
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "harness_abi.h"
// clang-format on

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct nb_template);
} nb_template_map SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u32);
} nb_progs SEC(".maps");

SEC("tc")
int nb_harness(struct __sk_buff* skb) {
  __u32 zero = 0;
  struct nb_template* t = bpf_map_lookup_elem(&nb_template_map, &zero);
  if (!t) return TC_ACT_SHOT;
  __u32 len = t->len;
  if (len < 14 || len > NB_TEMPLATE_MAX) return TC_ACT_SHOT;
  if (bpf_skb_store_bytes(skb, 0, t->bytes, len, 0) < 0) return TC_ACT_SHOT;
  if (t->vary_sport) {
    __u32 span = t->sport_span;
    if (span == 0) return TC_ACT_SHOT;
    __u16 port = bpf_htons((__u16)(t->sport_base + (__u64)t->counter * t->sport_stride % span));
    t->counter++;
    if (t->csum_off && bpf_l4_csum_replace(skb, t->csum_off, t->sport_orig, port, sizeof(port)) < 0)
      return TC_ACT_SHOT;
    if (bpf_skb_store_bytes(skb, t->sport_off, &port, sizeof(port), 0) < 0) return TC_ACT_SHOT;
  }
  bpf_tail_call(skb, &nb_progs, skb->cb[0]);
  return TC_ACT_SHOT; /* empty slot */
}

/* The empty program behind NB_SLOT_EMPTY (same as the datapath's cn_noop). */
SEC("tc")
int nb_empty(struct __sk_buff* skb) {
  (void)skb;
  return TC_ACT_OK;
}
