/// @file
/// The `type` names of the plugins cninet ships (plugins/): the one place they are spelled, so
/// the agent's conflist, the tools and the tests cannot drift from the installed binaries.
#ifndef CNINET_CNI_PLUGIN_NAMES_H_
#define CNINET_CNI_PLUGIN_NAMES_H_

#include <string_view>

namespace cninet::cni {

inline constexpr std::string_view kHostLocalPlugin = "cninet-host-local";  ///< IPAM (host-local).
inline constexpr std::string_view kStaticPlugin = "cninet-static";         ///< IPAM (static).
inline constexpr std::string_view kPtpPlugin = "cninet-ptp";               ///< Routed veth.
inline constexpr std::string_view kBridgePlugin = "cninet-bridge";         ///< Bridge + veth.
inline constexpr std::string_view kEbpfPlugin = "cninet-ebpf";           ///< Chained eBPF datapath.
inline constexpr std::string_view kAgentCniPlugin = "cninet-agent-cni";  ///< Reports to the agent.

}  // namespace cninet::cni

#endif  // CNINET_CNI_PLUGIN_NAMES_H_
