/* Shared layout of the NAT-path benchmark harness (bench/nat_path/harness.bpf.c) and its C++
 * driver. Plain C, fixed layout. */
#ifndef CNINET_BENCH_NAT_PATH_HARNESS_ABI_H_
#define CNINET_BENCH_NAT_PATH_HARNESS_ABI_H_

#ifdef __cplusplus
#include <cstdint>
typedef uint8_t nb_u8;
typedef uint16_t nb_u16;
typedef uint32_t nb_u32;
#define NB_STATIC_ASSERT static_assert
#else
#include <linux/types.h>
typedef __u8 nb_u8;
typedef __u16 nb_u16;
typedef __u32 nb_u32;
#define NB_STATIC_ASSERT _Static_assert
#endif

/* Bytes of the input packet the harness restores before every run (headers + some payload). */
#define NB_TEMPLATE_MAX 128

/* Tail-call slots of the harness's program array; the slot is taken from skb->cb[0]. */
#define NB_SLOT_EMPTY 0  /* the harness's own empty program: the harness overhead */
#define NB_SLOT_TARGET 1 /* the datapath program under test */

/* Element 0 of the harness's array map: the packet to restore and the source-port sequence. */
struct nb_template {
  nb_u32 len;        /* bytes of `bytes` written over the packet before every run (14..128) */
  nb_u32 vary_sport; /* 1: write a fresh L4 source port before every run */
  nb_u32 sport_off;  /* packet offset of the L4 source port */
  nb_u32 csum_off;   /* packet offset of the L4 checksum (TCP/UDP), 0 = none */
  nb_u16 sport_orig; /* source port in `bytes` (network order), for the checksum delta */
  nb_u16 sport_base; /* fresh ports are base + (counter * stride) % span (host order) */
  nb_u32 sport_span;
  nb_u32 counter;      /* runs with a fresh port so far; advanced by the harness */
  nb_u32 sport_stride; /* coprime with span: consecutive runs get scattered ports */
  nb_u8 bytes[NB_TEMPLATE_MAX];
};
NB_STATIC_ASSERT(sizeof(struct nb_template) == 32 + NB_TEMPLATE_MAX, "nb_template layout");

#endif /* CNINET_BENCH_NAT_PATH_HARNESS_ABI_H_ */
