#include "cninet/agent/health_check.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "cninet/agent/services.h"
#include "cninet/base/log.h"
#include "cninet/base/strings.h"

namespace cninet::agent {
namespace {

// A listening TCP socket on [::]:port that also takes IPv4.
absl::StatusOr<UniqueFd> Listen(uint16_t port) {
  UniqueFd fd(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return absl::InternalError(StrCat("socket: ", strerror(errno)));
  int one = 1, zero = 0;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  a.sin6_addr = in6addr_any;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd.get(), 64) != 0)
    return absl::UnavailableError(StrCat("healthCheckNodePort ", port, ": ", strerror(errno)));
  return fd;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::vector<HealthCheck> PlanHealthChecks(std::span<const v1::Service* const> services,
                                          std::span<const v1::Endpoints* const> endpoints,
                                          const std::string& node_name) {
  std::map<std::pair<std::string, std::string>, const v1::Endpoints*> eps;
  for (const v1::Endpoints* e : endpoints) eps[{e->namespace_(), e->name()}] = e;
  std::map<uint16_t, HealthCheck> by_port;
  for (const v1::Service* s : services) {
    if (s->external_traffic_policy() != v1::Service::LOCAL || s->health_check_node_port() == 0 ||
        s->type() == v1::Service::CLUSTER_IP)
      continue;
    HealthCheck hc{static_cast<uint16_t>(s->health_check_node_port()), s->namespace_(), s->name(),
                   0};
    std::set<std::string> ready, serving;
    bool any_ready = false;
    if (auto it = eps.find({s->namespace_(), s->name()}); it != eps.end()) {
      for (const auto& port : it->second->ports()) {
        for (const auto& b : port.backends()) {
          BackendConditions c = BackendConditions::Of(b);
          any_ready |= c.ready;
          if (b.node() != node_name || node_name.empty()) continue;
          if (c.ready) ready.insert(b.ip());
          if (c.serving) serving.insert(b.ip());
        }
      }
    }
    hc.local_endpoints = any_ready ? ready.size() : serving.size();
    by_port.try_emplace(hc.port, hc);  // The first service in store order keeps a shared port.
  }
  std::vector<HealthCheck> out;
  for (auto& [port, hc] : by_port) out.push_back(std::move(hc));
  return out;
}

std::string HealthCheckBody(const HealthCheck& c) {
  return StrCat("{\"service\":{\"namespace\":", JsonString(c.ns), ",\"name\":", JsonString(c.name),
                "},\"localEndpoints\":", c.local_endpoints, ",\"serviceProxyHealthy\":true}");
}

HealthCheckServer::HealthCheckServer(NetnsRunner in_netns)
    : in_netns_(std::move(in_netns)), wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  thread_ = std::thread([this] { Loop(); });
}

HealthCheckServer::~HealthCheckServer() {
  stop_ = true;
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof(one));
  thread_.join();
}

absl::Status HealthCheckServer::Update(const std::vector<HealthCheck>& checks) {
  absl::Status result;
  {
    std::lock_guard<std::mutex> l(mu_);
    std::set<uint16_t> want;
    for (const HealthCheck& c : checks) want.insert(c.port);
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      it = want.count(it->first) ? std::next(it) : listeners_.erase(it);
    }
    for (const HealthCheck& c : checks) {
      auto it = listeners_.find(c.port);
      if (it != listeners_.end()) {
        it->second.check = c;
        continue;
      }
      absl::StatusOr<UniqueFd> fd = absl::InternalError("not opened");
      auto open = [&]() -> absl::Status {
        fd = Listen(c.port);
        return fd.status();
      };
      if (in_netns_) {
        (void)in_netns_(open);
      } else {
        (void)open();
      }
      if (!fd.ok()) {
        if (result.ok()) result = fd.status();
        continue;
      }
      listeners_.emplace(c.port, Listener{std::move(*fd), c});
    }
  }
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof(one));
  return result;
}

std::vector<uint16_t> HealthCheckServer::ports() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint16_t> out;
  for (const auto& [port, li] : listeners_) out.push_back(port);
  return out;
}

void HealthCheckServer::Loop() {
  while (!stop_) {
    std::vector<pollfd> fds{{wake_.get(), POLLIN, 0}};
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [port, li] : listeners_) fds.push_back({li.fd.get(), POLLIN, 0});
    }
    if (poll(fds.data(), fds.size(), -1) <= 0) continue;
    if (fds[0].revents & POLLIN) {
      uint64_t n;
      (void)!read(wake_.get(), &n, sizeof(n));
      continue;  // The set may have changed: rebuild it before touching the others.
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) Serve(fds[i].fd);
    }
  }
}

// Answers one connection: reads the request head (briefly), writes the status and the body.
void HealthCheckServer::Serve(int listen_fd) {
  UniqueFd c(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (!c) return;
  HealthCheck check;
  {
    std::lock_guard<std::mutex> l(mu_);
    bool found = false;
    for (const auto& [port, li] : listeners_) {
      if (li.fd.get() == listen_fd) {
        check = li.check;
        found = true;
      }
    }
    if (!found) return;  // Closed meanwhile.
  }
  timeval tv{1, 0};
  setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
    ssize_t n = read(c.get(), buf, sizeof(buf));
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
  }
  std::string body = HealthCheckBody(check);
  bool ok = check.local_endpoints > 0;
  std::string reply =
      StrCat("HTTP/1.1 ", ok ? "200 OK" : "503 Service Unavailable",
             "\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
             "Content-Length: ",
             body.size(), "\r\nConnection: close\r\n\r\n", body);
  (void)!write(c.get(), reply.data(), reply.size());
}

}  // namespace cninet::agent
