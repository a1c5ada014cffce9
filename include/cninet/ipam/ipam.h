/// @file
/// Umbrella header of the ipam component: ranges, configuration, stores, allocator, the
/// host-local operations and the per-node SubnetPool.
#ifndef CNINET_IPAM_IPAM_H_
#define CNINET_IPAM_IPAM_H_

#include "cninet/ipam/allocator.h"    // IWYU pragma: export
#include "cninet/ipam/config.h"       // IWYU pragma: export
#include "cninet/ipam/disk_store.h"   // IWYU pragma: export
#include "cninet/ipam/errors.h"       // IWYU pragma: export
#include "cninet/ipam/host_local.h"   // IWYU pragma: export
#include "cninet/ipam/names.h"        // IWYU pragma: export
#include "cninet/ipam/range.h"        // IWYU pragma: export
#include "cninet/ipam/store.h"        // IWYU pragma: export
#include "cninet/ipam/subnet_pool.h"  // IWYU pragma: export

#endif  // CNINET_IPAM_IPAM_H_
