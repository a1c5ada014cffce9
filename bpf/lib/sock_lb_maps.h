/* Maps of socket-level load balancing (bpf/sock.bpf.c). cn_sock_flows is also read by the
 * ingress policy (lib/policy.h) and by from-pod (the service mark), so the from-pod object
 * creates these maps and the others reuse them. Sizes are placeholders set by the loader. */
#ifndef CNINET_BPF_LIB_SOCK_LB_MAPS_H_
#define CNINET_BPF_LIB_SOCK_LB_MAPS_H_

#include "lib/maps.h"

/* Network namespaces (bpf_get_netns_cookie) whose sockets are translated; others untouched. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64);
  __type(value, struct cn_sock_netns_entry);
} cn_sock_netns SEC(".maps");

/* (socket cookie, backend, proto) -> service frontend: recvmsg and getpeername show it. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct cn_sock_rev_key);
  __type(value, struct cn_sock_rev_entry);
} cn_sock_rev SEC(".maps");

/* TCP connections socket LB addressed to a backend (client -> backend tuple, as on the wire):
 * the backend's ingress policy treats them as "through a Service" (isolation rule e). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct cn_tuple);
  __type(value, struct cn_sock_flow);
} cn_sock_flows SEC(".maps");

/* True when socket LB sent the flow `t` (client -> backend) to a backend of a service. */
static __always_inline int cn_sock_lb_flow(const struct cn_tuple* t) {
  return bpf_map_lookup_elem(&cn_sock_flows, t) != NULL;
}

/* from-pod, new plain flow: a TCP connection socket LB sent to a backend on another node gets
 * the service mark like a DNATed one (the backend's node has no record of it). Returns the
 * conntrack flag that keeps marking its later packets (CN_CT_F_REMOTE) or 0. */
static __always_inline __u16 cn_sock_lb_mark_new(struct __sk_buff* skb, const struct cn_config* cfg,
                                                 const struct cn_tuple* t) {
  if (!cfg->service_mark || t->proto != CN_IPPROTO_TCP || !cn_sock_lb_flow(t)) return 0;
  union cn_addr d = t->daddr;
  if (bpf_map_lookup_elem(&cn_endpoints, &d)) return 0; /* local: its to-pod sees the record */
  skb->mark |= cfg->service_mark;
  return CN_CT_F_REMOTE;
}

/* from-pod, conntrack hit: later packets of such a connection are marked too. */
static __always_inline void cn_sock_lb_mark_hit(struct __sk_buff* skb, const struct cn_config* cfg,
                                                __u16 ct_flags) {
  if ((ct_flags & (CN_CT_F_SERVICE | CN_CT_F_REPLY | CN_CT_F_REMOTE)) == CN_CT_F_REMOTE &&
      cfg->service_mark)
    skb->mark |= cfg->service_mark;
}

#endif /* CNINET_BPF_LIB_SOCK_LB_MAPS_H_ */
