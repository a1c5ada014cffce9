/// @file
/// Shared ABI between the BPF programs in bpf/ and the C++ library: map keys, values, the
/// configuration record and the counter reasons. Plain C, fixed layout, sizes static-asserted;
/// every multi-byte address/port field is in network byte order unless its name ends in _h.
#ifndef CNINET_DATAPATH_ABI_H_
#define CNINET_DATAPATH_ABI_H_

#ifdef __cplusplus
#include <cstdint>
/// Compile-time layout check (static_assert in C++, _Static_assert in C).
#define CN_STATIC_ASSERT static_assert
typedef uint8_t cn_u8;    ///< Fixed-width integers shared by C, C++ and BPF C.
typedef uint16_t cn_u16;  ///< 16-bit unsigned.
typedef uint32_t cn_u32;  ///< 32-bit unsigned.
typedef uint64_t cn_u64;  ///< 64-bit unsigned.
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

// Map names, as pinned under <bpffs>/cninet/<instance>/.
#define CN_MAP_CONFIG "cn_config"          ///< Configuration array (one cn_config).
#define CN_MAP_CT "cn_ct"                  ///< Conntrack.
#define CN_MAP_NAT "cn_nat"                ///< SNAT mappings, both directions.
#define CN_MAP_SERVICES "cn_services"      ///< Frontends -> services.
#define CN_MAP_BACKENDS "cn_backends"      ///< Backend id -> backend.
#define CN_MAP_LB_TABLES "cn_lb_tables"    ///< Service id -> LB table (array of maps).
#define CN_MAP_AFFINITY "cn_affinity"      ///< sessionAffinity ClientIP.
#define CN_MAP_ENDPOINTS "cn_endpoints"    ///< Local pods.
#define CN_MAP_COUNTERS "cn_counters"      ///< Per-CPU counters.
#define CN_MAP_POL_EPS "cn_pol_eps"        ///< Ingress policy of each local endpoint.
#define CN_MAP_POL_IDS "cn_pol_ids"        ///< Pod address -> security identity.
#define CN_MAP_POL_CIDRS "cn_pol_cidrs"    ///< Address prefix -> CIDR identity (LPM trie).
#define CN_MAP_POL_RULES "cn_pol_rules"    ///< Allow entries (LPM trie).
#define CN_MAP_POL_STATS "cn_pol_stats"    ///< Per-CPU verdict counters per (endpoint, rule) slot.
#define CN_MAP_SOCK_NETNS "cn_sock_netns"  ///< Netns cookies whose sockets socket LB translates.
#define CN_MAP_SOCK_REV "cn_sock_rev"      ///< (socket, backend) -> service address (recvmsg).
#define CN_MAP_SOCK_FLOWS "cn_sock_flows"  ///< TCP tuples socket LB sent to a backend (policy).
#define CN_MAP_EVENTS "cn_events"          ///< Ring buffer of drop/flow events (cn_event).

// The SNAT allocator's maps (bpf/lib/nat.h).
#define CN_MAP_NAT_PORTS "cn_nat_ports"      ///< Port index: node ports in use per destination.
#define CN_MAP_NAT_SCRATCH "cn_nat_scratch"  ///< Per-CPU state of the allocator (not pinned).

/// Most node addresses the datapath knows.
#define CN_MAX_NODE_ADDRS 4
/// Upper bound of a load-balancing table (Maglev M or number of backends for random selection).
#define CN_LB_TABLE_MAX 65521

/// Version of this layout, stored in cn_config.abi_version: a pinned map set of another version
/// is refused (remove it with `cninet-dp unpin` or a teardown).
#define CN_ABI_VERSION 2

/// An address of either family, network order: IPv6 as is, IPv4 as IPv4-mapped IPv6
/// (0:0:0:0:0:ffff:a.b.c.d, the IPv4 address in a32[3]), so one key layout serves both families.
union cn_addr {
  cn_u8 a8[16];   ///< Bytes.
  cn_u16 a16[8];  ///< 16-bit words.
  cn_u32 a32[4];  ///< 32-bit words; a32[3] is the IPv4 address of a mapped address.
};

