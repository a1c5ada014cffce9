#include "cninet/cni/runtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "cninet/base/file.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/cni/exec.h"
#include "cninet/cni/version.h"
#include "json_util.h"

extern char** environ;

namespace cninet::cni {
namespace {

constexpr std::string_view kCacheKind = "cniCacheV1";

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty() && mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
        return CniError(ErrorCode::kIoFailure,
                        cninet::StrCat("mkdir ", cur, ": ", strerror(errno)));
      }
    }
    if (i < path.size()) cur.push_back(path[i]);
  }
  return absl::OkStatus();
}

// Writes a cache file (0600: it holds the network configuration) with WriteFileAtomic.
absl::Status WriteAtomic(const std::string& path, std::string_view data) {
  WriteFileOptions options;
  options.mode = 0600;
  absl::Status status = WriteFileAtomic(path, data, options);
  if (!status.ok()) return CniError(ErrorCode::kIoFailure, std::string(status.message()));
  return absl::OkStatus();
}

std::string ArgsString(const std::vector<std::pair<std::string, std::string>>& args) {
  std::string out;
  for (const auto& [k, v] : args) {
    if (!out.empty()) out += ";";
    out += k + "=" + v;
  }
  return out;
}

absl::Status ValidateAttachment(const RuntimeConf& rt) {
  CNINET_RETURN_IF_ERROR(ValidateContainerId(rt.container_id));
  return ValidateInterfaceName(rt.ifname);
}

}  // namespace

Runtime::Runtime(RuntimeOptions options) : options_(std::move(options)) {}

absl::StatusOr<nlohmann::json> Runtime::BuildPluginConfig(const NetConfList& list, size_t index,
                                                          std::string_view version,
                                                          const std::optional<Result>& prev,
                                                          const RuntimeConf& rt, Command command) {
  if (index >= list.plugins.size()) {
    return absl::OutOfRangeError(cninet::StrCat("plugin index ", index, " out of range"));
  }
  nlohmann::json conf = list.plugins[index];
  // Keys under cni.dev/ are reserved for the runtime; user-provided ones are dropped.
  for (auto it = conf.begin(); it != conf.end();) {
    if (it.key().rfind("cni.dev/", 0) == 0) {
      it = conf.erase(it);
    } else {
      ++it;
    }
  }
  conf["cniVersion"] = std::string(version);
  conf["name"] = list.name;
  const bool attachment =
      command == Command::kAdd || command == Command::kDel || command == Command::kCheck;
  if (attachment) {
    nlohmann::json rc = nlohmann::json::object();
    if (auto caps = conf.find("capabilities"); caps != conf.end() && caps->is_object()) {
      for (auto cap = caps->begin(); cap != caps->end(); ++cap) {
        if (!cap->is_boolean() || !cap->get<bool>()) continue;
        if (auto arg = rt.capability_args.find(cap.key()); arg != rt.capability_args.end()) {
          rc[cap.key()] = *arg;
        }
      }
    }
    if (!rc.empty()) conf["runtimeConfig"] = rc;
    if (prev.has_value()) {
      CNINET_ASSIGN_OR_RETURN(conf["prevResult"], prev->ToJson(version));
    }
  }
  conf.erase("capabilities");  // Spec: "capabilities: must not be set" in request configuration.
  return conf;
}

absl::StatusOr<std::string> Runtime::Exec(std::string_view type, Command command,
                                          const RuntimeConf* rt, const std::string& config) const {
  CNINET_ASSIGN_OR_RETURN(std::string binary, FindInPath(type, options_.plugin_paths));
  ExecOptions opts;
  opts.timeout = options_.timeout;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::string_view(*e).rfind("CNI_", 0) != 0) opts.env.emplace_back(*e);
  }
  opts.env.push_back(cninet::StrCat("CNI_COMMAND=", CommandName(command)));
  if (rt != nullptr) {
    opts.env.push_back("CNI_CONTAINERID=" + rt->container_id);
    opts.env.push_back("CNI_NETNS=" + rt->netns);
    opts.env.push_back("CNI_IFNAME=" + rt->ifname);
    if (!rt->args.empty()) opts.env.push_back("CNI_ARGS=" + ArgsString(rt->args));
  }
  opts.env.push_back("CNI_PATH=" + cninet::StrJoin(options_.plugin_paths, ":"));
  opts.env.insert(opts.env.end(), options_.extra_env.begin(), options_.extra_env.end());
  CNINET_LOG(kDebug, "exec ", binary, " ", CommandName(command), " config ", config);
  absl::StatusOr<std::string> out = ExecPlugin(binary, config, opts);
  if (!out.ok()) return Annotate(out.status(), cninet::StrCat("plugin type=\"", type, "\""));
  return out;
}

std::string Runtime::CachePath(std::string_view network, const RuntimeConf& rt) const {
  return cninet::StrCat(options_.cache_dir, "/results/", network, "-", rt.container_id, "-",
                        rt.ifname);
}

