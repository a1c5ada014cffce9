/* Ingress policy of local pods (Kubernetes NetworkPolicy ingress rules and isolated namespaces),
 * enforced by cn_to_pod: tc egress on the host side of a pod's veth, i.e. every packet towards
 * the pod, after any service DNAT (the policy applies to the backend pod).
 *
 * Pods without a cn_pol_eps entry accept everything. For the others only new flows are checked:
 * a packet passes without a rule lookup when it is host-originated (skb->ingress_ifindex == 0:
 * kubelet probes), a reply of a flow the pod opened, an ICMP error about such a flow, or a packet
 * of a flow the policy already admitted (CN_CT_F_POLICY_OK on its conntrack entry). A pure TCP
 * SYN is always checked, so a changed policy applies to every new connection.
 *
 * A new flow is admitted when it is a service flow (found through the reply entry the service
 * DNAT created, so the check runs on the backend's address, or, for a DNAT on another node, by
 * cn_config.service_mark in skb->mark, carried by VXLAN GBP, or for a TCP connection socket LB
 * addressed to the backend by its cn_sock_flows entry) and the endpoint has
 * CN_POL_F_ALLOW_SERVICE, or when an allow entry matches (endpoint, peer, protocol, port) for
 * the source's pod identity (cn_pol_ids), its CIDR identity (longest ipBlock prefix,
 * cn_pol_cidrs) or CN_POL_ID_ANY. Ports match by prefix (cn_pol_rules is an LPM trie), so a
 * port range costs a few entries and the lookup cost does not grow with the number of rules. */
#ifndef CNINET_BPF_LIB_POLICY_H_
#define CNINET_BPF_LIB_POLICY_H_

#include "lib/conntrack.h"
#include "lib/counters.h"
#include "lib/nat.h"
#include "lib/sock_lb_maps.h"

/* Sizes are placeholders: the loader sets them from DatapathConfig (MapSizes). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, union cn_addr);
  __type(value, struct cn_pol_endpoint);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} cn_pol_eps SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, union cn_addr);
  __type(value, __u32);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} cn_pol_ids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16384);
  __type(key, struct cn_pol_cidr_key);
  __type(value, __u32);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} cn_pol_cidrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 131072);
  __type(key, struct cn_pol_key);
  __type(value, struct cn_pol_value);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} cn_pol_rules SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 16384);
  __type(key, __u32);
  __type(value, struct cn_counter);
} cn_pol_stats SEC(".maps");

#define CN_IPPROTO_SCTP 132

static __always_inline void cn_pol_count(__u32 slot, __u32 bytes) {
  struct cn_counter* c = bpf_map_lookup_elem(&cn_pol_stats, &slot);
  if (c) {
    c->packets += 1;
    c->bytes += bytes;
  }
}

/* The allow entry for (endpoint, peer) and the packet's protocol/port, or NULL. */
static __always_inline struct cn_pol_value* cn_pol_rule(struct cn_pol_key* k, __u32 peer) {
  k->peer = peer;
  return bpf_map_lookup_elem(&cn_pol_rules, k);
}

/* Decides a new flow to a default-deny endpoint. Returns 1 and the counter slot when admitted,
 * 0 and the drop reason when denied. `port` is the destination port (network order), 0 when the
 * packet carries none (ICMP, fragments, unparsed protocols): then only entries allowing every
 * port of the protocol (or every protocol) match. */
