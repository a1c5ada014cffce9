// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cn_noop: an empty tc program returning TC_ACT_OK, the floor that benchmarks compare against. */
// linux/bpf.h must come before the libbpf BPF headers.
// clang-format off
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
// clang-format on

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int cn_noop(struct __sk_buff* skb) {
  (void)skb;
  return TC_ACT_OK;
}