/// Indexes of the per-family arrays of cn_config.
#define CN_FAM_V4 0  ///< IPv4 slot.
#define CN_FAM_V6 1  ///< IPv6 slot.

/// Datapath configuration, element 0 of the cn_config array.
struct cn_config {
  cn_u32 abi_version;           ///< CN_ABI_VERSION of the writer.
  cn_u8 cluster_prefix_len[2];  ///< Cluster CIDR per family, 128-bit terms; 0 = none.
  /// Flow monitor: one new flow in `monitor_sample_h` is sent to cn_events (0 = off; host order).
  /// Drops are always sent.
  cn_u16 monitor_sample_h;
  union cn_addr node_addrs[CN_MAX_NODE_ADDRS];  ///< Node addresses (either family); 0 = unused.
  union cn_addr cluster_net[2];                 ///< Cluster CIDR network per family (CN_FAM_*).
  union cn_addr cluster_mask[2];                ///< Cluster CIDR mask per family (128-bit).
  cn_u16 nat_port_min_h;                        ///< First SNAT port (host order).
  cn_u16 nat_port_max_h;                        ///< Last SNAT port (host order, inclusive).
  cn_u16 nat_retries;                           ///< Linear-probing budget after the random start.
  cn_u16 flags;                                 ///< CN_CFG_F_* bits.
  cn_u32 tcp_syn_timeout_s;          ///< TCP lifetime until a non-SYN packet is seen (s).
  cn_u32 tcp_established_timeout_s;  ///< Established TCP lifetime (s).
  cn_u32 tcp_closing_timeout_s;      ///< TCP lifetime after FIN/RST (s).
  cn_u32 udp_timeout_s;              ///< UDP lifetime (s).
  cn_u32 other_timeout_s;            ///< ICMP and other protocols lifetime (s).
  /// skb->mark bits that cn_from_pod/cn_from_world set on service flows DNATed to a backend on
  /// another node, and that cn_to_pod reads as "came through a Service" (0 = off).
  cn_u32 service_mark;
};

/// cn_config.flags: SNAT pod traffic leaving the cluster CIDR on the uplink.
#define CN_CFG_F_MASQUERADE 0x1

// Kinds of a conntrack entry (cn_ct_entry.flags).
#define CN_CT_F_REPLY 0x01         ///< Entry matches the reply direction of the flow.
#define CN_CT_F_SERVICE 0x02       ///< Flow was DNATed to a service backend.
#define CN_CT_F_NODEPORT 0x04      ///< Flow entered from the uplink to a NodePort/ExternalIP.
#define CN_CT_F_SNAT 0x08          ///< Flow is also source-NATed (remote NodePort backend).
#define CN_CT_F_INBOUND 0x10       ///< Plain flow that entered from the uplink.
#define CN_CT_F_SEEN_NON_SYN 0x20  ///< A non-SYN packet was seen in this direction.
#define CN_CT_F_CLOSING 0x40       ///< FIN or RST seen (either direction).
#define CN_CT_F_POLICY_OK 0x80     ///< The destination's ingress policy admitted this flow.
#define CN_CT_F_REMOTE 0x100  ///< Service flow to a backend on another node (service_mark set).

/// 5-tuple key of conntrack and NAT entries. For ICMP echo: request sport=id dport=0,
/// reply sport=0 dport=id.
struct cn_tuple {
  union cn_addr saddr;  ///< Source address.
  union cn_addr daddr;  ///< Destination address.
  cn_u16 sport;         ///< Source port (ICMP echo request: id).
  cn_u16 dport;         ///< Destination port (ICMP echo reply: id).
  cn_u8 proto;          ///< IP protocol (ICMPv6: 58).
  cn_u8 pad[3];         ///< Zero; NAT keys keep their direction in pad[0].
};

