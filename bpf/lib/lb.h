/* Service lookup and backend selection: sessionAffinity ClientIP, then the service's table
 * (Maglev: flow hash modulo M; random: random index over the backends). The table is an inner map
 * of cn_lb_tables, [n, ids...]; user space rewrites its slots in place while n stays (see abi.h).
 */
#ifndef CNINET_BPF_LIB_LB_H_
#define CNINET_BPF_LIB_LB_H_

#include "lib/maps.h"
#include "lib/parse.h"

static __always_inline struct cn_svc_entry* cn_svc_lookup(const struct cn_pkt* p) {
  struct cn_svc_key k = {};
  k.addr = p->t.daddr;
  k.port = (p->t.proto == CN_IPPROTO_ICMP || p->t.proto == CN_IPPROTO_ICMPV6) ? 0 : p->t.dport;
  k.proto = p->t.proto;
  return bpf_map_lookup_elem(&cn_services, &k);
}

enum cn_lb_result { CN_LB_OK = 0, CN_LB_NO_BACKEND, CN_LB_BACKEND_GONE };

/* Picks a backend for a new flow of service `svc`; fills *id and *be. */
static __always_inline int cn_lb_select(const struct cn_svc_entry* svc, const struct cn_pkt* p,
                                        __u32 now, __u32* id, struct cn_backend* be) {
  __u32 svc_id = svc->svc_id;
  void* table = bpf_map_lookup_elem(&cn_lb_tables, &svc_id);
  if (!table) return CN_LB_NO_BACKEND;
  __u32 zero = 0;
  __u32* size = bpf_map_lookup_elem(table, &zero);
  if (!size || *size == 0) return CN_LB_NO_BACKEND;
  __u32 n = *size;

  struct cn_affinity_key ak = {};
  if (svc->affinity_timeout_s) {
    ak.client_addr = p->t.saddr;
    ak.svc_id = svc_id;
    struct cn_affinity_entry* ae = bpf_map_lookup_elem(&cn_affinity, &ak);
    if (ae && now - ae->last_used_s <= svc->affinity_timeout_s) {
      __u32 aid = ae->backend_id;
      struct cn_backend* b = bpf_map_lookup_elem(&cn_backends, &aid);
      if (b) {
        ae->last_used_s = now;
        *id = aid;
        *be = *b;
        __u32 r = CN_R_AFFINITY_HIT;
        struct cn_counter* c = bpf_map_lookup_elem(&cn_counters, &r);
        if (c) c->packets += 1;
        return CN_LB_OK;
      }
    }
  }

  __u32 h;
  if (svc->flags & CN_SVC_F_MAGLEV)
    h = cn_flow_hash(p->t.saddr, p->t.daddr, p->t.sport, p->t.dport, p->t.proto);
  else
    h = bpf_get_prandom_u32();
  __u32 idx = 1 + h % n;
  __u32* bid = bpf_map_lookup_elem(table, &idx);
  if (!bid) return CN_LB_NO_BACKEND;
  __u32 b_id = *(volatile __u32*)bid;
  struct cn_backend* b = bpf_map_lookup_elem(&cn_backends, &b_id);
  if (!b) {
    /* User space rewrites a live table in place (same n) and deletes a removed backend only after
     * the slots stop naming it: an id that vanished between our slot read and the lookup means the
     * slot has been rewritten since, to a backend that existed before the rewrite. Read it again.
     */
    __u32 again = *(volatile __u32*)bid;
    if (again == b_id) return CN_LB_BACKEND_GONE;
    b_id = again;
    b = bpf_map_lookup_elem(&cn_backends, &b_id);
    if (!b) return CN_LB_BACKEND_GONE;
  }
  *id = b_id;
  *be = *b;
  if (svc->affinity_timeout_s) {
    struct cn_affinity_entry ne = {.backend_id = b_id, .last_used_s = now};
    bpf_map_update_elem(&cn_affinity, &ak, &ne, BPF_ANY);
  }
  return CN_LB_OK;
}

#endif /* CNINET_BPF_LIB_LB_H_ */
