/* Shared ABI between the BPF programs in bpf/ and the C++ library: map keys, values, the
 * configuration record and the counter reasons. Plain C, fixed layout, sizes static-asserted;
 * every multi-byte address/port field is in network byte order unless its name ends in _h. */
#ifndef CNINET_DATAPATH_ABI_H_
#define CNINET_DATAPATH_ABI_H_

#ifdef __cplusplus
#include <cstdint>
#define CN_STATIC_ASSERT static_assert
typedef uint8_t cn_u8;
typedef uint16_t cn_u16;
typedef uint32_t cn_u32;
typedef uint64_t cn_u64;
#else
#ifdef __BPF__
#include <linux/types.h>
typedef __u8 cn_u8;
typedef __u16 cn_u16;
typedef __u32 cn_u32;
typedef __u64 cn_u64;
#else
#include <stdint.h>
typedef uint8_t cn_u8;
typedef uint16_t cn_u16;
typedef uint32_t cn_u32;
typedef uint64_t cn_u64;
#endif
#define CN_STATIC_ASSERT _Static_assert
#endif

/* Map names, as pinned under <bpffs>/cninet/<instance>/. */
#define CN_MAP_CONFIG "cn_config"
#define CN_MAP_CT "cn_ct"
#define CN_MAP_NAT "cn_nat"
#define CN_MAP_SERVICES "cn_services"
#define CN_MAP_BACKENDS "cn_backends"
#define CN_MAP_LB_TABLES "cn_lb_tables"
#define CN_MAP_AFFINITY "cn_affinity"
#define CN_MAP_ENDPOINTS "cn_endpoints"
#define CN_MAP_COUNTERS "cn_counters"

#define CN_MAX_NODE_ADDRS 4
/* Upper bound of a load-balancing table (Maglev M or number of backends for random selection). */
#define CN_LB_TABLE_MAX 65521

/* Datapath configuration, element 0 of the cn_config array. */
struct cn_config {
  cn_u32 node_addrs[CN_MAX_NODE_ADDRS]; /* node IPv4 addresses (network order); 0 = unused */
  cn_u32 cluster_net;                   /* cluster CIDR network (network order) */
  cn_u32 cluster_mask;                  /* cluster CIDR mask (network order) */
  cn_u16 nat_port_min_h;                /* SNAT port range, host order, inclusive */
  cn_u16 nat_port_max_h;
  cn_u16 nat_retries;       /* linear probing budget after the random start */
  cn_u16 flags;             /* CN_CFG_F_* */
  cn_u32 tcp_syn_timeout_s; /* conntrack lifetimes in seconds */
  cn_u32 tcp_established_timeout_s;
  cn_u32 tcp_closing_timeout_s;
  cn_u32 udp_timeout_s;
  cn_u32 other_timeout_s; /* ICMP and anything else tracked */
  cn_u32 pad0;
};
CN_STATIC_ASSERT(sizeof(struct cn_config) == 56, "cn_config layout");

/* cn_config.flags */
#define CN_CFG_F_MASQUERADE 0x1 /* SNAT pod traffic leaving the cluster CIDR on the uplink */

/* Directions/kinds of a conntrack entry (cn_ct_entry.flags). */
#define CN_CT_F_REPLY 0x01        /* entry matches the reply direction of the flow */
#define CN_CT_F_SERVICE 0x02      /* flow was DNATed to a service backend */
#define CN_CT_F_NODEPORT 0x04     /* flow entered from the uplink to a NodePort/ExternalIP */
#define CN_CT_F_SNAT 0x08         /* flow is also source-NATed (remote NodePort backend) */
#define CN_CT_F_INBOUND 0x10      /* plain flow that entered from the uplink */
#define CN_CT_F_SEEN_NON_SYN 0x20 /* a non-SYN packet was seen in this direction */
#define CN_CT_F_CLOSING 0x40      /* FIN or RST seen (either direction) */

/* 5-tuple key of conntrack and NAT entries. For ICMP echo: request sport=id dport=0,
 * reply sport=0 dport=id. */