/// Conntrack entry. For a service flow the forward entry (client -> VIP) carries the backend in
/// nat_addr/nat_port; the reply entry (backend -> client) carries the VIP to restore.
struct cn_ct_entry {
  cn_u64 packets;          ///< Packets seen in this direction.
  cn_u64 bytes;            ///< Bytes seen in this direction.
  cn_u32 expires_s;        ///< CLOCK_MONOTONIC second after which the entry is stale.
  cn_u32 created_s;        ///< CLOCK_MONOTONIC second of creation.
  union cn_addr nat_addr;  ///< Forward: backend address; reply: address restored as source.
  cn_u16 nat_port;         ///< Forward: backend port; reply: port restored as source.
  cn_u16 flags;            ///< CN_CT_F_* bits.
  cn_u32 svc_id;           ///< Service id, 0 when none.
  cn_u32 backend_id;       ///< Backend id, 0 when none.
  cn_u8 tcp_flags;         ///< OR of the TCP flags seen in this direction.
  cn_u8 pad[3];            ///< Zero.
};

/// Direction of a NAT mapping key.
#define CN_NAT_EGRESS 1   ///< NAT key direction: the inside flow; value: the new source.
#define CN_NAT_INGRESS 2  ///< NAT key direction: replies to the translated address.

/// NAT key: a tuple whose pad[0] holds the direction.
struct cn_nat_entry {
  union cn_addr to_addr;  ///< Address to write (egress: node address; ingress: original source).
  cn_u16 to_port;         ///< Port or ICMP id to write.
  cn_u8 tcp_closing;      ///< 1 once FIN/RST was seen.
  cn_u8 pad;              ///< Zero.
  cn_u32 expires_s;       ///< CLOCK_MONOTONIC second after which the mapping is stale.
  cn_u32 created_s;       ///< CLOCK_MONOTONIC second of creation.
};

/// Key of cn_nat_ports, the SNAT allocator's index (a hint; cn_nat stays authoritative): one
/// 64-port block of the node ports in use toward one destination (remote address:port, proto).
/// The value is a cn_u64 bitmap: bit i set = node port block * 64 + i is taken.
struct cn_nat_ports_key {
  union cn_addr node;    ///< Node address the flows are translated to.
  union cn_addr remote;  ///< Destination address.
  cn_u16 rport;          ///< Destination port (network order; ICMP echo: 0).
  cn_u16 block;          ///< Node port >> 6 (host order).
  cn_u8 proto;           ///< IP protocol.
  cn_u8 pad[3];          ///< Zero.
};

/// Service frontend key: VIP (ClusterIP, ExternalIP or node address for NodePort), port, protocol.
///
struct cn_svc_key {
  union cn_addr addr;  ///< ClusterIP, ExternalIP or node address.
  cn_u16 port;         ///< Frontend port (0 for ICMP).
  cn_u8 proto;         ///< IP protocol.
  cn_u8 pad;           ///< Zero.
};

/// cn_svc_entry.flags
#define CN_SVC_F_EXTERNAL 0x1  ///< Reachable from the uplink (NodePort, ExternalIP).
#define CN_SVC_F_NODEPORT 0x2  ///< Frontend is a node address + nodePort.
#define CN_SVC_F_MAGLEV 0x4    ///< Maglev table (else a random pick over the backends).
/// No backends: drop new flows (drop_no_backend) instead of rejecting them. For frontends whose
/// backends are this node's only (externalTrafficPolicy: Local), as kube-proxy does.
#define CN_SVC_F_DROP_EMPTY 0x8
/// The Maglev size was chosen from the backend count (ServiceTable's automatic M); user space only.
#define CN_SVC_F_MAGLEV_AUTO 0x10

/// Service frontend value: its slot in cn_lb_tables and behaviour flags.
struct cn_svc_entry {
  cn_u32 svc_id;              ///< Service id: slot in cn_lb_tables; never 0.
  cn_u32 affinity_timeout_s;  ///< sessionAffinity ClientIP timeout; 0 = off.
  cn_u16 flags;               ///< CN_SVC_F_* bits.
  cn_u16 pad;                 ///< Zero.
  cn_u32 pad2;                ///< Zero.
};

