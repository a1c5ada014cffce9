#include "state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cninet/base/file.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"

namespace cninet::ebpf_chain {
namespace {

namespace fs = std::filesystem;
constexpr char kRecordSuffix[] = ".json";
constexpr char kUplinkFile[] = "uplink";

absl::Status Decode(std::string_view why) {
  return cni::CniError(cni::ErrorCode::kDecodeFailure, StrCat("cninet-ebpf state: ", why));
}

}  // namespace

nlohmann::json AttachmentRecord::ToJson() const {
  nlohmann::json j = {{"containerID", container_id},
                      {"ifname", ifname},
                      {"netns", netns},
                      {"hostIfname", host_ifname},
                      {"hostIfindex", host_ifindex},
                      {"mac", mac}};
  j["addresses"] = nlohmann::json::array();
  for (const auto& a : addresses) j["addresses"].push_back(a.ToString());
  j["serviceIDs"] = service_ids;
  j["portMappings"] = nlohmann::json::array();
  for (const auto& m : port_mappings) {
    j["portMappings"].push_back({{"hostPort", m.host_port},
                                 {"containerPort", m.container_port},
                                 {"protocol", m.protocol},
                                 {"hostIP", m.host_ip}});
  }
  if (socket_lb_netns_cookie != 0) j["socketLbNetnsCookie"] = socket_lb_netns_cookie;
  return j;
}

absl::StatusOr<AttachmentRecord> AttachmentRecord::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Decode("record is not an object");
  AttachmentRecord r;
  auto str = [&](const char* key, std::string* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return Decode(StrCat(key, " missing or not a string"));
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  CNINET_RETURN_IF_ERROR(str("containerID", &r.container_id));
  CNINET_RETURN_IF_ERROR(str("ifname", &r.ifname));
  CNINET_RETURN_IF_ERROR(str("netns", &r.netns));
  CNINET_RETURN_IF_ERROR(str("hostIfname", &r.host_ifname));
  CNINET_RETURN_IF_ERROR(str("mac", &r.mac));
  if (!j.contains("hostIfindex") || !j["hostIfindex"].is_number_integer())
    return Decode("hostIfindex");
  r.host_ifindex = j["hostIfindex"].get<int>();
  if (!j.contains("addresses") || !j["addresses"].is_array()) return Decode("addresses");
  for (const auto& a : j["addresses"]) {
    auto ip = a.is_string() ? cni::IPAddress::Parse(a.get<std::string>())
                            : absl::InvalidArgumentError("");
    if (!ip.ok()) return Decode(StrCat("address ", a.dump()));
    r.addresses.push_back(*ip);
  }
  if (!j.contains("serviceIDs") || !j["serviceIDs"].is_array()) return Decode("serviceIDs");
  for (const auto& id : j["serviceIDs"]) {
    if (!id.is_number_unsigned()) return Decode(StrCat("service id ", id.dump()));
    r.service_ids.push_back(id.get<uint32_t>());
  }
  if (j.contains("portMappings")) {
    if (!j["portMappings"].is_array()) return Decode("portMappings");
    for (const auto& m : j["portMappings"]) {
      if (!m.is_object() || !m.value("hostPort", nlohmann::json()).is_number_unsigned() ||
          !m.value("containerPort", nlohmann::json()).is_number_unsigned()) {
        return Decode(StrCat("port mapping ", m.dump()));
      }
      cni::PortMapping pm;
      pm.host_port = m["hostPort"].get<uint16_t>();
      pm.container_port = m["containerPort"].get<uint16_t>();
      pm.protocol = m.value("protocol", std::string("tcp"));
      pm.host_ip = m.value("hostIP", std::string());
      r.port_mappings.push_back(pm);
    }
  }
  if (j.contains("socketLbNetnsCookie")) {
    if (!j["socketLbNetnsCookie"].is_number_unsigned()) return Decode("socketLbNetnsCookie");
    r.socket_lb_netns_cookie = j["socketLbNetnsCookie"].get<uint64_t>();
  }
  return r;
}

StateLock& StateLock::operator=(StateLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

StateLock::~StateLock() {
  if (fd_ >= 0) close(fd_);  // Closing the descriptor releases the flock.
}

absl::StatusOr<StateLock> StateStore::Lock() const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return absl::InternalError(StrCat("create ", dir_, ": ", ec.message()));
  std::string path = StrCat(dir_, "/lock");
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, StrCat("open ", path));
  while (flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    close(fd);
    return ErrnoStatus(e, StrCat("lock ", path));
  }
  return StateLock(fd);
}

std::string StateStore::PathFor(std::string_view container_id, std::string_view ifname) const {
  // ':' is allowed neither in container IDs nor in interface names: the name is unambiguous.
  return StrCat(dir_, "/", container_id, ":", ifname, kRecordSuffix);
}

absl::Status StateStore::Write(const AttachmentRecord& rec) const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return absl::InternalError(StrCat("create ", dir_, ": ", ec.message()));
  return WriteFileAtomic(PathFor(rec.container_id, rec.ifname), rec.ToJson().dump());
}

absl::StatusOr<std::optional<AttachmentRecord>> StateStore::Read(std::string_view container_id,
                                                                 std::string_view ifname) const {
  std::string path = PathFor(container_id, ifname);
  auto text = ReadFile(path);
  if (!text.ok()) return std::optional<AttachmentRecord>();
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  auto rec = AttachmentRecord::FromJson(j);
  if (!rec.ok()) {
    CNINET_LOG(kWarning, "ignoring unreadable record ", path, ": ", rec.status().message());
    return std::optional<AttachmentRecord>();
  }
  return std::optional<AttachmentRecord>(std::move(*rec));
}

absl::Status StateStore::Remove(std::string_view container_id, std::string_view ifname) const {
  std::string path = PathFor(container_id, ifname);
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return ErrnoStatus(errno, StrCat("remove ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AttachmentRecord>> StateStore::List() const {
  std::vector<std::string> files;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return std::vector<AttachmentRecord>();
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() > sizeof(kRecordSuffix) - 1 && name.ends_with(kRecordSuffix))
      files.push_back(entry.path().string());
  }
  if (ec) return absl::InternalError(StrCat("list ", dir_, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  std::vector<AttachmentRecord> out;
  for (const auto& f : files) {
    auto text = ReadFile(f);
    if (!text.ok()) continue;  // Removed meanwhile.
    auto rec = AttachmentRecord::FromJson(nlohmann::json::parse(*text, nullptr, false));
    if (!rec.ok()) {
      CNINET_LOG(kWarning, "ignoring unreadable record ", f, ": ", rec.status().message());
      continue;
    }
    out.push_back(std::move(*rec));
  }
  return out;
}

absl::StatusOr<std::string> StateStore::ReadUplink() const {
  auto text = ReadFile(StrCat(dir_, "/", kUplinkFile));
  if (!text.ok()) return std::string();
  std::string name = *text;
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return name;
}

absl::Status StateStore::WriteUplink(std::string_view name) const {
  std::string path = StrCat(dir_, "/", kUplinkFile);
  if (name.empty()) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      return ErrnoStatus(errno, StrCat("remove ", path));
    return absl::OkStatus();
  }
  return WriteFileAtomic(path, StrCat(name, "\n"));
}

}  // namespace cninet::ebpf_chain