static __always_inline int cn_pol_decide(const struct cn_pol_endpoint* ep, const struct cn_pkt* p,
                                         int via_service, __u16 port, __u32* slot, __u32* reason) {
  if (via_service && (ep->flags & CN_POL_F_ALLOW_SERVICE)) {
    *slot = ep->service_slot;
    cn_count(CN_R_POLICY_SERVICE, 0);
    return 1;
  }
  struct cn_pol_key k = {};
  k.prefixlen = CN_POL_PREFIX_FULL;
  k.endpoint = p->t.daddr;
  k.proto = p->t.proto;
  k.port = port;
  union cn_addr saddr = p->t.saddr;
  struct cn_pol_value* v = NULL;
  __u32* id = bpf_map_lookup_elem(&cn_pol_ids, &saddr);
  if (id) v = cn_pol_rule(&k, *id);
  if (!v) {
    struct cn_pol_cidr_key ck = {.prefixlen = 128, .addr = saddr};
    __u32* cid = bpf_map_lookup_elem(&cn_pol_cidrs, &ck);
    if (cid) v = cn_pol_rule(&k, *cid);
  }
  if (!v) v = cn_pol_rule(&k, CN_POL_ID_ANY);
  if (v) {
    *slot = v->slot;
    cn_count(CN_R_POLICY_ALLOW, 0);
    return 1;
  }
  *reason = (ep->flags & CN_POL_F_NETPOL) ? CN_R_DROP_POLICY : CN_R_DROP_ISOLATED;
  return 0;
}

static __always_inline int cn_pol_pure_syn(const struct cn_pkt* p) {
  return p->t.proto == CN_IPPROTO_TCP && (p->tcp_flags & (CN_TCP_SYN | CN_TCP_ACK)) == CN_TCP_SYN;
}

/* True for the datapath's own reject of a service without backends (ICMP unreachable from the
 * service address quoting the pod's packet to it), sent back to the client pod. */
static __always_inline int cn_pol_quote_to_service(const struct cn_pkt* p) {
  if (!cn_addr_eq(&p->t.saddr, &p->inner.daddr)) return 0;
  struct cn_svc_key k = {};
  k.addr = p->inner.daddr;
  k.port = p->inner.dport;
  k.proto = p->inner.proto;
  return bpf_map_lookup_elem(&cn_services, &k) != NULL;
}

/* A pod reaching itself through a Service (hairpin, service.h) arrives SNATed to a node address:
 * the reverse of its tuple is the hairpin's reverse-SNAT mapping, back to this very pod. A pod
 * can block neither itself nor its node (Kubernetes NetworkPolicy), so it passes as host
 * traffic. */
static __always_inline int cn_pol_hairpin(const struct cn_pkt* p, __u32 now) {
  struct cn_tuple ik;
  cn_nat_key(&ik, &p->t.daddr, &p->t.saddr, p->t.dport, p->t.sport, p->t.proto, CN_NAT_INGRESS);
  struct cn_nat_entry* in = bpf_map_lookup_elem(&cn_nat, &ik);
  return in && in->expires_s >= now && cn_addr_eq(&in->to_addr, &p->t.daddr);
}

/* True for the datapath's own TCP reset of a service without backends (reject.h): a reset from
 * a service frontend, sent back to the client pod. */
static __always_inline int cn_pol_reset_from_service(const struct cn_pkt* p) {
  if (p->t.proto != CN_IPPROTO_TCP || !(p->tcp_flags & CN_TCP_RST)) return 0;
  struct cn_svc_key k = {};
  k.addr = p->t.saddr;
  k.port = p->t.sport;
  k.proto = p->t.proto;
  return bpf_map_lookup_elem(&cn_services, &k) != NULL;
}

/* Destination port of an SCTP packet (the parser leaves SCTP untracked): its common header
 * starts like UDP's. 0 when unreadable. */
static __always_inline __u16 cn_pol_sctp_port(struct __sk_buff* skb, const struct cn_pkt* p) {
  __u16 ports[2];
  if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0) return 0;
  return ports[1];
}

/* The ingress policy for a packet towards a local pod. `parsed` is 1 when cn_parse returned
 * CN_PARSE_OK (a tuple with ports), 0 for fragments and untracked protocols (checked statelessly,
 * SCTP with its port, others without). */
