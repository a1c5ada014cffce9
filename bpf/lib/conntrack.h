/* Conntrack: one entry per direction keyed by the tuple as seen on the wire, TCP state from the
 * flags seen, lifetimes from cn_config. A forward entry (client -> original destination) carries
 * the translated destination; its reply entry (translated destination -> client) carries the
 * original destination to restore. */
#ifndef CNINET_BPF_LIB_CONNTRACK_H_
#define CNINET_BPF_LIB_CONNTRACK_H_

#include "lib/maps.h"
#include "lib/parse.h"

static __always_inline __u32 cn_ct_lifetime(const struct cn_config* cfg, __u8 proto, __u16 flags) {
  if (proto == CN_IPPROTO_TCP) {
    if (flags & CN_CT_F_CLOSING) return cfg->tcp_closing_timeout_s;
    if (flags & CN_CT_F_SEEN_NON_SYN) return cfg->tcp_established_timeout_s;
    return cfg->tcp_syn_timeout_s;
  }
  if (proto == CN_IPPROTO_UDP) return cfg->udp_timeout_s;
  return cfg->other_timeout_s;
}

/* Flags a TCP packet adds to its direction's entry. */
static __always_inline __u16 cn_ct_tcp_state_flags(const struct cn_pkt* p) {
  __u16 f = 0;
  if (p->t.proto != CN_IPPROTO_TCP) return 0;
  if (!(p->tcp_flags & CN_TCP_SYN)) f |= CN_CT_F_SEEN_NON_SYN;
  if (p->tcp_flags & (CN_TCP_FIN | CN_TCP_RST)) f |= CN_CT_F_CLOSING;
  return f;
}

/* Looks up the live (not expired) entry for `t`, or NULL. */
static __always_inline struct cn_ct_entry* cn_ct_lookup(const struct cn_tuple* t, __u32 now) {
  struct cn_ct_entry* e = bpf_map_lookup_elem(&cn_ct, t);
  if (e && e->expires_s < now) return NULL;
  return e;
}

/* A TCP SYN (no ACK) on a closing forward entry opens a new connection on a reused tuple: callers
 * treat it as a miss, so the flow is balanced and both entries are written afresh. Otherwise the
 * old entry's reply partner may meanwhile belong to another flow (same client port, another
 * service, same backend) and replies would get the other service's address. */
static __always_inline int cn_ct_reopened(const struct cn_pkt* p, const struct cn_ct_entry* e) {
  return p->t.proto == CN_IPPROTO_TCP && (p->tcp_flags & (CN_TCP_SYN | CN_TCP_ACK)) == CN_TCP_SYN &&
         (e->flags & (CN_CT_F_CLOSING | CN_CT_F_REPLY)) == CN_CT_F_CLOSING;
}

/* The key of the other direction's entry. */
static __always_inline void cn_ct_partner(const struct cn_tuple* t, const struct cn_ct_entry* e,
                                          struct cn_tuple* out) {
  out->proto = t->proto;
  out->pad[0] = out->pad[1] = out->pad[2] = 0;
  if (e->flags & CN_CT_F_REPLY) {
    out->saddr = t->daddr;
    out->sport = t->dport;
    out->daddr = e->nat_addr;
    out->dport = e->nat_port;
  } else {
    out->saddr = e->nat_addr;
    out->sport = e->nat_port;
    out->daddr = t->saddr;
    out->dport = t->sport;
  }
}

/* Accounts a packet on a hit entry: counters, TCP state and lifetime. FIN/RST also moves the
 * other direction's entry to the closing lifetime. */
static __always_inline void cn_ct_update(const struct cn_config* cfg, const struct cn_tuple* t,
                                         struct cn_ct_entry* e, const struct cn_pkt* p, __u32 len,
                                         __u32 now) {
  __sync_fetch_and_add(&e->packets, 1);
  __sync_fetch_and_add(&e->bytes, len);
  __u16 add = cn_ct_tcp_state_flags(p);
  __u16 flags = e->flags | add;
  if (flags != e->flags) e->flags = flags;
  if (p->tcp_flags && (e->tcp_flags | p->tcp_flags) != e->tcp_flags) e->tcp_flags |= p->tcp_flags;
  __u32 expires = now + cn_ct_lifetime(cfg, t->proto, flags);
  if (e->expires_s != expires) e->expires_s = expires;
  if (add & CN_CT_F_CLOSING) {
    struct cn_tuple pt;
    cn_ct_partner(t, e, &pt);
    struct cn_ct_entry* pe = bpf_map_lookup_elem(&cn_ct, &pt);
    if (pe) {
      pe->flags |= CN_CT_F_CLOSING;
      __u32 pexp = now + cfg->tcp_closing_timeout_s;
      if (pe->expires_s > pexp) pe->expires_s = pexp;
    }
  }
}

/* Creates the entry pair of a new flow. `fwd` is the packet's tuple; the flow is translated to
 * (nat_addr, nat_port) (equal to the destination for untranslated flows). The reply entry is
 * keyed by (nat_addr, nat_port) -> (fwd source). Returns 0 or a negative error (entry not created:
 * the caller drops with CN_R_DROP_CT_FULL). */
static __always_inline int cn_ct_create(const struct cn_config* cfg, const struct cn_pkt* p,
                                        __u32 len, __u32 now, const union cn_addr* nat_addr,
                                        __u16 nat_port, __u16 flags, __u32 svc_id,
                                        __u32 backend_id) {
  struct cn_tuple rt = {};
  rt.saddr = *nat_addr;
  rt.daddr = p->t.saddr;
  rt.sport = nat_port;
  rt.dport = p->t.sport;
  rt.proto = p->t.proto;

  struct cn_ct_entry re = {};
  re.created_s = now;
  re.nat_addr = p->t.daddr;
  re.nat_port = p->t.dport;
  re.flags = (flags & ~(CN_CT_F_SEEN_NON_SYN | CN_CT_F_CLOSING)) | CN_CT_F_REPLY;
  re.svc_id = svc_id;
  re.backend_id = backend_id;
  re.expires_s = now + cn_ct_lifetime(cfg, p->t.proto, 0);
  int ret = bpf_map_update_elem(&cn_ct, &rt, &re, BPF_ANY);
  if (ret < 0) return ret;

  struct cn_ct_entry fe = {};
  fe.packets = 1;
  fe.bytes = len;
  fe.created_s = now;
  fe.nat_addr = *nat_addr;
  fe.nat_port = nat_port;
  fe.flags = flags | cn_ct_tcp_state_flags(p);
  fe.tcp_flags = p->tcp_flags;
  fe.svc_id = svc_id;
  fe.backend_id = backend_id;
  fe.expires_s = now + cn_ct_lifetime(cfg, p->t.proto, fe.flags);
  ret = bpf_map_update_elem(&cn_ct, &p->t, &fe, BPF_ANY);
  if (ret < 0) {
    bpf_map_delete_elem(&cn_ct, &rt);
    return ret;
  }
  return 0;
}

#endif /* CNINET_BPF_LIB_CONNTRACK_H_ */
