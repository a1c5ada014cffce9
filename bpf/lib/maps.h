/* Map definitions shared by every cninet program object. Sizes are placeholders: the loader sets
 * them from DatapathConfig before loading, and pinned maps are reused across objects/restarts. */
#ifndef CNINET_BPF_LIB_MAPS_H_
#define CNINET_BPF_LIB_MAPS_H_

#include "lib/common.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct cn_config);
} cn_config SEC(".maps");

/* Conntrack: LRU hash by default; the loader may switch it to a plain hash. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct cn_tuple);
  __type(value, struct cn_ct_entry);
} cn_ct SEC(".maps");

/* SNAT mappings, both directions (cn_tuple.pad[0] = CN_NAT_EGRESS / CN_NAT_INGRESS). A plain
 * hash: a live mapping is never evicted; a full map is a counted drop of the new flow.
 * Preallocated: an insert takes a free element instead of a kmalloc (the new SNAT flow's cost). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct cn_tuple);
  __type(value, struct cn_nat_entry);
} cn_nat SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct cn_svc_key);
  __type(value, struct cn_svc_entry);
} cn_services SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct cn_backend);
} cn_backends SEC(".maps");

/* Inner template of cn_lb_tables; BPF_F_INNER_MAP lets each service's table have its own size,
 * BPF_F_MMAPABLE lets user space fill a new table, and rewrite a live one of unchanged size in
 * place (no outer update, so no RCU grace period), with plain stores instead of syscalls. */
struct cn_lb_inner {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, __u32);
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __array(values, struct cn_lb_inner);
} cn_lb_tables SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct cn_affinity_key);
  __type(value, struct cn_affinity_entry);
} cn_affinity SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, union cn_addr);
  __type(value, struct cn_endpoint);
} cn_endpoints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, CN_R_MAX);
  __type(key, __u32);
  __type(value, struct cn_counter);
} cn_counters SEC(".maps");

#endif /* CNINET_BPF_LIB_MAPS_H_ */
