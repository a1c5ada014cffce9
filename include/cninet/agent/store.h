/// @file
/// The agent's key-value store: one interface, two real implementations (embedded directory,
/// etcd v3). Keys and values are bytes; revisions, watches from a revision, compare-and-swap and
/// leases follow etcd v3's model so both stores behave the same. Typed access to the protobuf state
/// model is in cninet/agent/state.h.
#ifndef CNINET_AGENT_STORE_H_
#define CNINET_AGENT_STORE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet::agent {

/// A lease identifier; 0 means "no lease".
using LeaseId = int64_t;

/// A key with its value and MVCC metadata (etcd's mvccpb.KeyValue).
struct KeyValue {
  std::string key;              ///< The key (any bytes; cninet's keys start with /cninet/v1/).
  std::string value;            ///< The value (cninet's: canonical JSON of a state message).
  int64_t create_revision = 0;  ///< Revision of the key's (last) creation.
  int64_t mod_revision = 0;     ///< Revision of the key's last modification.
  int64_t version = 0;          ///< Number of modifications since creation (1 after creation).
  /// Lease the key is attached to (deleted when it expires), 0 for none.
  LeaseId lease = 0;
};

/// Keys under a prefix, sorted by key, as of `revision`.
struct ListResult {
  std::vector<KeyValue> kvs;  ///< Matching keys, in key order.
  int64_t revision = 0;       ///< Store revision the list was read at.
};

/// Kind of a change.
enum class EventType {
  kPut,     ///< The key was created or modified.
  kDelete,  ///< The key was deleted (or its lease expired).
};

/// One change. For kDelete only kv.key and kv.mod_revision (the revision of the delete) are set.
struct Event {
  EventType type = EventType::kPut;  ///< Put or delete.
  KeyValue kv;                       ///< The key after a put; key and mod_revision for a delete.
};

/// What a watch callback receives: ordered events, or (reset = true) the complete current state of
/// the prefix as kPut events - sent first when watching from revision 0 and whenever the requested
/// history is no longer available (compaction): the watcher must then drop what it knew and take
/// `events` as the whole truth (relist semantics).
struct WatchUpdate {
  bool reset = false;         ///< `events` is the complete state of the prefix (relist).
  std::vector<Event> events;  ///< Changes in revision order (all kPut when `reset`).
  /// The store revision this update brings the watcher to; the next update starts after it.
  int64_t revision = 0;
};

/// Receives watch updates, one at a time and in order, on a thread owned by the watch.
using WatchCallback = std::function<void(const WatchUpdate&)>;

/// A running watch. Destroying it stops the watch; no callback runs after the destructor returns
/// (destroying it from inside its own callback is allowed and returns at once).
class WatchHandle {
 public:
  /// Stops the watch (see the class comment).
  virtual ~WatchHandle() = default;
  /// OK while the watch is connected; the last error while it is reconnecting (it retries forever).
  virtual absl::Status health() const = 0;
};

/// One write of an atomic batch (Store::Apply).
struct Op {
  /// What the operation does.
  enum class Kind {
    kPut,     ///< Write `value` (attached to `lease`).
    kDelete,  ///< Delete the key if it exists.
  };
  Kind kind = Kind::kPut;  ///< Put or delete.
  std::string key;         ///< The key; distinct within one batch.
  std::string value;       ///< kPut only.
  LeaseId lease = 0;       ///< kPut only.
};

/// A revisioned, watchable key-value store. Every method is thread-safe. Failed conditions use
/// stable codes: AlreadyExists (Create), Aborted (Update/DeleteIf revision mismatch), NotFound
/// (Get, KeepAlive of an expired lease), Unavailable (store unreachable; retry).
class Store {
 public:
  /// Closes the store; every watch of it stops.
  virtual ~Store() = default;

  /// "embedded" or "etcd".
  virtual std::string_view kind() const = 0;

