// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Socket-level load balancing (lib/sock_lb.h): cgroup sock_addr programs for both families and
 * a sock_ops program recording socket-LB'd TCP connections for the backend's ingress policy. */
#include "lib/sock_lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/connect4")
int cn_sock_connect4(struct bpf_sock_addr* ctx) {
  return cn_sock_forward(ctx, 0, CN_R_SOCK_CONNECT);
}

SEC("cgroup/connect6")
int cn_sock_connect6(struct bpf_sock_addr* ctx) {
  return cn_sock_forward(ctx, 1, CN_R_SOCK_CONNECT);
}

SEC("cgroup/sendmsg4")
int cn_sock_sendmsg4(struct bpf_sock_addr* ctx) {
  return cn_sock_forward(ctx, 0, CN_R_SOCK_SENDMSG);
}

SEC("cgroup/sendmsg6")
int cn_sock_sendmsg6(struct bpf_sock_addr* ctx) {
  return cn_sock_forward(ctx, 1, CN_R_SOCK_SENDMSG);
}

SEC("cgroup/recvmsg4")
int cn_sock_recvmsg4(struct bpf_sock_addr* ctx) { return cn_sock_reverse(ctx, 0); }

SEC("cgroup/recvmsg6")
int cn_sock_recvmsg6(struct bpf_sock_addr* ctx) { return cn_sock_reverse(ctx, 1); }

SEC("cgroup/getpeername4")
int cn_sock_getpeername4(struct bpf_sock_addr* ctx) { return cn_sock_reverse(ctx, 0); }

SEC("cgroup/getpeername6")
int cn_sock_getpeername6(struct bpf_sock_addr* ctx) { return cn_sock_reverse(ctx, 1); }

SEC("sockops")
int cn_sock_ops(struct bpf_sock_ops* ops) {
  if (ops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) cn_sock_record_flow(ops);
  if (ops->op == BPF_SOCK_OPS_STATE_CB) cn_sock_forget_flow(ops);
  return 1;
}