// The inner map of cn_lb_tables (an array of u32, BPF_F_MMAPABLE): element 0 holds the table size
// n (0 = no backends: reject), elements 1..n backend ids. A change of n is a new inner map swapped
// in with one update of the outer array. A change keeping n rewrites the slots in place, each with
// one aligned 4-byte store, after the new backends exist and before the removed ones are deleted;
// a reader whose backend vanished between its slot read and its backend lookup re-reads the slot
// (cn_lb_select), which by then names a live backend. n never changes in place.

/// Backend (key: u32 backend id, never 0).
struct cn_backend {
  union cn_addr addr;  ///< Backend address.
  cn_u16 port;         ///< Backend port; 0 keeps the frontend port.
  cn_u8 flags;         ///< Reserved (0).
  cn_u8 pad;           ///< Zero.
};

/// sessionAffinity ClientIP: (client, service) -> backend.
struct cn_affinity_key {
  union cn_addr client_addr;  ///< Client address.
  cn_u32 svc_id;              ///< Service id.
};

/// Value of cn_affinity.
struct cn_affinity_entry {
  cn_u32 backend_id;   ///< Backend the client sticks to.
  cn_u32 last_used_s;  ///< CLOCK_MONOTONIC second of the last new flow.
};

/// Local endpoint (key: pod address, union cn_addr).
struct cn_endpoint {
  cn_u32 ifindex;  ///< Host-side veth ifindex.
  cn_u8 mac[6];    ///< Pod MAC.
  cn_u16 flags;    ///< Reserved (0).
};

// ---- Ingress policy (bpf/lib/policy.h, cninet::datapath::PolicyTable) ----

// cn_pol_endpoint.flags
#define CN_POL_F_DEFAULT_DENY 0x1   ///< New flows enter only through an allow entry (or service).
#define CN_POL_F_ISOLATED 0x2       ///< The pod's namespace is isolated.
#define CN_POL_F_ALLOW_SERVICE 0x4  ///< Flows DNATed by a service enter (isolation rule e).
#define CN_POL_F_NETPOL 0x8         ///< At least one ingress NetworkPolicy selects the pod.

/// Ingress policy of a local endpoint (key: pod address, union cn_addr); endpoints without an
/// entry accept everything. The slots index cn_pol_stats.
struct cn_pol_endpoint {
  cn_u32 flags;         ///< CN_POL_F_* bits.
  cn_u32 service_slot;  ///< Counter of new flows admitted through a service (isolation).
  cn_u32 deny_slot;     ///< Counter of denied packets.
  cn_u32 host_slot;     ///< Counter of host-originated packets (never filtered).
};

/// Peer identity of an allow entry that matches every source.
#define CN_POL_ID_ANY 0u
/// First identity number of a pod label set; 1..255 are reserved.
#define CN_POL_ID_FIRST_POD 256u
/// Bit set in every CIDR identity (identities of ipBlock prefixes).
#define CN_POL_ID_CIDR_BIT 0x80000000u

/// Key of cn_pol_cidrs (LPM trie): a prefix whose value is its CIDR identity. IPv4 prefixes are
/// IPv4-mapped: prefixlen = 96 + the IPv4 length.
struct cn_pol_cidr_key {
  cn_u32 prefixlen;    ///< 0..128.
  union cn_addr addr;  ///< Network order.
};

/// Key of cn_pol_rules (LPM trie). The prefix covers endpoint (128 bits), peer (32), proto (8),
/// pad (8, always 0) and the destination port's top bits (0..16): prefixlen 160 = any protocol,
/// 176 = any port of `proto`, 176 + n = ports sharing the top n bits with `port`.
struct cn_pol_key {
  cn_u32 prefixlen;        ///< CN_POL_PREFIX_ANY_PROTO .. CN_POL_PREFIX_FULL.
  union cn_addr endpoint;  ///< Local pod address.
  cn_u32 peer;  ///< Source identity (pod or CIDR identity) or CN_POL_ID_ANY (host order).
  cn_u8 proto;  ///< IP protocol.
  cn_u8 pad;    ///< Zero.
  cn_u16 port;  ///< Destination port (network order).
};
#define CN_POL_PREFIX_ANY_PROTO 160  ///< Prefix length of an any-protocol entry.
#define CN_POL_PREFIX_PROTO 176      ///< Prefix length of an any-port entry of one protocol.
#define CN_POL_PREFIX_FULL 192       ///< Prefix length of a single-port entry (and of lookups).

