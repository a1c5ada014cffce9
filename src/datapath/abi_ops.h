// Comparison of ABI addresses for std containers (the ABI structs live in the global namespace,
// so these are found by argument-dependent lookup).
#ifndef CNINET_SRC_DATAPATH_ABI_OPS_H_
#define CNINET_SRC_DATAPATH_ABI_OPS_H_

#include <cstring>

#include "cninet/datapath/abi.h"

inline bool operator==(const cn_addr& a, const cn_addr& b) {
  return std::memcmp(a.a8, b.a8, sizeof(a.a8)) == 0;
}
inline bool operator!=(const cn_addr& a, const cn_addr& b) { return !(a == b); }
inline bool operator<(const cn_addr& a, const cn_addr& b) {
  return std::memcmp(a.a8, b.a8, sizeof(a.a8)) < 0;
}

#endif  // CNINET_SRC_DATAPATH_ABI_OPS_H_
