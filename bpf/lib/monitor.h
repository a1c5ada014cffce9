/* Flow monitor: every dropped packet and, when cn_config.monitor_sample_h is set, one new flow
 * in N is sent to the cn_events ring buffer (struct cn_event, read by FlowMonitor). The record
 * is built in one non-inlined function so each program pays for it once in verifier terms; a
 * packet that is neither a drop nor a sampled new flow costs one compare. A full ring buffer
 * loses the event and counts CN_R_MONITOR_LOST. */
#ifndef CNINET_BPF_LIB_MONITOR_H_
#define CNINET_BPF_LIB_MONITOR_H_

#include "lib/counters.h"
#include "lib/parse.h"

/* Size is a placeholder: the loader sets it from DatapathConfig (MapSizes::monitor_ring_bytes). */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} cn_events SEC(".maps");

/* What a program knows for the monitor besides the verdict: its hook (CN_HOOK_*), the sampling
 * rate when the packet opened a new flow (else 0) and the policy slot (else 0). */
struct cn_mon {
  __u32 hook;
  __u32 sample;
  __u32 rule;
};

/* Reserves, fills and submits one event (type_hook: CN_EV_* | CN_HOOK_* << 8; BPF calls take at
 * most five arguments). */
static __attribute__((noinline)) int cn_mon_emit(struct __sk_buff* skb, const struct cn_pkt* p,
                                                 __u32 reason, __u32 type_hook, __u32 rule) {
  struct cn_event* e = bpf_ringbuf_reserve(&cn_events, sizeof(*e), 0);
  if (!e) {
    cn_count(CN_R_MONITOR_LOST, 0);
    return 0;
  }
  e->ts_ns = bpf_ktime_get_ns();
  __builtin_memcpy(&e->t, &p->t, sizeof(e->t));
  e->ifindex = skb->ifindex;
  e->reason = reason;
  e->rule = rule;
  e->len = skb->len;
  e->type = (__u8)type_hook;
  e->hook = (__u8)(type_hook >> 8);
  e->ipv6 = p->ipv6;
  e->tcp_flags = p->t.proto == CN_IPPROTO_TCP ? p->tcp_flags : 0;
  e->pad = 0;
  bpf_ringbuf_submit(e, 0);
  return 0;
}

/* cn_finish() plus the monitor: counts the verdict reason, sends the event, returns the action. */
static __always_inline int cn_finish_mon(struct __sk_buff* skb, const struct cn_pkt* p,
                                         const struct cn_mon* m, struct cn_verdict v) {
  cn_count(v.reason, skb->len);
  if (v.action == TC_ACT_SHOT)
    cn_mon_emit(skb, p, v.reason, CN_EV_DROP | (m->hook << 8), m->rule);
  else if (m->sample && bpf_get_prandom_u32() % m->sample == 0)
    cn_mon_emit(skb, p, v.reason, CN_EV_FLOW | (m->hook << 8), m->rule);
  return v.action;
}

#endif /* CNINET_BPF_LIB_MONITOR_H_ */