/// Value of cn_pol_rules: the counter slot of the (endpoint, rule) that allows.
struct cn_pol_value {
  cn_u32 slot;  ///< Index into cn_pol_stats.
  cn_u32 pad;   ///< Zero.
};

/// Per-CPU counter value, one per reason.
struct cn_counter {
  cn_u64 packets;  ///< Packets counted.
  cn_u64 bytes;    ///< Bytes counted.
};

/// Counter indexes. Every packet is counted under exactly one verdict reason (< CN_R_EVENTS);
/// events at or above CN_R_EVENTS are counted in addition.
enum cn_reason {
  CN_R_PASS = 0,          ///< Passed untouched.
  CN_R_PASS_NON_IP,       ///< Neither IPv4 nor IPv6.
  CN_R_PASS_IPV6,         ///< IPv6 the datapath does not translate (unknown/too many ext. headers).
  CN_R_PASS_FRAGMENT,     ///< IPv4 fragment or IPv6 fragment header, passed untranslated.
  CN_R_DNAT,              ///< Translated to a service backend.
  CN_R_REV_DNAT,          ///< Reply translated back to the service address.
  CN_R_SNAT,              ///< Source-NATed (masquerade or remote NodePort).
  CN_R_REV_SNAT,          ///< Reply translated back to the original source.
  CN_R_REJECT,            ///< Service without backends: ICMP unreachable sent back.
  CN_R_DROP_MALFORMED,    ///< Truncated or invalid headers.
  CN_R_DROP_NO_BACKEND,   ///< No backend and no reject possible.
  CN_R_DROP_CT_FULL,      ///< Conntrack entry could not be created.
  CN_R_DROP_NAT_NO_PORT,  ///< No free SNAT port within the retry budget.
  CN_R_DROP_NAT_FULL,     ///< NAT map full.
  CN_R_DROP_BACKEND_GONE,     ///< Selected backend id not in the backends map.
  CN_R_DROP_CSUM,             ///< Checksum/packet rewrite helper failed.
  CN_R_DROP_NO_CONFIG,        ///< Config map empty.
  CN_R_DROP_POLICY,           ///< New flow to a pod selected by NetworkPolicy; no rule allows it.
  CN_R_DROP_ISOLATED,         ///< New flow into an isolated namespace from outside it.
  CN_R_EVENTS = 32,           ///< First event index.
  CN_R_CT_NEW = CN_R_EVENTS,  ///< Conntrack pair created.
  CN_R_CT_HIT,                ///< Conntrack hit.
  CN_R_NAT_NEW,               ///< SNAT mapping created.
  CN_R_NAT_PORT_RETRY,        ///< SNAT port candidate taken, probed further.
  CN_R_AFFINITY_HIT,          ///< Backend chosen by sessionAffinity.
  CN_R_ICMP_ERROR_XLATED,     ///< ICMP error rewritten for its flow.
  CN_R_POLICY_ALLOW,          ///< New flow to a policy-managed pod admitted by an allow entry.
  CN_R_POLICY_SERVICE,        ///< New flow admitted because a service DNATed it (isolation).
  CN_R_POLICY_HOST,           ///< Host-originated packet to a policy-managed pod (never filtered).
  CN_R_ICMP6_CONTROL,         ///< NDP or other ICMPv6 control message passed untouched.
  CN_R_SOCK_CONNECT,          ///< Socket LB: connect() to a service sent to a backend.
  CN_R_SOCK_SENDMSG,          ///< Socket LB: unconnected datagram to a service sent to a backend.
  CN_R_SOCK_REVERSE,          ///< Socket LB: recvmsg()/getpeername() shows the service address.
  CN_R_SOCK_REFUSED,          ///< Socket LB: service without backends, ECONNREFUSED returned.
  CN_R_SOCK_FLOW,             ///< Socket LB: TCP tuple recorded for the backend's policy check.
  CN_R_MONITOR_LOST,          ///< Monitor event lost: the cn_events ring buffer was full.
  CN_R_MAX = 48               ///< Size of the counters map.
};

