// Consumer of COMPONENTS ipam: allocates two addresses from a host-local style range in memory.
#include "cninet/ipam/ipam.h"

#include <cstdio>

namespace ipam = cninet::ipam;

int main() {
  auto range = ipam::Range::Parse("10.9.0.0/29");
  if (!range.ok()) return std::fprintf(stderr, "%s\n", range.status().ToString().c_str()), 1;
  ipam::RangeSet set{.ranges = {*range}};
  ipam::MemoryStore store;
  ipam::Allocator allocator(set, store, 0);
  auto lock = store.Lock();
  if (!lock.ok()) return std::fprintf(stderr, "%s\n", lock.status().ToString().c_str()), 1;
  auto a = allocator.Allocate(*lock, "c1", "eth0");
  auto b = allocator.Allocate(*lock, "c2", "eth0");
  if (!a.ok() || !b.ok() || a->address == b->address) {
    std::fprintf(stderr, "allocation failed\n");
    return 1;
  }
  std::printf("ipam: %s %s\n", a->address.ToString().c_str(), b->address.ToString().c_str());
  return a->address.ToString() == "10.9.0.2/29" && b->address.ToString() == "10.9.0.3/29" ? 0 : 1;
}
