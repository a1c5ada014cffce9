#include "store_cache.h"

#include <algorithm>
#include <iterator>
#include <string_view>
#include <utility>

#include "cninet/base/log.h"
#include "cninet/base/strings.h"

namespace cninet::agent {
namespace {

// The events of `update` under the prefix of `kind`.
WatchUpdate Part(const WatchUpdate& update, ObjectKind kind) {
  WatchUpdate w;
  w.reset = update.reset;
  w.revision = update.revision;
  std::string_view prefix = KeyPrefix(kind);
  for (const Event& ev : update.events) {
    if (std::string_view(ev.kv.key).substr(0, prefix.size()) == prefix) w.events.push_back(ev);
  }
  return w;
}

// The object type a cache map holds.
template <typename Map>
using ValueOf = std::remove_const_t<typename Map::mapped_type::element_type>;

template <typename T, typename Map>
SharedList<T> Values(const Map& m) {
  SharedList<T> out;
  out.reserve(m.size());
  for (const auto& [k, v] : m) out.push_back(v);
  return out;
}

}  // namespace

Topics StoreCache::Apply(const WatchUpdate& update) {
  Topics touched = ApplyHeartbeats(update);
  std::apply(
      [&](auto&... maps) {
        ((touched |= ApplyKind<ValueOf<std::decay_t<decltype(maps)>>>(update)), ...);
      },
      objects_);
  revision_ = std::max(revision_, update.revision);
  if (update.reset) synced_ = true;
  return touched;
}

// Heartbeats only matter as the set of nodes whose agent is alive.
Topics StoreCache::ApplyHeartbeats(const WatchUpdate& update) {
  ObjectUpdate<v1::NodeHeartbeat> u =
      DecodeUpdate<v1::NodeHeartbeat>(Part(update, ObjectKind::kNodeHeartbeat));
  if (u.reset) alive_.clear();
  for (const auto& ev : u.events) {
    if (ev.type == EventType::kPut) {
      alive_.insert(ev.object.value.node());
    } else {
      alive_.erase(ev.object.value.node());
    }
  }
  return u.reset || !u.events.empty() ? Topics{kTopicNodes} : Topics{0};
}

template <typename T>
Topics StoreCache::ApplyKind(const WatchUpdate& update) {
  ObjectUpdate<T> u = DecodeUpdate<T>(Part(update, ObjectTraits<T>::kKind));
  if constexpr (std::is_same_v<T, v1::Node>) NoteSelf(u);
  // Only kinds this update touches are marked (a reset touches all of them).
  if (!u.reset && u.events.empty() && u.errors.empty()) return 0;
  ApplyObjects(u, &std::get<std::map<std::string, std::shared_ptr<const T>>>(objects_));
  return TopicsOf<T>();
}

void StoreCache::NoteSelf(const ObjectUpdate<v1::Node>& u) {
  for (const auto& ev : u.events) {
    if (ev.object.value.name() != node_name_) continue;
    bool removed = ev.type == EventType::kDelete;
    if (removed && !self_removed_) {
      CNINET_LOG(kWarning,
                 "this node's object was deleted from the store; restart the agent to register "
                 "again");
    }
    self_removed_ = removed;
  }
}

void StoreCache::ForgetIfLocal(const v1::Pod& pod) {
  if (pod.node() != node_name_) return;
  for (const std::string& ip : pod.ips()) {
    if (auto a = cni::IPAddress::Parse(ip); a.ok()) forgotten_.insert(*a);
  }
}

template <typename T>
void StoreCache::ApplyObjects(ObjectUpdate<T>& u,
                              std::map<std::string, std::shared_ptr<const T>>* cache) {
  auto forget = [&](const T& old) {
    if constexpr (std::is_same_v<T, v1::Pod>) ForgetIfLocal(old);
  };
  std::set<std::string> error_keys;
  for (const DecodeError& e : u.errors) {
    error_keys.insert(e.key);
    AddProblem(e.key, std::string(e.status.message()));
  }
  if (!u.reset) {
    for (auto& ev : u.events) {
      problems_.erase(ev.object.key);
      if (ev.type == EventType::kPut) {
        (*cache)[ev.object.key] = std::make_shared<const T>(std::move(ev.object.value));
      } else if (auto it = cache->find(ev.object.key); it != cache->end()) {
        forget(*it->second);
        cache->erase(it);
      }
    }
    return;
  }
  std::map<std::string, std::shared_ptr<const T>> fresh;
  for (auto& ev : u.events) {
    fresh[ev.object.key] = std::make_shared<const T>(std::move(ev.object.value));
  }
  // A malformed key keeps the value it had.
  for (const std::string& k : error_keys) {
    if (auto it = cache->find(k); it != cache->end()) fresh[k] = it->second;
  }
  for (const auto& [k, v] : *cache) {
    if (!fresh.count(k)) forget(*v);
  }
  for (auto it = problems_.begin(); it != problems_.end();) {
    bool ours = it->first.rfind(KeyPrefix(ObjectTraits<T>::kKind), 0) == 0;
    it = ours && !error_keys.count(it->first) ? problems_.erase(it) : std::next(it);
  }
  *cache = std::move(fresh);
}

void StoreCache::AddProblem(const std::string& key, const std::string& why) {
  auto [it, inserted] = problems_.insert({key, why});
  if (!inserted && it->second == why) return;
  it->second = why;
  CNINET_LOG(kWarning, "skipping malformed value: ", why);
}

void StoreCache::Fill(Topics topics, Snapshot* s) const {
  s->revision = revision_;
  s->topics = topics;
  s->alive = alive_;
  std::apply(
      [&](const auto&... maps) {
        (
            [&](const auto& m) {
              using T = ValueOf<std::decay_t<decltype(m)>>;
              if (TopicsOf<T>() & topics) std::get<SharedList<T>>(s->lists) = Values<T>(m);
            }(maps),
            ...);
      },
      objects_);
}

std::shared_ptr<const Snapshot> StoreCache::Take(Topics topics) {
  auto s = std::make_shared<Snapshot>();
  Fill(topics, s.get());
  if (topics & kTopicPods) s->forgotten.swap(forgotten_);
  return s;
}

std::shared_ptr<const Snapshot> StoreCache::Peek(Topics topics) const {
  auto s = std::make_shared<Snapshot>();
  Fill(topics, s.get());
  return s;
}

}  // namespace cninet::agent