// ---- Socket-level load balancing (bpf/sock.bpf.c, bpf/lib/sock_lb.h) ----

/// Key of cn_sock_rev: a socket (cookie) and the backend it was sent to.
struct cn_sock_rev_key {
  cn_u64 cookie;       ///< bpf_get_socket_cookie() of the client socket.
  union cn_addr addr;  ///< Backend address.
  cn_u16 port;         ///< Backend port.
  cn_u8 proto;         ///< IP protocol (TCP or UDP).
  cn_u8 pad[5];        ///< Zero.
};

/// Value of cn_sock_rev: the service frontend the socket addressed.
struct cn_sock_rev_entry {
  union cn_addr addr;  ///< Service address (ClusterIP, ExternalIP or node address).
  cn_u16 port;         ///< Service port.
  cn_u16 pad;          ///< Zero.
  cn_u32 svc_id;       ///< Service id.
};

/// Value of cn_sock_flows (key: cn_tuple client -> backend as on the wire).
struct cn_sock_flow {
  cn_u32 svc_id;     ///< Service id.
  cn_u32 created_s;  ///< CLOCK_MONOTONIC second of the connect.
};

/// Value of cn_sock_netns (key: u64 netns cookie).
struct cn_sock_netns_entry {
  cn_u32 flags;  ///< Reserved (0).
  cn_u32 pad;    ///< Zero.
};

// ---- Flow monitor (bpf/lib/monitor.h, cninet::datapath::FlowMonitor) ----

#define CN_EV_DROP 1  ///< cn_event.type: a dropped packet (every drop).
#define CN_EV_FLOW 2  ///< cn_event.type: the first packet of a sampled new flow.

// cn_event.hook: the program that sent the event.
#define CN_HOOK_FROM_POD 1    ///< cn_from_pod (pod veth, from the pod).
#define CN_HOOK_TO_POD 2      ///< cn_to_pod (pod veth, towards the pod).
#define CN_HOOK_FROM_WORLD 3  ///< cn_from_world (uplink ingress).
#define CN_HOOK_TO_WORLD 4    ///< cn_to_world (uplink egress).

/// Record of the cn_events ring buffer.
struct cn_event {
  cn_u64 ts_ns;       ///< bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the packet.
  struct cn_tuple t;  ///< Tuple as the program saw it (IPv4 as IPv4-mapped addresses).
  cn_u32 ifindex;     ///< Interface the program runs on (skb->ifindex).
  cn_u32 reason;      ///< Verdict reason (enum cn_reason).
  /// Policy drops: the endpoint's deny slot; admitted flows: the allow slot (cn_pol_stats).
  /// 0 = none.
  cn_u32 rule;
  cn_u32 len;       ///< Packet length (skb->len).
  cn_u8 type;       ///< CN_EV_*.
  cn_u8 hook;       ///< CN_HOOK_*.
  cn_u8 ipv6;       ///< 1: IPv6, 0: IPv4.
  cn_u8 tcp_flags;  ///< TCP flags of the packet (0 for other protocols).
  cn_u32 pad;       ///< Zero.
};

