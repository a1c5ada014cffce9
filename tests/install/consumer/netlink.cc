// Consumer of COMPONENTS netlink: lists the links of the current namespace (read only).
#include "cninet/netlink/netlink.h"

#include <cstdio>

namespace nl = cninet::netlink;

int main() {
  auto handle = nl::Handle::Open();
  if (!handle.ok()) return std::fprintf(stderr, "%s\n", handle.status().ToString().c_str()), 1;
  auto lo = handle->GetLink("lo");
  if (!lo.ok()) return std::fprintf(stderr, "%s\n", lo.status().ToString().c_str()), 1;
  auto mac = nl::MacAddress::Parse("02:00:00:00:00:01");
  if (!mac.ok() || !mac->IsUnicast()) return 1;
  std::printf("netlink: lo is ifindex %d\n", lo->index);
  return lo->index > 0 ? 0 : 1;
}
