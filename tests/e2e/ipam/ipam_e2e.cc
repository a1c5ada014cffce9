#include "ipam_e2e.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "cninet/base/strings.h"

namespace cninet::ipam::e2e {

namespace fs = std::filesystem;

std::vector<std::string> IpamE2eTest::LeaseFiles(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (n == "lock" || n.rfind("last_reserved_ip.", 0) == 0 || n[0] == '.') continue;
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::string> IpamE2eTest::Snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  if (!fs::exists(root, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    std::string p = it->path().string();
    if (lstat(p.c_str(), &st) != 0) continue;
    std::string v = cninet::StrCat(st.st_mode, ":");
    if (S_ISREG(st.st_mode)) v += cninet::testing::ReadFile(p);
    if (S_ISLNK(st.st_mode)) v += fs::read_symlink(p, ec).string();
    out[p.substr(root.size())] = v;
  }
  return out;
}

std::vector<std::string> IpamE2eTest::Addresses(const std::string& result_json) {
  std::vector<std::string> out;
  nlohmann::json j = nlohmann::json::parse(result_json, nullptr, false);
  if (!j.is_object() || !j.contains("ips") || !j["ips"].is_array()) return out;
  for (const auto& ip : j["ips"]) {
    if (ip.contains("address") && ip["address"].is_string()) out.push_back(ip["address"]);
  }
  return out;
}

}  // namespace cninet::ipam::e2e