// Layout checks: the BPF programs and the C++ library must agree byte for byte.
/// @cond CN_LAYOUT_CHECKS
CN_STATIC_ASSERT(sizeof(union cn_addr) == 16, "cn_addr layout");
CN_STATIC_ASSERT(sizeof(struct cn_config) == 168, "cn_config layout");
CN_STATIC_ASSERT(sizeof(struct cn_tuple) == 40, "cn_tuple layout");
CN_STATIC_ASSERT(sizeof(struct cn_ct_entry) == 56, "cn_ct_entry layout");
CN_STATIC_ASSERT(sizeof(struct cn_nat_entry) == 28, "cn_nat_entry layout");
CN_STATIC_ASSERT(sizeof(struct cn_nat_ports_key) == 40, "cn_nat_ports_key layout");
CN_STATIC_ASSERT(sizeof(struct cn_svc_key) == 20, "cn_svc_key layout");
CN_STATIC_ASSERT(sizeof(struct cn_svc_entry) == 16, "cn_svc_entry layout");
CN_STATIC_ASSERT(sizeof(struct cn_backend) == 20, "cn_backend layout");
CN_STATIC_ASSERT(sizeof(struct cn_affinity_key) == 20, "cn_affinity_key layout");
CN_STATIC_ASSERT(sizeof(struct cn_affinity_entry) == 8, "cn_affinity_entry layout");
CN_STATIC_ASSERT(sizeof(struct cn_endpoint) == 12, "cn_endpoint layout");
CN_STATIC_ASSERT(sizeof(struct cn_counter) == 16, "cn_counter layout");
CN_STATIC_ASSERT(sizeof(struct cn_pol_endpoint) == 16, "cn_pol_endpoint layout");
CN_STATIC_ASSERT(sizeof(struct cn_pol_cidr_key) == 20, "cn_pol_cidr_key layout");
CN_STATIC_ASSERT(sizeof(struct cn_pol_key) == 28, "cn_pol_key layout");
CN_STATIC_ASSERT(sizeof(struct cn_pol_value) == 8, "cn_pol_value layout");
CN_STATIC_ASSERT(sizeof(struct cn_sock_rev_key) == 32, "cn_sock_rev_key layout");
CN_STATIC_ASSERT(sizeof(struct cn_sock_rev_entry) == 24, "cn_sock_rev_entry layout");
CN_STATIC_ASSERT(sizeof(struct cn_sock_flow) == 8, "cn_sock_flow layout");
CN_STATIC_ASSERT(sizeof(struct cn_sock_netns_entry) == 8, "cn_sock_netns_entry layout");
CN_STATIC_ASSERT(CN_R_DROP_ISOLATED < CN_R_EVENTS, "verdict reasons fit below the events");
CN_STATIC_ASSERT(sizeof(struct cn_event) == 72, "cn_event layout");
CN_STATIC_ASSERT(CN_R_MONITOR_LOST < CN_R_MAX, "events fit in the counters map");
/// @endcond

#if defined(__BPF__)
#define CN_INLINE static inline __attribute__((always_inline))
#else
/// Inline function qualifier (always_inline for BPF).
#define CN_INLINE static inline
#endif
/// 32-bit finalizer (murmur3 fmix32) used by cn_flow_hash().
CN_INLINE cn_u32 cn_mix32(cn_u32 h) {
  h ^= h >> 16;
  h *= 0x85ebca6bU;
  h ^= h >> 13;
  h *= 0xc2b2ae35U;
  h ^= h >> 16;
  return h;
}
/// Folds a 16-byte address to 32 bits for cn_flow_hash() (IPv4-mapped: mixes the prefix words).
CN_INLINE cn_u32 cn_addr_fold(union cn_addr a) {
  return cn_mix32(a.a32[0] ^ cn_mix32(a.a32[1] ^ cn_mix32(a.a32[2] ^ 0x9e3779b9U))) ^ a.a32[3];
}
/// Flow hash used for Maglev selection; the C++ side uses the same function so tests can predict
/// the backend of a flow. Fields are taken exactly as stored in cn_tuple (network order).
CN_INLINE cn_u32 cn_flow_hash(union cn_addr saddr, union cn_addr daddr, cn_u16 sport, cn_u16 dport,
                              cn_u8 proto) {
  cn_u32 h = cn_mix32(cn_addr_fold(saddr) ^ 0x9e3779b9U);
  h = cn_mix32(h ^ cn_addr_fold(daddr));
  h = cn_mix32(h ^ (((cn_u32)sport << 16) | (cn_u32)dport));
  return cn_mix32(h ^ (cn_u32)proto);
}

#endif /* CNINET_DATAPATH_ABI_H_ */
