/// @file
/// Umbrella header of the cni component: everything a plugin or a runtime needs.
#ifndef CNINET_CNI_CNI_H_
#define CNINET_CNI_CNI_H_

#include "cninet/base/log.h"           // IWYU pragma: export
#include "cninet/base/status.h"        // IWYU pragma: export
#include "cninet/base/version_info.h"  // IWYU pragma: export
#include "cninet/cni/conf.h"           // IWYU pragma: export
#include "cninet/cni/config_reader.h"  // IWYU pragma: export
#include "cninet/cni/error.h"          // IWYU pragma: export
#include "cninet/cni/exec.h"           // IWYU pragma: export
#include "cninet/cni/ip.h"             // IWYU pragma: export
#include "cninet/cni/plugin.h"         // IWYU pragma: export
#include "cninet/cni/runtime.h"        // IWYU pragma: export
#include "cninet/cni/types.h"          // IWYU pragma: export
#include "cninet/cni/version.h"        // IWYU pragma: export

#endif  // CNINET_CNI_CNI_H_
