// The agent's cache of the store: fed by one watch over every cninet key, it answers which
// reconcile topics a change touches and hands out immutable snapshots for the passes.
#ifndef CNINET_SRC_AGENT_STORE_CACHE_H_
#define CNINET_SRC_AGENT_STORE_CACHE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cninet/agent/state.h"
#include "cninet/agent/store.h"
#include "cninet/cni/ip.h"
#include "cninet/v1/cluster.pb.h"

namespace cninet::agent {

// What a change makes stale; each reconcile pass follows some topics.
enum Topic : uint32_t {
  kTopicNodes = 1u << 0,     // nodes and heartbeats (overlay)
  kTopicServices = 1u << 1,  // services and endpoints
  kTopicPods = 1u << 2,      // pods (endpoint table)
  kTopicPolicy = 1u << 3,    // pods, namespaces, network policies
};
using Topics = uint32_t;
inline constexpr Topics kAllTopics = kTopicNodes | kTopicServices | kTopicPods | kTopicPolicy;

// The object kinds the cache follows, and the topics a change of each touches. Adding a kind
// means adding it here (and a pass reading it through Snapshot::Get).
template <typename... T>
struct KindList {};
using FollowedKinds =
    KindList<v1::Node, v1::Service, v1::Endpoints, v1::Pod, v1::Namespace, v1::NetworkPolicy>;
template <typename T>
constexpr Topics TopicsOf() {
  if constexpr (std::is_same_v<T, v1::Node>) return kTopicNodes;
  if constexpr (std::is_same_v<T, v1::Service> || std::is_same_v<T, v1::Endpoints>) {
    return kTopicServices;
  }
  if constexpr (std::is_same_v<T, v1::Pod>) return kTopicPods | kTopicPolicy;  // labels, locality
  if constexpr (std::is_same_v<T, v1::Namespace> || std::is_same_v<T, v1::NetworkPolicy>) {
    return kTopicPolicy;
  }
  return 0;
}

// Objects of one kind, each held once and shared with the snapshots planned from.
template <typename T>
using SharedList = std::vector<std::shared_ptr<const T>>;

template <typename L>
struct ListsOf;
template <typename... T>
struct ListsOf<KindList<T...>> {
  using type = std::tuple<SharedList<T>...>;
};

// The store at one revision, as a reconcile round (or a status report) sees it. Immutable once
// taken; only the kinds of the topics it was taken for are filled.
struct Snapshot {
  int64_t revision = 0;
  Topics topics = 0;  // what it was taken for
  ListsOf<FollowedKinds>::type lists;
  std::set<std::string> alive;         // nodes with a heartbeat
  std::set<cni::IPAddress> forgotten;  // addresses of local pods deleted since the last take

  // The objects of kind T (in key order).
  template <typename T>
  const SharedList<T>& Get() const {
    return std::get<SharedList<T>>(lists);
  }
  // Get() as plain pointers, the form the Plan functions take.
  template <typename T>
  std::vector<const T*> Pointers() const {
    std::vector<const T*> out;
    out.reserve(Get<T>().size());
    for (const auto& p : Get<T>()) out.push_back(p.get());
    return out;
  }
};

// The cache. Not thread-safe: the agent holds its lock around every call.
class StoreCache {
 public:
  // `node_name` identifies local pods and this node's own object.
  explicit StoreCache(std::string node_name) : node_name_(std::move(node_name)) {}

  // Applies one watch update (over every cninet key); returns the topics it touched.
  Topics Apply(const WatchUpdate& update);
  // True once the first complete state (a reset) arrived.
  bool synced() const { return synced_; }
  // The store revision the cache reflects.
  int64_t revision() const { return revision_; }
  // True when this node's object was deleted from the store.
  bool self_removed() const { return self_removed_; }
  // Malformed values skipped, by key.
  const std::map<std::string, std::string>& problems() const { return problems_; }

  // A snapshot for `topics`; with kTopicPods it takes the forgotten addresses along.
  std::shared_ptr<const Snapshot> Take(Topics topics);
  // A snapshot for `topics`, leaving the forgotten addresses in place (status reports).
  std::shared_ptr<const Snapshot> Peek(Topics topics = kAllTopics) const;

 private:
  template <typename T>
  Topics ApplyKind(const WatchUpdate& update);
  template <typename T>
  void ApplyObjects(ObjectUpdate<T>& u, std::map<std::string, std::shared_ptr<const T>>* cache);
  Topics ApplyHeartbeats(const WatchUpdate& update);
  void NoteSelf(const ObjectUpdate<v1::Node>& u);
  void ForgetIfLocal(const v1::Pod& pod);
  void AddProblem(const std::string& key, const std::string& why);
  void Fill(Topics topics, Snapshot* s) const;

  template <typename L>
  struct MapsOf;
  template <typename... T>
  struct MapsOf<KindList<T...>> {
    using type = std::tuple<std::map<std::string, std::shared_ptr<const T>>...>;
  };

  std::string node_name_;
  MapsOf<FollowedKinds>::type objects_;
  std::set<std::string> alive_;
  std::set<cni::IPAddress> forgotten_;
  std::map<std::string, std::string> problems_;
  int64_t revision_ = 0;
  bool synced_ = false;
  bool self_removed_ = false;
};

}  // namespace cninet::agent

#endif  // CNINET_SRC_AGENT_STORE_CACHE_H_