struct cn_tuple {
  cn_u32 saddr;
  cn_u32 daddr;
  cn_u16 sport;
  cn_u16 dport;
  cn_u8 proto;
  cn_u8 pad[3];
};
CN_STATIC_ASSERT(sizeof(struct cn_tuple) == 16, "cn_tuple layout");

/* Conntrack entry. For a service flow the forward entry (client -> VIP) carries the backend in
 * nat_addr/nat_port; the reply entry (backend -> client) carries the VIP to restore. */
struct cn_ct_entry {
  cn_u64 packets;
  cn_u64 bytes;
  cn_u32 expires_s;  /* CLOCK_MONOTONIC seconds after which the entry is stale */
  cn_u32 created_s;  /* CLOCK_MONOTONIC seconds at creation */
  cn_u32 nat_addr;   /* forward: backend address; reply: VIP/node address to restore */
  cn_u16 nat_port;   /* forward: backend port; reply: VIP/nodePort to restore */
  cn_u16 flags;      /* CN_CT_F_* */
  cn_u32 svc_id;     /* service slot, 0 when none */
  cn_u32 backend_id; /* backend id, 0 when none */
  cn_u8 tcp_flags;   /* OR of TCP flags seen in this direction */
  cn_u8 pad[7];
};
CN_STATIC_ASSERT(sizeof(struct cn_ct_entry) == 48, "cn_ct_entry layout");

/* Direction of a NAT mapping key. */
#define CN_NAT_EGRESS 1  /* key: original (inside) tuple; value: new source */
#define CN_NAT_INGRESS 2 /* key: reply tuple to the translated address; value: original source */

/* NAT key: a tuple whose pad[0] holds the direction. */
struct cn_nat_entry {
  cn_u32 to_addr; /* address to write (egress: node address, ingress: original source) */
  cn_u16 to_port; /* port (or ICMP id) to write */
  cn_u8 tcp_closing;
  cn_u8 pad;
  cn_u32 expires_s; /* CLOCK_MONOTONIC seconds */
  cn_u32 created_s;
};
CN_STATIC_ASSERT(sizeof(struct cn_nat_entry) == 16, "cn_nat_entry layout");

/* Service frontend key: VIP (ClusterIP, ExternalIP or node address for NodePort), port, protocol.
 */
struct cn_svc_key {
  cn_u32 addr;
  cn_u16 port;
  cn_u8 proto;
  cn_u8 pad;
};
CN_STATIC_ASSERT(sizeof(struct cn_svc_key) == 8, "cn_svc_key layout");

/* cn_svc_entry.flags */
#define CN_SVC_F_EXTERNAL 0x1 /* reachable from the uplink (NodePort, ExternalIP) */
#define CN_SVC_F_NODEPORT 0x2 /* frontend is a node address + nodePort */
#define CN_SVC_F_MAGLEV 0x4   /* table is a Maglev table (else random pick over backends) */

/* Service frontend value: its slot in cn_lb_tables and behaviour flags. */
struct cn_svc_entry {
  cn_u32 svc_id;             /* slot index in cn_lb_tables; never 0 */
  cn_u32 affinity_timeout_s; /* sessionAffinity ClientIP timeout; 0 = off */
  cn_u16 flags;              /* CN_SVC_F_* */
  cn_u16 pad;
  cn_u32 pad2;
};
CN_STATIC_ASSERT(sizeof(struct cn_svc_entry) == 16, "cn_svc_entry layout");

/* The inner map of cn_lb_tables (an array of u32): element 0 holds the table size n (0 = no
 * backends: reject), elements 1..n backend ids. A new table is a new inner map swapped in with one
 * update of the outer array, so readers see either the old or the new table, never a mix. */

/* Backend (key: u32 backend id, never 0). */
struct cn_backend {
  cn_u32 addr;
  cn_u16 port; /* 0 keeps the frontend port */
  cn_u8 flags;
  cn_u8 pad;
};
CN_STATIC_ASSERT(sizeof(struct cn_backend) == 8, "cn_backend layout");

/* sessionAffinity ClientIP: (client, service) -> backend. */
struct cn_affinity_key {
  cn_u32 client_addr;
  cn_u32 svc_id;
};
CN_STATIC_ASSERT(sizeof(struct cn_affinity_key) == 8, "cn_affinity_key layout");

