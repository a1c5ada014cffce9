/* Socket-level load balancing: cgroup sock_addr hooks translate a service frontend (ClusterIP,
 * ExternalIP, node address + nodePort) to a backend when the socket connects (TCP, connected
 * UDP) or sends a datagram (unconnected UDP), so the packets leave already addressed to the
 * backend and the packet path's DNAT never runs for them. recvmsg and getpeername show the
 * service address again (cn_sock_rev). Only sockets of the network namespaces in cn_sock_netns
 * are touched. Selection is lb.h's (Maglev table or random, sessionAffinity ClientIP). */
#ifndef CNINET_BPF_LIB_SOCK_LB_H_
#define CNINET_BPF_LIB_SOCK_LB_H_

#include "lib/counters.h"
#include "lib/lb.h"
#include "lib/sock_lb_maps.h"

#define CN_ECONNREFUSED 111
#ifndef CN_AF_INET
#define CN_AF_INET 2
#define CN_AF_INET6 10
#endif

/* The client of a socket for selection: its bound source when it has one; otherwise the
 * network namespace stands for the client (0100::/64, RFC 6666's discard prefix, + netns
 * cookie), so every unbound socket of one pod or of the node shares sessionAffinity. */
static __always_inline void cn_sock_client(struct bpf_sock_addr* ctx, int v6, __u64 netns,
                                           union cn_addr* out) {
  struct bpf_sock* sk = ctx->sk;
  if (sk) {
    if (!v6 && sk->src_ip4) {
      cn_addr_set_v4(out, sk->src_ip4);
      return;
    }
    if (v6 && (sk->src_ip6[0] | sk->src_ip6[1] | sk->src_ip6[2] | sk->src_ip6[3])) {
      out->a32[0] = sk->src_ip6[0];
      out->a32[1] = sk->src_ip6[1];
      out->a32[2] = sk->src_ip6[2];
      out->a32[3] = sk->src_ip6[3];
      return;
    }
  }
  out->a32[0] = bpf_htonl(0x01000000);
  out->a32[1] = 0;
  out->a32[2] = (__u32)(netns >> 32);
  out->a32[3] = (__u32)netns;
}

static __always_inline void cn_sock_get_dst(struct bpf_sock_addr* ctx, int v6, union cn_addr* a) {
  if (v6) {
    a->a32[0] = ctx->user_ip6[0];
    a->a32[1] = ctx->user_ip6[1];
    a->a32[2] = ctx->user_ip6[2];
    a->a32[3] = ctx->user_ip6[3];
  } else {
    cn_addr_set_v4(a, ctx->user_ip4);
  }
}

static __always_inline void cn_sock_set_dst(struct bpf_sock_addr* ctx, int v6,
                                            const union cn_addr* a, __u16 port) {
  if (v6) {
    ctx->user_ip6[0] = a->a32[0];
    ctx->user_ip6[1] = a->a32[1];
    ctx->user_ip6[2] = a->a32[2];
    ctx->user_ip6[3] = a->a32[3];
  } else {
    ctx->user_ip4 = a->a32[3];
  }
  ctx->user_port = port;
}

#define CN_SOL_SOCKET 1
#define CN_SO_MARK 36

/* connect: a socket sent to a backend on another node carries cn_config.service_mark in its
 * SO_MARK (other bits kept), so VXLAN GBP tells the backend's to-pod the flow came through a
 * Service, as cn_from_pod's mark does for pods' DNATed flows. Pods' sockets lose the mark at
 * their veth (from-pod marks those from cn_sock_flows); the node's own sockets keep it. */
static __always_inline void cn_sock_mark_remote(struct bpf_sock_addr* ctx,
                                                const union cn_addr* backend) {
  __u32 zero = 0;
  struct cn_config* cfg = bpf_map_lookup_elem(&cn_config, &zero);
  if (!cfg || !cfg->service_mark) return;
  union cn_addr b = *backend;
  if (bpf_map_lookup_elem(&cn_endpoints, &b)) return; /* local: to-pod reads cn_sock_flows */
  int mark = 0;
  if (bpf_getsockopt(ctx, CN_SOL_SOCKET, CN_SO_MARK, &mark, sizeof(mark)) != 0) mark = 0;
  mark |= (int)cfg->service_mark;
  bpf_setsockopt(ctx, CN_SOL_SOCKET, CN_SO_MARK, &mark, sizeof(mark));
}