  /// The key's current value, or NotFound.
  virtual absl::StatusOr<KeyValue> Get(std::string_view key) = 0;
  /// Every key starting with `prefix` (all keys for ""), sorted, with the revision read at.
  virtual absl::StatusOr<ListResult> List(std::string_view prefix) = 0;
  /// The store's current revision.
  virtual absl::StatusOr<int64_t> Revision() = 0;

  /// Writes `value` unconditionally; returns the new revision.
  virtual absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                                      LeaseId lease = 0) = 0;
  /// Writes only when the key does not exist (first writer wins), else AlreadyExists.
  virtual absl::StatusOr<int64_t> Create(std::string_view key, std::string_view value,
                                         LeaseId lease = 0) = 0;
  /// Compare-and-swap: writes only when the key's mod_revision equals `expected_mod_revision`
  /// (a missing key has 0), else Aborted.
  virtual absl::StatusOr<int64_t> Update(std::string_view key, std::string_view value,
                                         int64_t expected_mod_revision, LeaseId lease = 0) = 0;
  /// Deletes the key; true when it existed. Deleting a missing key is OK (idempotent).
  virtual absl::StatusOr<bool> Delete(std::string_view key) = 0;
  /// Deletes the key only when its mod_revision equals `expected_mod_revision`, else Aborted.
  virtual absl::Status DeleteIf(std::string_view key, int64_t expected_mod_revision) = 0;
  /// Applies puts and deletes of distinct keys atomically, as one revision; returns it.
  virtual absl::StatusOr<int64_t> Apply(std::span<const Op> ops) = 0;

  /// Grants a lease expiring `ttl` after its last keep-alive; keys put with it die with it.
  virtual absl::StatusOr<LeaseId> GrantLease(std::chrono::seconds ttl) = 0;
  /// Refreshes a lease; returns its TTL, or NotFound once it expired or was revoked.
  virtual absl::StatusOr<std::chrono::seconds> KeepAlive(LeaseId lease) = 0;
  /// Revokes a lease now, deleting its keys. Revoking an unknown lease is OK.
  virtual absl::Status RevokeLease(LeaseId lease) = 0;

  /// Drops the history of changes before `revision`; watches from older revisions get a reset.
  virtual absl::Status Compact(int64_t revision) = 0;

  /// Watches every key starting with `prefix`. With from_revision 0 the first update is a reset
  /// with the current state (including every write completed before Watch returned, when the
  /// store is reachable); otherwise changes from `from_revision` (inclusive) are replayed first,
  /// or a reset is sent when they were compacted. Connection errors are retried, not returned.
  virtual absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix,
                                                             int64_t from_revision,
                                                             WatchCallback callback) = 0;
};

/// Keeps a lease alive for as long as it exists: grants it, refreshes it every ttl/3 on its own
/// thread and revokes it on destruction. Used for node heartbeats.
class LeaseKeeper {
 public:
  /// Called once, on the keeper's thread, when the lease is lost (expired before a refresh got
  /// through, or revoked by someone else); the keeper stops refreshing then.
  using LostCallback = std::function<void(const absl::Status&)>;

  /// Grants a lease of `ttl` (>= 2 s) on `store` (which must outlive the keeper).
  static absl::StatusOr<std::unique_ptr<LeaseKeeper>> Start(Store& store, std::chrono::seconds ttl,
                                                            LostCallback on_lost = {});
  /// Stops refreshing and revokes the lease (unless abandoned or lost).
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  /// The lease to attach keys to.
  LeaseId id() const { return id_; }
  /// True once the lease was lost.
  bool lost() const;
  /// Stops refreshing without revoking: the lease (and its keys) expire after the TTL, as if the
  /// process had died.
  void Abandon();

 private:
  struct State;
  LeaseKeeper(Store& store, LeaseId id, std::chrono::seconds ttl, LostCallback on_lost);

  Store& store_;
  LeaseId id_;
  std::shared_ptr<State> state_;
};

/// Smallest key greater than every key starting with `prefix` ("" when there is none): the
/// exclusive end of a prefix range, as etcd's range_end.
std::string PrefixRangeEnd(std::string_view prefix);

}  // namespace cninet::agent

#endif  // CNINET_AGENT_STORE_H_
