// Consumer of COMPONENTS datapath: builds a Maglev table (no kernel objects, no root needed).
#include <cstdio>
#include <string>
#include <vector>

#include "cninet/datapath/maglev.h"

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
  return 0;
}