static __always_inline int cn_sock_proto_ok(__u32 proto) {
  return proto == CN_IPPROTO_TCP || proto == CN_IPPROTO_UDP;
}

/* connect (TCP, connected UDP) and unconnected sendmsg: rewrites a service destination to a
 * backend. `reason` is the event counted on a translation. Returns the hook's verdict: 1, or 0
 * with ECONNREFUSED set (bpf_set_retval) for a service without backends. */
static __always_inline int cn_sock_forward(struct bpf_sock_addr* ctx, int v6, __u32 reason) {
  __u32 proto = ctx->protocol;
  if (!cn_sock_proto_ok(proto)) return 1;
  __u64 netns = bpf_get_netns_cookie(ctx);
  if (!bpf_map_lookup_elem(&cn_sock_netns, &netns)) return 1;

  struct cn_pkt p = {};
  cn_sock_get_dst(ctx, v6, &p.t.daddr);
  /* An IPv6 socket's IPv4 destination is IPv4-mapped: the same key as an IPv4 socket's. */
  p.t.dport = (__u16)ctx->user_port;
  p.t.proto = (__u8)proto;
  p.ipv6 = v6 && !cn_addr_is_v4(&p.t.daddr);
  struct cn_svc_entry* svc = cn_svc_lookup(&p);
  if (!svc) return 1;
  struct cn_svc_entry s = *svc;

  __u64 cookie = bpf_get_socket_cookie(ctx);
  cn_sock_client(ctx, v6, netns, &p.t.saddr);
  /* The socket stands for the source port: its datagrams and reconnects stay on one backend. */
  p.t.sport = (__u16)(cookie ^ (cookie >> 16) ^ (cookie >> 32) ^ (cookie >> 48));

  __u32 backend_id = 0;
  struct cn_backend be = {};
  int lb = cn_lb_select(&s, &p, cn_now_s(), &backend_id, &be);
  if (lb == CN_LB_NO_BACKEND) {
    cn_count(CN_R_SOCK_REFUSED, 0);
    bpf_set_retval(-CN_ECONNREFUSED);
    return 0;
  }
  if (lb != CN_LB_OK) return 1; /* the packet path decides (drop_backend_gone) */
  /* An IPv4 socket cannot reach an IPv6 backend (services are single-family). */
  if (!v6 && !cn_addr_is_v4(&be.addr)) return 1;
  __u16 port = be.port ? be.port : p.t.dport;

  struct cn_sock_rev_key rk = {};
  rk.cookie = cookie;
  rk.addr = be.addr;
  rk.port = port;
  rk.proto = (__u8)proto;
  struct cn_sock_rev_entry re = {};
  re.addr = p.t.daddr;
  re.port = p.t.dport;
  re.svc_id = s.svc_id;
  bpf_map_update_elem(&cn_sock_rev, &rk, &re, BPF_ANY);

  cn_sock_set_dst(ctx, v6, &be.addr, port);
  if (reason == CN_R_SOCK_CONNECT) cn_sock_mark_remote(ctx, &be.addr);
  cn_count(reason, 0);
  return 1;
}

/* recvmsg (unconnected UDP) and getpeername: a backend source/peer of a translated socket is
 * shown as the service address. Always returns 1 (the only verdict these hooks allow). */