absl::Status Runtime::WriteCache(const NetConfList& list, const RuntimeConf& rt,
                                 const Result& result, std::string_view version) const {
  nlohmann::json entry = nlohmann::json::object();
  entry["kind"] = kCacheKind;
  entry["containerId"] = rt.container_id;
  entry["config"] = absl::Base64Escape(internal::Dump(list.raw));
  entry["ifName"] = rt.ifname;
  entry["networkName"] = list.name;
  if (!rt.netns.empty()) entry["netns"] = rt.netns;
  if (!rt.args.empty()) {
    nlohmann::json args = nlohmann::json::array();
    for (const auto& [k, v] : rt.args) args.push_back({k, v});
    entry["cniArgs"] = args;
  }
  if (!rt.capability_args.empty()) entry["capabilityArgs"] = rt.capability_args;
  CNINET_ASSIGN_OR_RETURN(entry["result"], result.ToJson(version));
  CNINET_RETURN_IF_ERROR(MakeDirs(options_.cache_dir + "/results", 0700));
  return WriteAtomic(CachePath(list.name, rt), internal::Dump(entry));
}

absl::StatusOr<std::optional<Result>> Runtime::GetCachedResult(const NetConfList& list,
                                                               const RuntimeConf& rt) const {
  CNINET_RETURN_IF_ERROR(ValidateAttachment(rt));
  std::string path = CachePath(list.name, rt);
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::optional<Result>();
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(cninet::StrCat("cache entry ", path, " is not valid JSON"));
  }
  auto it = j.find("result");
  if (it == j.end() || it->is_null()) {
    return absl::DataLossError(cninet::StrCat("cache entry ", path, " has no result"));
  }
  absl::StatusOr<Result> r = Result::FromJson(*it);
  if (!r.ok()) return Annotate(r.status(), cninet::StrCat("cache entry ", path));
  return std::optional<Result>(std::move(*r));
}

std::vector<GcAttachment> Runtime::CachedAttachments(std::string_view network) const {
  std::vector<GcAttachment> out;
  std::string dir = options_.cache_dir + "/results";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  std::string prefix = cninet::StrCat(network, "-");
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind(prefix, 0) != 0 || name.find(".tmp.") != std::string::npos) continue;
    std::ifstream f(dir + "/" + name, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (!j.is_object() || j.value("networkName", "") != network) continue;
    std::string cid = j.value("containerId", "");
    std::string ifname = j.value("ifName", "");
    if (!cid.empty() && !ifname.empty()) out.push_back({cid, ifname});
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const GcAttachment& a, const GcAttachment& b) {
    return std::tie(a.container_id, a.ifname) < std::tie(b.container_id, b.ifname);
  });
  return out;
}

absl::StatusOr<Result> Runtime::AddNetworkList(const NetConfList& list, const RuntimeConf& rt) {
  CNINET_RETURN_IF_ERROR(ValidateAttachment(rt));
  CNINET_ASSIGN_OR_RETURN(std::string version, list.SelectedVersion());
  std::optional<Result> prev;
  for (size_t i = 0; i < list.plugins.size(); ++i) {
    std::string type = list.plugins[i].value("type", "");
    CNINET_ASSIGN_OR_RETURN(nlohmann::json conf,
                            BuildPluginConfig(list, i, version, prev, rt, Command::kAdd));
    CNINET_ASSIGN_OR_RETURN(std::string out, Exec(type, Command::kAdd, &rt, internal::Dump(conf)));
    absl::StatusOr<Result> result = Result::Parse(out);
    if (!result.ok()) {
      return Annotate(result.status(),
                      cninet::StrCat("plugin type=\"", type, "\" returned an invalid result"));
    }
    prev = std::move(*result);
  }
  prev->cni_version = version;
  CNINET_RETURN_IF_ERROR(WriteCache(list, rt, *prev, version));
  return *prev;
}

absl::Status Runtime::CheckNetworkList(const NetConfList& list, const RuntimeConf& rt) {
  CNINET_RETURN_IF_ERROR(ValidateAttachment(rt));
  CNINET_ASSIGN_OR_RETURN(std::string version, list.SelectedVersion());
  if (CompareVersions(version, "0.4.0") < 0) {
    return CniError(ErrorCode::kIncompatibleVersion,
                    cninet::StrCat("configuration version \"", version,
                                   "\" does not support the CHECK command"));
  }
  if (list.disable_check) return absl::OkStatus();
  CNINET_ASSIGN_OR_RETURN(std::optional<Result> cached, GetCachedResult(list, rt));
  if (!cached.has_value()) {
    return absl::NotFoundError(cninet::StrCat("no cached result for network \"", list.name,
                                              "\" container ", rt.container_id, " ", rt.ifname,
                                              ": was ADD run?"));
  }
  for (size_t i = 0; i < list.plugins.size(); ++i) {
    std::string type = list.plugins[i].value("type", "");
    CNINET_ASSIGN_OR_RETURN(nlohmann::json conf,
                            BuildPluginConfig(list, i, version, cached, rt, Command::kCheck));
    CNINET_RETURN_IF_ERROR(Exec(type, Command::kCheck, &rt, internal::Dump(conf)).status());
  }
  return absl::OkStatus();
}

