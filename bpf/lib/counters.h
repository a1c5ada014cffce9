/* Per-CPU counters per verdict reason and event (enum cn_reason). */
#ifndef CNINET_BPF_LIB_COUNTERS_H_
#define CNINET_BPF_LIB_COUNTERS_H_

#include "lib/maps.h"

static __always_inline void cn_count(__u32 reason, __u32 bytes) {
  struct cn_counter* c = bpf_map_lookup_elem(&cn_counters, &reason);
  if (c) {
    c->packets += 1;
    c->bytes += bytes;
  }
}

/* Counts the verdict reason for the packet and returns its tc action. */
static __always_inline int cn_finish(struct __sk_buff* skb, struct cn_verdict v) {
  cn_count(v.reason, skb->len);
  return v.action;
}

#endif /* CNINET_BPF_LIB_COUNTERS_H_ */
