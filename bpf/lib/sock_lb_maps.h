/* Maps of socket-level load balancing (bpf/sock.bpf.c). cn_sock_flows is also read by the
 * ingress policy (lib/policy.h), so the to-pod object creates these maps and the sock object
 * reuses them. Sizes are placeholders set by the loader (MapSizes). */
#ifndef CNINET_BPF_LIB_SOCK_LB_MAPS_H_
#define CNINET_BPF_LIB_SOCK_LB_MAPS_H_

#include "lib/common.h"

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

#endif /* CNINET_BPF_LIB_SOCK_LB_MAPS_H_ */