static __always_inline struct cn_verdict cn_policy_ingress(struct __sk_buff* skb,
                                                           const struct cn_config* cfg,
                                                           struct cn_pkt* p, int parsed,
                                                           int fragment) {
  struct cn_verdict v = {TC_ACT_OK, CN_R_PASS};
  union cn_addr daddr = p->t.daddr;
  struct cn_pol_endpoint* epp = bpf_map_lookup_elem(&cn_pol_eps, &daddr);
  if (!epp) return v; /* not a policy-managed endpoint */
  struct cn_pol_endpoint ep = *epp;
  if (!(ep.flags & CN_POL_F_DEFAULT_DENY)) return v;
  if (skb->ingress_ifindex == 0) { /* sent by the node itself */
    cn_pol_count(ep.host_slot, skb->len);
    cn_count(CN_R_POLICY_HOST, 0);
    return v;
  }
  __u32 now = cn_now_s();
  int via_service = 0;
  int track = 0;
  __u16 port = 0;
  struct cn_ct_entry* mark = NULL;

  if (parsed && p->icmp_error) {
    /* About a flow of the pod: the quoted packet is one the pod sent. */
    if (cn_ct_lookup(&p->inner, now) || cn_pol_quote_to_service(p)) return v;
  } else if (parsed) {
    if (p->t.proto != CN_IPPROTO_ICMP && p->t.proto != CN_IPPROTO_ICMPV6) port = p->t.dport;
    /* DNATed by a service on another node: the client's node set the mark, the overlay (VXLAN
     * GBP) carried it. Pods cannot set it (the veth scrubs skb->mark between namespaces). */
    if (cfg->service_mark && (skb->mark & cfg->service_mark)) via_service = 1;
    if (cn_pol_reset_from_service(p)) return v;
    int syn = cn_pol_pure_syn(p);
    struct cn_ct_entry* e = cn_ct_lookup(&p->t, now);
    if (e) {
      if (e->flags & CN_CT_F_REPLY) return v; /* reply of a flow the pod opened */
      if ((e->flags & CN_CT_F_POLICY_OK) && !syn) return v;
      mark = e;
    } else {
      struct cn_tuple rt = {};
      rt.saddr = p->t.daddr;
      rt.daddr = p->t.saddr;
      rt.sport = p->t.dport;
      rt.dport = p->t.sport;
      rt.proto = p->t.proto;
      struct cn_ct_entry* r = cn_ct_lookup(&rt, now);
      /* A forward entry of the pod's own flow: this is its reply (e.g. reverse-DNATed). */
      if (r && !(r->flags & CN_CT_F_REPLY)) return v;
      if (!r && cn_pol_hairpin(p, now)) {
        cn_pol_count(ep.host_slot, skb->len);
        cn_count(CN_R_POLICY_HOST, 0);
        return v;
      }
      if (r && (r->flags & CN_CT_F_SERVICE)) {
        /* The reply entry a service DNAT created: this flow was DNATed to this backend. */
        via_service = 1;
        if ((r->flags & CN_CT_F_POLICY_OK) && !syn) return v;
        mark = r;
      } else {
        track = 1; /* untracked so far (e.g. from the overlay): track it once admitted */
      }
    }
    /* Socket LB sent this TCP connection to the backend: no DNAT entry, but a Service flow. */
    if (!via_service && p->t.proto == CN_IPPROTO_TCP && cn_sock_lb_flow(&p->t)) via_service = 1;
  } else if (!fragment && p->t.proto == CN_IPPROTO_SCTP) {
    port = cn_pol_sctp_port(skb, p);
  }

  __u32 slot = 0, reason = CN_R_DROP_POLICY;
  if (!cn_pol_decide(&ep, p, via_service, port, &slot, &reason)) {
    cn_pol_count(ep.deny_slot, skb->len);
    v.action = TC_ACT_SHOT;
    v.reason = reason;
    return v;
  }
  cn_pol_count(slot, skb->len);
  if (mark) {
    if (!(mark->flags & CN_CT_F_POLICY_OK)) mark->flags |= CN_CT_F_POLICY_OK;
  } else if (track) {
    /* Best effort: without an entry the flow is simply checked again on its next packet. */
    if (cn_ct_create(cfg, p, skb->len, now, &daddr, p->t.dport, CN_CT_F_POLICY_OK, 0, 0) == 0)
      cn_count(CN_R_CT_NEW, 0);
  }
  return v;
}

#endif /* CNINET_BPF_LIB_POLICY_H_ */
