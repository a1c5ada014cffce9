// cninet-ebpf: the chained eBPF datapath plugin (see plugin.h and docs/chained-plugin.md).
#include "cninet/cni/plugin.h"
#include "plugin.h"

int main() {
  cninet::ebpf_chain::EbpfChainPlugin plugin;
  return cninet::cni::PluginMain(
      plugin,
      {.about = "cninet-ebpf: chained eBPF datapath (endpoints, services, masquerade, hostPort)"});
}
