/// @file
/// Umbrella header of the netlink component: namespaces, links, addresses, routes, neighbours,
/// FDB, sysctls and the Rollback guard.
#ifndef CNINET_NETLINK_NETLINK_H_
#define CNINET_NETLINK_NETLINK_H_

#include "cninet/netlink/attach.h"    // IWYU pragma: export
#include "cninet/netlink/handle.h"    // IWYU pragma: export
#include "cninet/netlink/netns.h"     // IWYU pragma: export
#include "cninet/netlink/rollback.h"  // IWYU pragma: export
#include "cninet/netlink/sysctl.h"    // IWYU pragma: export
#include "cninet/netlink/types.h"     // IWYU pragma: export

#endif  // CNINET_NETLINK_NETLINK_H_