static __always_inline int cn_sock_reverse(struct bpf_sock_addr* ctx, int v6) {
  __u32 proto = ctx->protocol;
  if (!cn_sock_proto_ok(proto)) return 1;
  struct cn_sock_rev_key rk = {};
  rk.cookie = bpf_get_socket_cookie(ctx);
  cn_sock_get_dst(ctx, v6, &rk.addr);
  rk.port = (__u16)ctx->user_port;
  rk.proto = (__u8)proto;
  struct cn_sock_rev_entry* re = bpf_map_lookup_elem(&cn_sock_rev, &rk);
  if (!re) return 1;
  union cn_addr vip = re->addr;
  __u16 vport = re->port;
  if (!v6 && !cn_addr_is_v4(&vip)) return 1;
  cn_sock_set_dst(ctx, v6, &vip, vport);
  cn_count(CN_R_SOCK_REVERSE, 0);
  return 1;
}

/* The tuple (local -> remote, as the connection's packets carry it) and the cn_sock_rev key of a
 * TCP socket seen by sock_ops. Returns 0 for other families. */
static __always_inline int cn_sock_ops_keys(struct bpf_sock_ops* ops, struct cn_tuple* t,
                                            struct cn_sock_rev_key* rk) {
  /* remote_port: network order in the upper 16 bits on little-endian (sock_ops convention). */
  __u32 rp = ops->remote_port;
  __u16 dport = (rp & 0xffff0000) ? (__u16)(rp >> 16) : (__u16)rp;
  if (ops->family == CN_AF_INET) {
    cn_addr_set_v4(&t->saddr, ops->local_ip4);
    cn_addr_set_v4(&t->daddr, ops->remote_ip4);
  } else if (ops->family == CN_AF_INET6) {
    t->saddr.a32[0] = ops->local_ip6[0];
    t->saddr.a32[1] = ops->local_ip6[1];
    t->saddr.a32[2] = ops->local_ip6[2];
    t->saddr.a32[3] = ops->local_ip6[3];
    t->daddr.a32[0] = ops->remote_ip6[0];
    t->daddr.a32[1] = ops->remote_ip6[1];
    t->daddr.a32[2] = ops->remote_ip6[2];
    t->daddr.a32[3] = ops->remote_ip6[3];
  } else {
    return 0;
  }
  t->sport = bpf_htons((__u16)ops->local_port);
  t->dport = dport;
  t->proto = CN_IPPROTO_TCP;
  rk->cookie = bpf_get_socket_cookie(ops);
  rk->addr = t->daddr;
  rk->port = dport;
  rk->proto = CN_IPPROTO_TCP;
  return 1;
}

/* BPF_SOCK_OPS_TCP_CONNECT_CB: a connection whose destination socket LB chose (a cn_sock_rev
 * entry of this socket for its peer) is recorded with its full tuple in cn_sock_flows, which
 * the backend's ingress policy reads as "through a Service"; the socket's state changes are
 * then reported so the record goes when the connection closes. */
static __always_inline void cn_sock_record_flow(struct bpf_sock_ops* ops) {
  struct cn_sock_rev_key rk = {};
  struct cn_tuple t = {};
  if (!cn_sock_ops_keys(ops, &t, &rk)) return;
  struct cn_sock_rev_entry* re = bpf_map_lookup_elem(&cn_sock_rev, &rk);
  if (!re) return;
  struct cn_sock_flow f = {.svc_id = re->svc_id, .created_s = cn_now_s()};
  bpf_map_update_elem(&cn_sock_flows, &t, &f, BPF_ANY);
  bpf_sock_ops_cb_flags_set(ops, BPF_SOCK_OPS_STATE_CB_FLAG);
  cn_count(CN_R_SOCK_FLOW, 0);
}

/* BPF_SOCK_OPS_STATE_CB to TCP_CLOSE: forgets the connection's records (a later direct
 * connection reusing the tuple is not "through a Service"). */
static __always_inline void cn_sock_forget_flow(struct bpf_sock_ops* ops) {
  if (ops->args[1] != BPF_TCP_CLOSE) return;
  struct cn_sock_rev_key rk = {};
  struct cn_tuple t = {};
  if (!cn_sock_ops_keys(ops, &t, &rk)) return;
  bpf_map_delete_elem(&cn_sock_flows, &t);
  bpf_map_delete_elem(&cn_sock_rev, &rk);
}

#endif /* CNINET_BPF_LIB_SOCK_LB_H_ */