absl::Status Runtime::DelNetworkList(const NetConfList& list, const RuntimeConf& rt) {
  CNINET_RETURN_IF_ERROR(ValidateAttachment(rt));
  CNINET_ASSIGN_OR_RETURN(std::string version, list.SelectedVersion());
  std::optional<Result> cached;
  if (CompareVersions(version, "0.4.0") >= 0) {
    absl::StatusOr<std::optional<Result>> c = GetCachedResult(list, rt);
    if (c.ok()) {
      cached = std::move(*c);
    } else {
      // A corrupt or empty cache entry must never block DEL.
      CNINET_LOG(kWarning, "ignoring unreadable cached result: ", c.status().message());
    }
  }
  for (size_t i = list.plugins.size(); i-- > 0;) {
    std::string type = list.plugins[i].value("type", "");
    CNINET_ASSIGN_OR_RETURN(nlohmann::json conf,
                            BuildPluginConfig(list, i, version, cached, rt, Command::kDel));
    CNINET_RETURN_IF_ERROR(Exec(type, Command::kDel, &rt, internal::Dump(conf)).status());
  }
  std::string path = CachePath(list.name, rt);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return CniError(ErrorCode::kIoFailure, cninet::StrCat("remove ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status Runtime::GcNetworkList(const NetConfList& list,
                                    const std::vector<GcAttachment>& valid) {
  CNINET_ASSIGN_OR_RETURN(std::string version, list.SelectedVersion());
  if (CompareVersions(version, "1.1.0") < 0 || list.disable_gc) return absl::OkStatus();
  std::vector<std::string> errors;
  // Cache entries of attachments that are no longer valid go first, as libcni does.
  for (const GcAttachment& a : CachedAttachments(list.name)) {
    if (std::find(valid.begin(), valid.end(), a) != valid.end()) continue;
    RuntimeConf rt;
    rt.container_id = a.container_id;
    rt.ifname = a.ifname;
    if (ValidateAttachment(rt).ok()) unlink(CachePath(list.name, rt).c_str());
  }
  nlohmann::json attachments = nlohmann::json::array();
  for (const GcAttachment& a : valid) {
    attachments.push_back({{"containerID", a.container_id}, {"ifname", a.ifname}});
  }
  RuntimeConf none;
  absl::Status first;
  for (size_t i = 0; i < list.plugins.size(); ++i) {
    std::string type = list.plugins[i].value("type", "");
    absl::StatusOr<nlohmann::json> conf =
        BuildPluginConfig(list, i, version, std::nullopt, none, Command::kGc);
    absl::Status s = conf.status();
    if (conf.ok()) {
      (*conf)["cni.dev/valid-attachments"] = attachments;
      s = Exec(type, Command::kGc, nullptr, internal::Dump(*conf)).status();
    }
    if (!s.ok()) {
      if (first.ok()) first = s;
      errors.emplace_back(s.message().data(), s.message().size());
    }
  }
  if (errors.size() <= 1) return first;
  return Annotate(first, cninet::StrCat(errors.size(), " plugins failed GC; all errors: ",
                                        cninet::StrJoin(errors, "; "), "; first"));
}

absl::Status Runtime::StatusNetworkList(const NetConfList& list) {
  CNINET_ASSIGN_OR_RETURN(std::string version, list.SelectedVersion());
  if (CompareVersions(version, "1.1.0") < 0) return absl::OkStatus();
  RuntimeConf none;
  for (size_t i = 0; i < list.plugins.size(); ++i) {
    std::string type = list.plugins[i].value("type", "");
    CNINET_ASSIGN_OR_RETURN(nlohmann::json conf, BuildPluginConfig(list, i, version, std::nullopt,
                                                                   none, Command::kStatus));
    CNINET_RETURN_IF_ERROR(Exec(type, Command::kStatus, nullptr, internal::Dump(conf)).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Runtime::PluginVersions(
    std::string_view type, std::string_view cni_version) const {
  nlohmann::json req = {
      {"cniVersion", std::string(cni_version.empty() ? kCurrentVersion : cni_version)}};
  CNINET_ASSIGN_OR_RETURN(std::string out,
                          Exec(type, Command::kVersion, nullptr, internal::Dump(req)));
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (!j.is_object() || !j.contains("supportedVersions") || !j["supportedVersions"].is_array()) {
    return CniError(ErrorCode::kDecodeFailure,
                    cninet::StrCat("plugin ", type, ": bad VERSION output"));
  }
  std::vector<std::string> versions;
  for (const auto& v : j["supportedVersions"]) {
    if (v.is_string()) versions.push_back(v.get<std::string>());
  }
  return versions;
}

}  // namespace cninet::cni
