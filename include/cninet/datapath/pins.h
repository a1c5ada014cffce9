/// @file
/// The one place that names where a datapath instance lives on bpffs. Every tool, plugin and the
/// agent derive pin paths from PinLayout; none spells a pin path itself.
#ifndef CNINET_DATAPATH_PINS_H_
#define CNINET_DATAPATH_PINS_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace cninet::datapath {

/// Pin paths of one instance: Root() `BPFFS/cninet` holds every instance of this host, MapDir()
/// `BPFFS/cninet/INSTANCE` the instance's maps (abi.h CN_MAP_*), ProgramDir()
/// `BPFFS/cninet/INSTANCE/programs` the loaded programs pinned for reuse.
struct PinLayout {
  std::string bpffs_root = "/sys/fs/bpf";  ///< Mount point of the bpf filesystem.
  std::string instance = "default";        ///< Instance name (one directory component).

  /// The layout of `instance` under `bpffs_root`.
  static PinLayout For(std::string_view bpffs_root, std::string_view instance);

  /// `BPFFS/cninet`.
  std::string Root() const;
  /// `BPFFS/cninet/INSTANCE`.
  std::string MapDir() const;
  /// MapDir() + "/" + map_name.
  std::string MapPath(std::string_view map_name) const;
  /// MapDir() + "/programs".
  std::string ProgramDir() const;
  /// ProgramDir() + "/" + program_name (bpffs names cannot contain '.').
  std::string ProgramPath(std::string_view program_name) const;
  /// MapDir() + "/socklb": the pinned links of socket load balancing, one directory per cgroup.
  std::string SocketLbDir() const;
  /// SocketLbDir() + "/cgroup_ID": the links attached to the cgroup v2 with inode `cgroup_id`.
  std::string SocketLbLinkDir(uint64_t cgroup_id) const;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_PINS_H_
