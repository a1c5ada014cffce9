/* Includes, constants and small helpers shared by every cninet BPF program. */
#ifndef CNINET_BPF_LIB_COMMON_H_
#define CNINET_BPF_LIB_COMMON_H_

// linux/bpf.h must come before the libbpf BPF headers.
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "cninet/datapath/abi.h"
// clang-format on

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define CN_IPPROTO_ICMP 1
#define CN_IPPROTO_TCP 6
#define CN_IPPROTO_UDP 17
#define CN_IPPROTO_ICMPV6 58

/* Outcome of a packet handler: the tc verdict and the reason it is counted under. */
struct cn_verdict {
  int action;
  __u32 reason;
};

/* CLOCK_MONOTONIC seconds. The coarse clock (same base, at most one tick behind) avoids a
 * clocksource read per packet (~20 ns in bench/nat_path); seconds are all lifetimes need. */
static __always_inline __u32 cn_now_s(void) {
  return (__u32)(bpf_ktime_get_coarse_ns() / 1000000000ULL);
}

#endif /* CNINET_BPF_LIB_COMMON_H_ */