/* Value of cn_affinity. */
struct cn_affinity_entry {
  cn_u32 backend_id;
  cn_u32 last_used_s; /* CLOCK_MONOTONIC seconds */
};
CN_STATIC_ASSERT(sizeof(struct cn_affinity_entry) == 8, "cn_affinity_entry layout");

/* Local endpoint (key: pod IPv4 address, network order). */
struct cn_endpoint {
  cn_u32 ifindex; /* host-side veth */
  cn_u8 mac[6];   /* pod MAC */
  cn_u16 flags;
};
CN_STATIC_ASSERT(sizeof(struct cn_endpoint) == 12, "cn_endpoint layout");

/* Per-CPU counter value, one per reason. */
struct cn_counter {
  cn_u64 packets;
  cn_u64 bytes;
};
CN_STATIC_ASSERT(sizeof(struct cn_counter) == 16, "cn_counter layout");

/* Counter indexes. Every packet is counted under exactly one verdict reason (< CN_R_EVENTS);
 * events at or above CN_R_EVENTS are counted in addition. */
enum cn_reason {
  CN_R_PASS = 0,          /* passed untouched */
  CN_R_PASS_NON_IP,       /* neither IPv4 nor IPv6 */
  CN_R_PASS_IPV6,         /* IPv6, parsed and passed untouched */
  CN_R_PASS_FRAGMENT,     /* IPv4 fragment, passed untranslated */
  CN_R_DNAT,              /* translated to a service backend */
  CN_R_REV_DNAT,          /* reply translated back to the service address */
  CN_R_SNAT,              /* source-NATed (masquerade or remote NodePort) */
  CN_R_REV_SNAT,          /* reply translated back to the original source */
  CN_R_REJECT,            /* service without backends: ICMP unreachable sent back */
  CN_R_DROP_MALFORMED,    /* truncated or invalid headers */
  CN_R_DROP_NO_BACKEND,   /* no backend and no reject possible */
  CN_R_DROP_CT_FULL,      /* conntrack entry could not be created */
  CN_R_DROP_NAT_NO_PORT,  /* no free SNAT port within the retry budget */
  CN_R_DROP_NAT_FULL,     /* NAT map full */
  CN_R_DROP_BACKEND_GONE, /* selected backend id not in the backends map */
  CN_R_DROP_CSUM,         /* checksum/packet rewrite helper failed */
  CN_R_DROP_NO_CONFIG,    /* config map empty */
  CN_R_EVENTS = 32,
  CN_R_CT_NEW = CN_R_EVENTS, /* conntrack pair created */
  CN_R_CT_HIT,               /* conntrack hit */
  CN_R_NAT_NEW,              /* SNAT mapping created */
  CN_R_NAT_PORT_RETRY,       /* SNAT port candidate taken, probed further */
  CN_R_AFFINITY_HIT,         /* backend chosen by sessionAffinity */
  CN_R_ICMP_ERROR_XLATED,    /* ICMP error rewritten for its flow */
  CN_R_MAX = 48
};

/* Flow hash used for Maglev selection; the C++ side uses the same function so tests can predict
 * the backend of a flow. Fields are taken exactly as stored in cn_tuple (network order). */
#if defined(__BPF__)
#define CN_INLINE static inline __attribute__((always_inline))
#else
#define CN_INLINE static inline
#endif
CN_INLINE cn_u32 cn_mix32(cn_u32 h) {
  h ^= h >> 16;
  h *= 0x85ebca6bU;
  h ^= h >> 13;
  h *= 0xc2b2ae35U;
  h ^= h >> 16;
  return h;
}
CN_INLINE cn_u32 cn_flow_hash(cn_u32 saddr, cn_u32 daddr, cn_u16 sport, cn_u16 dport, cn_u8 proto) {
  cn_u32 h = cn_mix32(saddr ^ 0x9e3779b9U);
  h = cn_mix32(h ^ daddr);
  h = cn_mix32(h ^ (((cn_u32)sport << 16) | (cn_u32)dport));
  return cn_mix32(h ^ (cn_u32)proto);
}

#endif /* CNINET_DATAPATH_ABI_H_ */
