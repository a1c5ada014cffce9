// Consumer of COMPONENTS datapath: builds a Maglev table (no kernel objects, no root needed) and
// asks libbpf for a pinned map that does not exist (so a static link needs libbpf).
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cninet/datapath/maglev.h"
#include "cninet/datapath/map.h"

namespace dp = cninet::datapath;

int main() {
  std::vector<std::string> backends = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"};
  auto table = dp::BuildMaglevTable(backends, dp::kMaglevMinSize);
  if (!table.ok()) return std::fprintf(stderr, "%s\n", table.status().ToString().c_str()), 1;
  std::vector<int> owned(backends.size());
  for (uint32_t b : *table) owned.at(b)++;
  std::printf("datapath: maglev slots %d %d %d\n", owned[0], owned[1], owned[2]);
  for (int n : owned) {
    if (n < 80) return 1;  // 251 slots over 3 backends: each owns about a third.
  }
  // Read only: a path nobody pins (bpf_obj_get fails with ENOENT, or EPERM without root).
  auto map =
      dp::RawMap::OpenPinned("/sys/fs/bpf/cninet-consumer-absent-" + std::to_string(getpid()));
  if (map.ok()) return std::fprintf(stderr, "opened a map that cannot exist\n"), 1;
  std::printf("datapath: absent pinned map: %s\n", map.status().ToString().c_str());
  return 0;
}
