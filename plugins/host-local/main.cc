// cninet-host-local: a drop-in replacement for the reference host-local IPAM plugin, sharing its
// dataDir layout (both can serve one network at once), with crash-safe writes, CNI 1.1 GC and
// STATUS. All the work is done by cninet::ipam::HostLocal; this file only maps CNI commands.
#include "cninet/cni/cni.h"
#include "cninet/ipam/ipam.h"

namespace {

using cninet::cni::CmdArgs;
using cninet::cni::Result;
using cninet::ipam::DiskStore;
using cninet::ipam::HostLocal;
using cninet::ipam::IpamConfig;

// True for "the network directory does not exist": nothing was ever allocated there.
bool NothingStored(const absl::Status& s) {
  return cninet::cni::GetErrorCode(s) ==
         static_cast<uint32_t>(cninet::cni::ErrorCode::kUnknownContainer);
}

class HostLocalPlugin : public cninet::cni::Plugin {
 public:
  absl::StatusOr<Result> Add(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(IpamConfig config, Load(args));
    CNINET_ASSIGN_OR_RETURN(auto store, cninet::ipam::OpenStore(config));
    HostLocal host_local(config, *store);
    CNINET_ASSIGN_OR_RETURN(Result result, host_local.Add(args.container_id, args.ifname));
    // The reference plugin always prints a "dns" object, empty or not.
    if (result.dns.empty()) result.extra["dns"] = nlohmann::json::object();
    return result;
  }

  absl::Status Del(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(IpamConfig config, Load(args));
    auto store = cninet::ipam::OpenStore(config, {.create = false});
    if (!store.ok()) return NothingStored(store.status()) ? absl::OkStatus() : store.status();
    return HostLocal(config, **store).Del(args.container_id, args.ifname);
  }

  absl::Status Check(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(IpamConfig config, Load(args));
    auto store = cninet::ipam::OpenStore(config, {.create = false});
    if (!store.ok() && NothingStored(store.status())) {
      return cninet::cni::CniError(
          cninet::ipam::kLeaseMissing,
          cninet::StrCat("host-local: Failed to find address added by container ",
                         args.container_id));
    }
    if (!store.ok()) return store.status();
    const Result* prev = args.conf.prev_result ? &*args.conf.prev_result : nullptr;
    return HostLocal(config, **store).Check(args.container_id, args.ifname, prev);
  }

  absl::Status Gc(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(IpamConfig config, Load(args));
    auto store = cninet::ipam::OpenStore(config, {.create = false});
    if (!store.ok()) return NothingStored(store.status()) ? absl::OkStatus() : store.status();
    auto freed = HostLocal(config, **store).Gc(args.valid_attachments);
    if (!freed.ok()) return freed.status();
    for (const auto& lease : *freed) {
      CNINET_LOG(kInfo, "GC released ", lease.address.ToString(), " of ", lease.container_id, "/",
                 lease.ifname);
    }
    return absl::OkStatus();
  }

  absl::Status Status(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(IpamConfig config, Load(args));
    auto store = cninet::ipam::OpenStore(config, {.create = false});
    if (!store.ok()) {
      if (NothingStored(store.status())) return absl::OkStatus();  // Empty pool: all free.
      return cninet::cni::CniError(cninet::cni::ErrorCode::kNotAvailable,
                                   cninet::ToStd(store.status().message()));
    }
    return HostLocal(config, **store).Status();
  }

 private:
  static absl::StatusOr<IpamConfig> Load(const CmdArgs& args) {
    return IpamConfig::FromJson(args.conf.raw, args.args.ToString());
  }
};

}  // namespace

int main() {
  HostLocalPlugin plugin;
  return cninet::cni::PluginMain(
      plugin,
      {.about = "cninet-host-local: host-local compatible IPAM (cninet)", .needs_netns = false});
}
