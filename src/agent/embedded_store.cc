// The embedded store. Format (see embedded_store.proto): a snapshot plus a write-ahead log of
// checksummed records in one directory. Every open instance keeps the whole state in memory and
// follows the log: before each operation it reads the records other processes appended (under a
// shared flock), and writes append one record under an exclusive flock, fsync'ed before the call
// returns. When the log grows past a threshold the writer folds it into a new snapshot (temp file,
// fsync, rename, fsync of the directory) and starts a new log the same way; readers that still
// hold the old log finish reading it first, so no change is missed.
#include "cninet/agent/embedded_store.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/dispatcher.h"
#include "agent/embedded_store_internal.h"
#include "cninet/base/fd.h"
#include "cninet/base/file.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "embedded_store.pb.h"

namespace cninet::agent {
namespace internal {
namespace {
std::atomic<CrashHook> g_crash_hook{nullptr};
}  // namespace

void SetEmbeddedStoreCrashHook(CrashHook hook) { g_crash_hook.store(hook); }
}  // namespace internal

namespace {

using internal::Dispatcher;
using internal::Snapshot;
using internal::StoredKeyValue;
using internal::StoredLease;
using internal::WalHeader;
using internal::WalOp;
using internal::WalRecord;

constexpr uint32_t kFormat = 1;
constexpr size_t kFrameHeader = 8;
constexpr uint32_t kMaxFrame = 1u << 30;

void CrashPoint(std::string_view point) {
  if (internal::CrashHook hook = internal::g_crash_hook.load()) hook(point);
}

// ---------------------------------------------------------------------------------------------
// Records on disk.

uint32_t Crc32c(std::string_view data) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      table[i] = c;
    }
    return table;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : data) crc = kTable[(crc ^ b) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

void PutLe32(std::string* out, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*out)[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t GetLe32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

std::string Frame(const google::protobuf::MessageLite& message) {
  std::string out(kFrameHeader, '\0');
  message.AppendToString(&out);
  std::string_view payload(out.data() + kFrameHeader, out.size() - kFrameHeader);
  PutLe32(&out, 0, static_cast<uint32_t>(payload.size()));
  PutLe32(&out, 4, Crc32c(payload));
  return out;
}

enum class FrameStatus { kOk, kIncomplete, kCorrupt };

// Parses the frame at the start of `data`.
FrameStatus NextFrame(std::string_view data, size_t* frame_size, std::string_view* payload) {
  if (data.size() < kFrameHeader) return FrameStatus::kIncomplete;
  uint32_t len = GetLe32(data, 0);
  if (len > kMaxFrame) return FrameStatus::kCorrupt;
  if (data.size() - kFrameHeader < len) return FrameStatus::kIncomplete;
  *payload = data.substr(kFrameHeader, len);
  if (Crc32c(*payload) != GetLe32(data, 4)) return FrameStatus::kCorrupt;
  *frame_size = kFrameHeader + len;
  return FrameStatus::kOk;
}

// ---------------------------------------------------------------------------------------------
// Files.

// flock() held for a scope.
class FileLock {
 public:
  FileLock(int fd, int op) : fd_(fd) {
    while (flock(fd_, op) != 0 && errno == EINTR) {
    }
  }
  ~FileLock() { flock(fd_, LOCK_UN); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

absl::Status PWriteAll(int fd, std::string_view data, off_t offset, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, StrCat("writing ", what));
    }
    data.remove_prefix(static_cast<size_t>(n));
    offset += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFrom(int fd, off_t offset, const std::string& what) {
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = pread(fd, buf, sizeof(buf), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, StrCat("reading ", what));
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    offset += n;
  }
}

// Replaces dir/name with `content` atomically and durably (WriteFileAtomic), passing
// `crash_after_write` between the synced temp file and the rename.
absl::Status ReplaceFile(const std::string& dir, const std::string& name, std::string_view content,
                         std::string_view crash_after_write) {
  WriteFileOptions options;
  options.mode = 0600;
  options.before_rename = [crash_after_write] { CrashPoint(crash_after_write); };
  return WriteFileAtomic(StrCat(dir, "/", name), content, options);
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// ---------------------------------------------------------------------------------------------
// In-memory state.

struct LeaseState {
  int64_t ttl_seconds = 0;
  int64_t deadline_unix_ms = 0;
  std::set<std::string, std::less<>> keys;
};

struct MemState {
  int64_t revision = 1;  // etcd's convention: an empty store is at revision 1.
  int64_t seq = 0;
  int64_t compact_revision = 0;
  std::map<std::string, KeyValue, std::less<>> kvs;
  std::map<LeaseId, LeaseState> leases;
};

void DetachLease(MemState* st, const KeyValue& kv) {
  if (kv.lease == 0) return;
  if (auto it = st->leases.find(kv.lease); it != st->leases.end()) it->second.keys.erase(kv.key);
}

// Applies a validated record; appends the changes it makes to `events`.
void ApplyRecord(const WalRecord& rec, MemState* st, std::vector<Event>* events) {
  for (const StoredLease& lease : rec.lease_updates()) {
    LeaseState& state = st->leases[lease.id()];
    state.ttl_seconds = lease.ttl_seconds();
    state.deadline_unix_ms = lease.deadline_unix_ms();
  }
  if (rec.ops_size() > 0) {
    const int64_t rev = rec.revision();
    for (const WalOp& op : rec.ops()) {
      auto it = st->kvs.find(op.key());
      if (op.kind() == WalOp::DELETE) {
        if (it == st->kvs.end()) continue;
        DetachLease(st, it->second);
        st->kvs.erase(it);
        Event event;
        event.type = EventType::kDelete;
        event.kv.key = op.key();
        event.kv.mod_revision = rev;
        events->push_back(std::move(event));
        continue;
      }
      KeyValue* kv;
      if (it == st->kvs.end()) {
        kv = &st->kvs[op.key()];
        kv->key = op.key();
        kv->create_revision = rev;
        kv->version = 1;
      } else {
        kv = &it->second;
        DetachLease(st, *kv);
        kv->version++;
      }
      kv->value = op.value();
      kv->mod_revision = rev;
      kv->lease = op.lease();
      if (kv->lease != 0) st->leases[kv->lease].keys.insert(kv->key);
      events->push_back(Event{EventType::kPut, *kv});
    }
    st->revision = rev;
  }
  for (LeaseId id : rec.lease_revokes()) st->leases.erase(id);
  st->compact_revision = std::max(st->compact_revision, rec.compact_revision());
  st->seq = rec.seq();
}

absl::Status LoadSnapshot(const std::string& path, MemState* st, uint64_t* bytes = nullptr) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, StrCat("opening ", path));
  }
  CNINET_ASSIGN_OR_RETURN(std::string data, ReadFrom(fd.get(), 0, path));
  if (bytes != nullptr) *bytes = data.size();
  size_t size = 0;
  std::string_view payload;
  Snapshot snap;
  if (NextFrame(data, &size, &payload) != FrameStatus::kOk || size != data.size() ||
      !snap.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::DataLossError(StrCat(path, ": snapshot is corrupt"));
  }
  if (snap.format() != kFormat) {
    return absl::DataLossError(StrCat(path, ": unknown snapshot format ", snap.format()));
  }
  st->revision = snap.revision();
  st->seq = snap.seq();
  st->compact_revision = snap.compact_revision();
  for (const StoredLease& lease : snap.leases()) {
    st->leases[lease.id()] = LeaseState{lease.ttl_seconds(), lease.deadline_unix_ms(), {}};
  }
  for (const StoredKeyValue& skv : snap.kvs()) {
    KeyValue& kv = st->kvs[skv.key()];
    kv.key = skv.key();
    kv.value = skv.value();
    kv.create_revision = skv.create_revision();
    kv.mod_revision = skv.mod_revision();
    kv.version = skv.version();
    kv.lease = skv.lease();
    if (kv.lease != 0) st->leases[kv.lease].keys.insert(kv.key);
  }
  return absl::OkStatus();
}

std::string SnapshotFrame(const MemState& st) {
  Snapshot snap;
  snap.set_format(kFormat);
  snap.set_revision(st.revision);
  snap.set_seq(st.seq);
  snap.set_compact_revision(st.compact_revision);
  for (const auto& [key, kv] : st.kvs) {
    StoredKeyValue* skv = snap.add_kvs();
    skv->set_key(key);
    skv->set_value(kv.value);
    skv->set_create_revision(kv.create_revision);
    skv->set_mod_revision(kv.mod_revision);
    skv->set_version(kv.version);
    skv->set_lease(kv.lease);
  }
  for (const auto& [id, lease] : st.leases) {
    StoredLease* sl = snap.add_leases();
    sl->set_id(id);
    sl->set_ttl_seconds(lease.ttl_seconds);
    sl->set_deadline_unix_ms(lease.deadline_unix_ms);
  }
  return Frame(snap);
}

std::string WalHeaderFrame(const MemState& st) {
  WalHeader header;
  header.set_format(kFormat);
  header.set_base_revision(st.revision);
  header.set_base_seq(st.seq);
  return Frame(header);
}

// ---------------------------------------------------------------------------------------------
// The store.

class Core : public std::enable_shared_from_this<Core> {
 public:
  explicit Core(EmbeddedStoreOptions options)
      : options_(std::move(options)),
        wal_path_(options_.dir + "/wal"),
        snapshot_path_(options_.dir + "/snapshot") {}
  ~Core() { Shutdown(); }

  absl::Status Open();
  void Shutdown();

  absl::StatusOr<KeyValue> Get(std::string_view key);
  absl::StatusOr<ListResult> List(std::string_view prefix);
  absl::StatusOr<int64_t> Revision();
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value, LeaseId lease);
  absl::StatusOr<int64_t> Create(std::string_view key, std::string_view value, LeaseId lease);
  absl::StatusOr<int64_t> Update(std::string_view key, std::string_view value, int64_t expected,
                                 LeaseId lease);
  absl::StatusOr<bool> Delete(std::string_view key);
  absl::Status DeleteIf(std::string_view key, int64_t expected);
  absl::StatusOr<int64_t> Apply(std::span<const Op> ops);
  absl::StatusOr<LeaseId> GrantLease(std::chrono::seconds ttl);
  absl::StatusOr<std::chrono::seconds> KeepAlive(LeaseId lease);
  absl::Status RevokeLease(LeaseId lease);
  absl::Status Compact(int64_t revision);
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix, int64_t from,
                                                     WatchCallback callback);
  void RemoveWatcher(uint64_t id);

 private:
  struct Watcher {
    std::string prefix;
    std::shared_ptr<Dispatcher> dispatcher;
  };
  using Builder = std::function<absl::Status(const MemState&, WalRecord*)>;

  // Brings st_ up to date with the log (mu_ and the file lock held).
  absl::Status Refresh();
  absl::Status RefreshShared();
  // Reads and applies the complete records after wal_offset_ in wal_fd_.
  absl::Status ReadNewRecords();
  // Loads snapshot + log from scratch into st_ (mu_ and the file lock held).
  absl::Status LoadAll();
  // Re-reads everything after losing track of the log, resetting every watcher.
  absl::Status Reload();
  // Appends a record built by `build` under the exclusive lock; returns the resulting revision.
  absl::StatusOr<int64_t> Write(const Builder& build);
  absl::Status SnapshotAndRotate();
  // History and watchers for the events of one record.
  void Publish(std::vector<Event> events, int64_t revision, int64_t compact_revision);
  void PopHistory();
  static size_t EventBytes(const Event& event) {
    return event.kv.key.size() + event.kv.value.size() + sizeof(Event);
  }
  std::vector<Event> StateEvents(std::string_view prefix) const;
  void ResetAllWatchers();
  void Background();
  void ReapExpiredLeases();

  const EmbeddedStoreOptions options_;
  const std::string wal_path_;
  const std::string snapshot_path_;
  UniqueFd lock_fd_;

  std::mutex mu_;
  MemState st_;
  UniqueFd wal_fd_;
  ino_t wal_ino_ = 0;
  uint64_t wal_offset_ = 0;  // End of the records applied so far.
  std::deque<Event> history_;
  size_t history_bytes_ = 0;     // Approximate memory of history_.
  int64_t history_start_ = 0;    // Every change with revision >= this is in history_.
  uint64_t snapshot_bytes_ = 0;  // Size of the last snapshot written or loaded.
  std::map<uint64_t, Watcher> watchers_;
  uint64_t next_watcher_id_ = 1;
  std::mt19937_64 rng_{std::random_device{}()};
  bool shut_down_ = false;

  UniqueFd inotify_fd_;
  UniqueFd stop_fd_;
  std::thread background_;
};

class EmbeddedWatchHandle : public WatchHandle {
 public:
  EmbeddedWatchHandle(std::weak_ptr<Core> core, uint64_t id, std::shared_ptr<Dispatcher> dispatcher)
      : core_(std::move(core)), id_(id), dispatcher_(std::move(dispatcher)) {}
  ~EmbeddedWatchHandle() override {
    dispatcher_->Stop();
    if (auto core = core_.lock()) core->RemoveWatcher(id_);
  }
  absl::Status health() const override {
    if (core_.expired()) return absl::FailedPreconditionError("the store was closed");
    return absl::OkStatus();
  }

 private:
  std::weak_ptr<Core> core_;
  uint64_t id_;
  std::shared_ptr<Dispatcher> dispatcher_;
};

absl::Status Core::Open() {
  if (mkdir(options_.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, StrCat("creating ", options_.dir));
  }
  struct stat sb;
  if (stat(options_.dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    return absl::FailedPreconditionError(StrCat(options_.dir, " is not a directory"));
  }
  std::string lock_path = options_.dir + "/LOCK";
  lock_fd_ = UniqueFd(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd_.valid()) return ErrnoStatus(errno, StrCat("opening ", lock_path));
  {
    std::lock_guard<std::mutex> lock(mu_);
    FileLock file_lock(lock_fd_.get(), LOCK_EX);
    // Temp files of a writer that died while replacing a file (files are only replaced under
    // the exclusive lock, so none of them is in use).
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(options_.dir, ec)) {
      std::string name = entry.path().filename().string();
      if (HasPrefix(name, "snapshot.tmp.") || HasPrefix(name, "wal.tmp.")) {
        std::filesystem::remove(entry.path(), ec);
      }
    }
    if (access(wal_path_.c_str(), F_OK) != 0) {
      MemState snap;
      CNINET_RETURN_IF_ERROR(LoadSnapshot(snapshot_path_, &snap));
      CNINET_RETURN_IF_ERROR(ReplaceFile(options_.dir, "wal", WalHeaderFrame(snap), "wal-written"));
    }
    CNINET_RETURN_IF_ERROR(LoadAll());
    // A torn record at the end was never acknowledged: cut it so appends continue cleanly.
    struct stat wal_sb;
    if (fstat(wal_fd_.get(), &wal_sb) == 0 && static_cast<uint64_t>(wal_sb.st_size) > wal_offset_) {
      CNINET_LOG(kWarning, "embedded store ", options_.dir, ": discarding ",
                 static_cast<uint64_t>(wal_sb.st_size) - wal_offset_,
                 " bytes of an incomplete log record");
      if (ftruncate(wal_fd_.get(), static_cast<off_t>(wal_offset_)) != 0) {
        return ErrnoStatus(errno, "truncating the log");
      }
    }
  }
  inotify_fd_ = UniqueFd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (inotify_fd_.valid() &&
      inotify_add_watch(inotify_fd_.get(), options_.dir.c_str(),
                        IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE) < 0) {
    inotify_fd_.Reset();  // Polling only.
  }
  stop_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) return ErrnoStatus(errno, "eventfd");
  background_ = std::thread(&Core::Background, this);
  return absl::OkStatus();
}

void Core::Shutdown() {
  if (background_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_.get(), &one, sizeof(one));
    background_.join();
  }
  std::vector<std::shared_ptr<Dispatcher>> dispatchers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shut_down_ = true;
    for (auto& [id, watcher] : watchers_) dispatchers.push_back(watcher.dispatcher);
    watchers_.clear();
  }
  for (auto& dispatcher : dispatchers) dispatcher->Stop();
}

absl::Status Core::LoadAll() {
  MemState st;
  uint64_t snapshot_bytes = 0;
  CNINET_RETURN_IF_ERROR(LoadSnapshot(snapshot_path_, &st, &snapshot_bytes));
  UniqueFd fd(open(wal_path_.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("opening ", wal_path_));
  struct stat sb;
  if (fstat(fd.get(), &sb) != 0) return ErrnoStatus(errno, StrCat("stat ", wal_path_));
  CNINET_ASSIGN_OR_RETURN(std::string head, ReadFrom(fd.get(), 0, wal_path_));
  size_t size = 0;
  std::string_view payload;
  WalHeader header;
  if (NextFrame(head, &size, &payload) != FrameStatus::kOk ||
      !header.ParseFromArray(payload.data(), static_cast<int>(payload.size())) ||
      header.format() != kFormat) {
    return absl::DataLossError(StrCat(wal_path_, ": log header is corrupt"));
  }
  if (header.base_seq() > st.seq) {
    return absl::DataLossError(StrCat(wal_path_, ": log starts after the snapshot (record ",
                                      header.base_seq(), " > ", st.seq, ")"));
  }
  st_ = std::move(st);
  snapshot_bytes_ = snapshot_bytes;
  wal_fd_ = std::move(fd);
  wal_ino_ = sb.st_ino;
  wal_offset_ = size;
  history_.clear();
  history_bytes_ = 0;
  // A fresh store (revision 1) has no change before its first write: its history is complete.
  history_start_ = st_.revision == 1 ? 1 : st_.revision + 1;
  return ReadNewRecords();
}

absl::Status Core::ReadNewRecords() {
  CNINET_ASSIGN_OR_RETURN(std::string data,
                          ReadFrom(wal_fd_.get(), static_cast<off_t>(wal_offset_), wal_path_));
  std::string_view rest(data);
  while (!rest.empty()) {
    size_t size = 0;
    std::string_view payload;
    if (NextFrame(rest, &size, &payload) != FrameStatus::kOk) break;  // Torn tail.
    WalRecord rec;
    if (!rec.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) break;
    if (rec.seq() > st_.seq) {
      if (rec.seq() != st_.seq + 1 || (rec.ops_size() > 0 && rec.revision() != st_.revision + 1)) {
        return absl::DataLossError(StrCat(wal_path_, ": record ", rec.seq(), " (revision ",
                                          rec.revision(), ") does not follow ", st_.seq,
                                          " (revision ", st_.revision, ")"));
      }
      std::vector<Event> events;
      ApplyRecord(rec, &st_, &events);
      Publish(std::move(events), rec.revision(), rec.compact_revision());
    }
    rest.remove_prefix(size);
    wal_offset_ += size;
  }
  return absl::OkStatus();
}

absl::Status Core::Refresh() {
  struct stat sb;
  if (stat(wal_path_.c_str(), &sb) != 0) return ErrnoStatus(errno, StrCat("stat ", wal_path_));
  if (sb.st_ino != wal_ino_) {
    // Another process rotated the log: finish the old one (still open), then continue with the
    // new one if it starts exactly where the old one ended.
    absl::Status status = ReadNewRecords();
    UniqueFd fd(open(wal_path_.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, StrCat("opening ", wal_path_));
    struct stat fsb;
    if (fstat(fd.get(), &fsb) != 0) return ErrnoStatus(errno, StrCat("stat ", wal_path_));
    CNINET_ASSIGN_OR_RETURN(std::string head, ReadFrom(fd.get(), 0, wal_path_));
    size_t size = 0;
    std::string_view payload;
    WalHeader header;
    if (status.ok() && NextFrame(head, &size, &payload) == FrameStatus::kOk &&
        header.ParseFromArray(payload.data(), static_cast<int>(payload.size())) &&
        header.base_seq() == st_.seq) {
      wal_fd_ = std::move(fd);
      wal_ino_ = fsb.st_ino;
      wal_offset_ = size;
      return ReadNewRecords();
    }
    return Reload();
  }
  if (static_cast<uint64_t>(sb.st_size) > wal_offset_) {
    absl::Status status = ReadNewRecords();
    if (absl::IsDataLoss(status)) return Reload();
    return status;
  }
  return absl::OkStatus();
}

absl::Status Core::RefreshShared() {
  FileLock file_lock(lock_fd_.get(), LOCK_SH);
  return Refresh();
}

absl::Status Core::Reload() {
  CNINET_LOG(kWarning, "embedded store ", options_.dir, ": reloading from the snapshot");
  // Replayed records must not reach the watchers one by one: they get one reset instead.
  std::map<uint64_t, Watcher> watchers = std::move(watchers_);
  watchers_.clear();
  absl::Status status = LoadAll();
  watchers_ = std::move(watchers);
  CNINET_RETURN_IF_ERROR(status);
  ResetAllWatchers();
  return absl::OkStatus();
}

std::vector<Event> Core::StateEvents(std::string_view prefix) const {
  std::vector<Event> events;
  for (auto it = st_.kvs.lower_bound(prefix); it != st_.kvs.end() && HasPrefix(it->first, prefix);
       ++it) {
    events.push_back(Event{EventType::kPut, it->second});
  }
  return events;
}

void Core::ResetAllWatchers() {
  for (auto& [id, watcher] : watchers_) {
    WatchUpdate update;
    update.reset = true;
    update.events = StateEvents(watcher.prefix);
    update.revision = st_.revision;
    watcher.dispatcher->Push(std::move(update));
  }
}

void Core::Publish(std::vector<Event> events, int64_t revision, int64_t compact_revision) {
  if (compact_revision > 0) {
    while (!history_.empty() && history_.front().kv.mod_revision < compact_revision) {
      PopHistory();
    }
    history_start_ = std::max(history_start_, compact_revision);
  }
  if (events.empty()) return;
  for (auto& [id, watcher] : watchers_) {
    WatchUpdate update;
    update.revision = revision;
    for (const Event& event : events) {
      if (HasPrefix(event.kv.key, watcher.prefix)) update.events.push_back(event);
    }
    if (!update.events.empty()) watcher.dispatcher->Push(std::move(update));
  }
  for (Event& event : events) {
    history_bytes_ += EventBytes(event);
    history_.push_back(std::move(event));
  }
  auto over = [&] {
    return history_.size() > options_.max_history_events ||
           history_bytes_ > options_.max_history_bytes;
  };
  if (over()) {
    // Drop whole revisions only, so the history stays complete from history_start_ on.
    int64_t dropped = 0;
    while (!history_.empty() && (over() || history_.front().kv.mod_revision == dropped)) {
      dropped = history_.front().kv.mod_revision;
      PopHistory();
    }
    history_start_ = std::max(history_start_, dropped + 1);
  }
}

void Core::PopHistory() {
  history_bytes_ -= EventBytes(history_.front());
  history_.pop_front();
}

absl::StatusOr<int64_t> Core::Write(const Builder& build) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return absl::FailedPreconditionError("the store was closed");
  FileLock file_lock(lock_fd_.get(), LOCK_EX);
  CNINET_RETURN_IF_ERROR(Refresh());
  WalRecord rec;
  CNINET_RETURN_IF_ERROR(build(st_, &rec));
  if (rec.ops_size() == 0 && rec.lease_updates_size() == 0 && rec.lease_revokes_size() == 0 &&
      rec.compact_revision() == 0) {
    return st_.revision;  // Nothing to change.
  }
  // Anything past the applied records is a torn write of a crashed writer: overwrite it.
  struct stat sb;
  if (fstat(wal_fd_.get(), &sb) != 0) return ErrnoStatus(errno, StrCat("stat ", wal_path_));
  if (static_cast<uint64_t>(sb.st_size) > wal_offset_) {
    CNINET_LOG(kWarning, "embedded store ", options_.dir, ": discarding ",
               static_cast<uint64_t>(sb.st_size) - wal_offset_, " bytes of an incomplete record");
    if (ftruncate(wal_fd_.get(), static_cast<off_t>(wal_offset_)) != 0) {
      return ErrnoStatus(errno, "truncating the log");
    }
  }
  rec.set_seq(st_.seq + 1);
  if (rec.ops_size() > 0) rec.set_revision(st_.revision + 1);
  std::string frame = Frame(rec);
  const off_t at = static_cast<off_t>(wal_offset_);
  absl::Status status;
  if (internal::g_crash_hook.load() != nullptr) {
    size_t half = frame.size() / 2;
    status = PWriteAll(wal_fd_.get(), std::string_view(frame).substr(0, half), at, wal_path_);
    CrashPoint("append-half");
    if (status.ok()) {
      status = PWriteAll(wal_fd_.get(), std::string_view(frame).substr(half),
                         at + static_cast<off_t>(half), wal_path_);
    }
  } else {
    status = PWriteAll(wal_fd_.get(), frame, at, wal_path_);
  }
  CrashPoint("append-before-sync");
  if (status.ok() && options_.sync && fdatasync(wal_fd_.get()) != 0) {
    status = ErrnoStatus(errno, StrCat("fdatasync ", wal_path_));
  }
  if (!status.ok()) {
    // Not acknowledged: take the partial record back out.
    if (ftruncate(wal_fd_.get(), at) != 0) {
      CNINET_LOG(kError, "embedded store ", options_.dir, ": cannot truncate a failed write");
    }
    return status;
  }
  CrashPoint("append-synced");
  wal_offset_ += frame.size();
  std::vector<Event> events;
  ApplyRecord(rec, &st_, &events);
  Publish(std::move(events), rec.revision(), rec.compact_revision());
  if (wal_offset_ > std::max<uint64_t>(options_.snapshot_threshold_bytes, snapshot_bytes_)) {
    // The write is durable already; a failed rotation only postpones compaction.
    if (absl::Status s = SnapshotAndRotate(); !s.ok()) {
      CNINET_LOG(kWarning, "embedded store ", options_.dir, ": snapshot failed: ", s.ToString());
    }
  }
  return st_.revision;
}

absl::Status Core::SnapshotAndRotate() {
  std::string snapshot = SnapshotFrame(st_);
  CNINET_RETURN_IF_ERROR(ReplaceFile(options_.dir, "snapshot", snapshot, "snapshot-written"));
  snapshot_bytes_ = snapshot.size();
  CrashPoint("snapshot-renamed");
  std::string header = WalHeaderFrame(st_);
  CNINET_RETURN_IF_ERROR(ReplaceFile(options_.dir, "wal", header, "wal-written"));
  CrashPoint("wal-rotated");
  UniqueFd fd(open(wal_path_.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("opening ", wal_path_));
  struct stat sb;
  if (fstat(fd.get(), &sb) != 0) return ErrnoStatus(errno, StrCat("stat ", wal_path_));
  wal_fd_ = std::move(fd);
  wal_ino_ = sb.st_ino;
  wal_offset_ = header.size();
  return absl::OkStatus();
}

absl::StatusOr<KeyValue> Core::Get(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  CNINET_RETURN_IF_ERROR(RefreshShared());
  auto it = st_.kvs.find(key);
  if (it == st_.kvs.end()) return absl::NotFoundError(StrCat("key ", key, " not found"));
  return it->second;
}

absl::StatusOr<ListResult> Core::List(std::string_view prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  CNINET_RETURN_IF_ERROR(RefreshShared());
  ListResult result;
  result.revision = st_.revision;
  for (auto it = st_.kvs.lower_bound(prefix); it != st_.kvs.end() && HasPrefix(it->first, prefix);
       ++it) {
    result.kvs.push_back(it->second);
  }
  return result;
}

absl::StatusOr<int64_t> Core::Revision() {
  std::lock_guard<std::mutex> lock(mu_);
  CNINET_RETURN_IF_ERROR(RefreshShared());
  return st_.revision;
}

absl::Status CheckKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  return absl::OkStatus();
}

absl::Status CheckLease(const MemState& st, LeaseId lease) {
  if (lease != 0 && st.leases.find(lease) == st.leases.end()) {
    return absl::NotFoundError(StrCat("lease ", lease, " not found"));
  }
  return absl::OkStatus();
}

void AddPut(WalRecord* rec, std::string_view key, std::string_view value, LeaseId lease) {
  WalOp* op = rec->add_ops();
  op->set_kind(WalOp::PUT);
  op->set_key(std::string(key));
  op->set_value(std::string(value));
  op->set_lease(lease);
}

void AddDelete(WalRecord* rec, std::string_view key) {
  WalOp* op = rec->add_ops();
  op->set_kind(WalOp::DELETE);
  op->set_key(std::string(key));
}

int64_t ModRevision(const MemState& st, std::string_view key) {
  auto it = st.kvs.find(key);
  return it == st.kvs.end() ? 0 : it->second.mod_revision;
}

absl::StatusOr<int64_t> Core::Put(std::string_view key, std::string_view value, LeaseId lease) {
  CNINET_RETURN_IF_ERROR(CheckKey(key));
  return Write([&](const MemState& st, WalRecord* rec) {
    CNINET_RETURN_IF_ERROR(CheckLease(st, lease));
    AddPut(rec, key, value, lease);
    return absl::OkStatus();
  });
}

absl::StatusOr<int64_t> Core::Create(std::string_view key, std::string_view value, LeaseId lease) {
  CNINET_RETURN_IF_ERROR(CheckKey(key));
  return Write([&](const MemState& st, WalRecord* rec) {
    if (st.kvs.find(key) != st.kvs.end()) {
      return absl::AlreadyExistsError(StrCat("key ", key, " already exists"));
    }
    CNINET_RETURN_IF_ERROR(CheckLease(st, lease));
    AddPut(rec, key, value, lease);
    return absl::OkStatus();
  });
}

absl::StatusOr<int64_t> Core::Update(std::string_view key, std::string_view value, int64_t expected,
                                     LeaseId lease) {
  CNINET_RETURN_IF_ERROR(CheckKey(key));
  return Write([&](const MemState& st, WalRecord* rec) {
    if (int64_t current = ModRevision(st, key); current != expected) {
      return absl::AbortedError(
          StrCat("key ", key, " is at mod_revision ", current, ", not ", expected));
    }
    CNINET_RETURN_IF_ERROR(CheckLease(st, lease));
    AddPut(rec, key, value, lease);
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> Core::Delete(std::string_view key) {
  CNINET_RETURN_IF_ERROR(CheckKey(key));
  bool existed = false;
  absl::StatusOr<int64_t> rev = Write([&](const MemState& st, WalRecord* rec) {
    existed = st.kvs.find(key) != st.kvs.end();
    if (existed) AddDelete(rec, key);
    return absl::OkStatus();
  });
  if (!rev.ok()) return rev.status();
  return existed;
}

absl::Status Core::DeleteIf(std::string_view key, int64_t expected) {
  CNINET_RETURN_IF_ERROR(CheckKey(key));
  return Write([&](const MemState& st, WalRecord* rec) {
           if (int64_t current = ModRevision(st, key); current != expected) {
             return absl::AbortedError(
                 StrCat("key ", key, " is at mod_revision ", current, ", not ", expected));
           }
           if (expected != 0) AddDelete(rec, key);
           return absl::OkStatus();
         })
      .status();
}

absl::StatusOr<int64_t> Core::Apply(std::span<const Op> ops) {
  std::set<std::string_view> keys;
  for (const Op& op : ops) {
    CNINET_RETURN_IF_ERROR(CheckKey(op.key));
    if (!keys.insert(op.key).second) {
      return absl::InvalidArgumentError(StrCat("key ", op.key, " appears twice in one batch"));
    }
  }
  return Write([&](const MemState& st, WalRecord* rec) {
    for (const Op& op : ops) {
      if (op.kind == Op::Kind::kPut) {
        CNINET_RETURN_IF_ERROR(CheckLease(st, op.lease));
        AddPut(rec, op.key, op.value, op.lease);
      } else if (st.kvs.find(op.key) != st.kvs.end()) {
        AddDelete(rec, op.key);
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<LeaseId> Core::GrantLease(std::chrono::seconds ttl) {
  if (ttl.count() < 1) return absl::InvalidArgumentError("lease TTL must be at least 1 second");
  LeaseId id = 0;
  absl::StatusOr<int64_t> rev = Write([&](const MemState& st, WalRecord* rec) {
    do {
      id = static_cast<LeaseId>(rng_() >> 1);
    } while (id == 0 || st.leases.count(id) != 0);
    StoredLease* lease = rec->add_lease_updates();
    lease->set_id(id);
    lease->set_ttl_seconds(ttl.count());
    lease->set_deadline_unix_ms(NowUnixMs() + ttl.count() * 1000);
    return absl::OkStatus();
  });
  if (!rev.ok()) return rev.status();
  return id;
}

absl::StatusOr<std::chrono::seconds> Core::KeepAlive(LeaseId id) {
  int64_t ttl = 0;
  absl::StatusOr<int64_t> rev = Write([&](const MemState& st, WalRecord* rec) {
    auto it = st.leases.find(id);
    int64_t now = NowUnixMs();
    if (it == st.leases.end() || it->second.deadline_unix_ms < now) {
      return absl::NotFoundError(StrCat("lease ", id, " not found or expired"));
    }
    ttl = it->second.ttl_seconds;
    StoredLease* lease = rec->add_lease_updates();
    lease->set_id(id);
    lease->set_ttl_seconds(ttl);
    lease->set_deadline_unix_ms(now + ttl * 1000);
    return absl::OkStatus();
  });
  if (!rev.ok()) return rev.status();
  return std::chrono::seconds(ttl);
}

absl::Status Core::RevokeLease(LeaseId id) {
  return Write([&](const MemState& st, WalRecord* rec) {
           auto it = st.leases.find(id);
           if (it == st.leases.end()) return absl::OkStatus();
           for (const std::string& key : it->second.keys) AddDelete(rec, key);
           rec->add_lease_revokes(id);
           return absl::OkStatus();
         })
      .status();
}

absl::Status Core::Compact(int64_t revision) {
  return Write([&](const MemState& st, WalRecord* rec) {
           if (revision > st.revision) {
             return absl::OutOfRangeError(
                 StrCat("revision ", revision, " is in the future (current ", st.revision, ")"));
           }
           if (revision > st.compact_revision) rec->set_compact_revision(revision);
           return absl::OkStatus();
         })
      .status();
}

void Core::ReapExpiredLeases() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = NowUnixMs();
    bool any = false;
    for (const auto& [id, lease] : st_.leases) any |= lease.deadline_unix_ms < now;
    if (!any) return;
  }
  absl::StatusOr<int64_t> rev = Write([&](const MemState& st, WalRecord* rec) {
    int64_t now = NowUnixMs();
    for (const auto& [id, lease] : st.leases) {
      if (lease.deadline_unix_ms >= now) continue;
      for (const std::string& key : lease.keys) AddDelete(rec, key);
      rec->add_lease_revokes(id);
    }
    return absl::OkStatus();
  });
  if (!rev.ok()) CNINET_LOG(kWarning, "embedded store: expiring leases: ", rev.status().ToString());
}

void Core::Background() {
  const int timeout_ms = static_cast<int>(options_.poll_interval.count());
  while (true) {
    pollfd fds[2] = {{stop_fd_.get(), POLLIN, 0}, {inotify_fd_.get(), POLLIN, 0}};
    int n = poll(fds, inotify_fd_.valid() ? 2 : 1, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) break;
    if (inotify_fd_.valid() && (fds[1].revents & POLLIN)) {
      char buf[4096];
      while (read(inotify_fd_.get(), buf, sizeof(buf)) > 0) {
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (absl::Status s = RefreshShared(); !s.ok()) {
        CNINET_LOG(kWarning, "embedded store ", options_.dir, ": ", s.ToString());
      }
    }
    ReapExpiredLeases();
  }
}

absl::StatusOr<std::unique_ptr<WatchHandle>> Core::Watch(std::string_view prefix, int64_t from,
                                                         WatchCallback callback) {
  if (!callback) return absl::InvalidArgumentError("watch without a callback");
  if (from < 0) return absl::InvalidArgumentError("negative watch revision");
  auto dispatcher = std::make_shared<Dispatcher>(std::move(callback));
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return absl::FailedPreconditionError("the store was closed");
  CNINET_RETURN_IF_ERROR(RefreshShared());
  WatchUpdate first;
  if (from == 0 || from < history_start_) {
    first.reset = true;
    first.events = StateEvents(prefix);
    first.revision = st_.revision;
    dispatcher->Push(std::move(first));
  } else {
    for (const Event& event : history_) {
      if (event.kv.mod_revision >= from && HasPrefix(event.kv.key, prefix)) {
        first.events.push_back(event);
      }
    }
    if (!first.events.empty()) {
      first.revision = st_.revision;
      dispatcher->Push(std::move(first));
    }
  }
  uint64_t id = next_watcher_id_++;
  watchers_[id] = Watcher{std::string(prefix), dispatcher};
  return std::unique_ptr<WatchHandle>(
      new EmbeddedWatchHandle(weak_from_this(), id, std::move(dispatcher)));
}

void Core::RemoveWatcher(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.erase(id);
}

class EmbeddedStore : public Store {
 public:
  explicit EmbeddedStore(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~EmbeddedStore() override { core_->Shutdown(); }

  std::string_view kind() const override { return "embedded"; }
  absl::StatusOr<KeyValue> Get(std::string_view key) override { return core_->Get(key); }
  absl::StatusOr<ListResult> List(std::string_view prefix) override { return core_->List(prefix); }
  absl::StatusOr<int64_t> Revision() override { return core_->Revision(); }
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              LeaseId lease) override {
    return core_->Put(key, value, lease);
  }
  absl::StatusOr<int64_t> Create(std::string_view key, std::string_view value,
                                 LeaseId lease) override {
    return core_->Create(key, value, lease);
  }
  absl::StatusOr<int64_t> Update(std::string_view key, std::string_view value, int64_t expected,
                                 LeaseId lease) override {
    return core_->Update(key, value, expected, lease);
  }
  absl::StatusOr<bool> Delete(std::string_view key) override { return core_->Delete(key); }
  absl::Status DeleteIf(std::string_view key, int64_t expected) override {
    return core_->DeleteIf(key, expected);
  }
  absl::StatusOr<int64_t> Apply(std::span<const Op> ops) override { return core_->Apply(ops); }
  absl::StatusOr<LeaseId> GrantLease(std::chrono::seconds ttl) override {
    return core_->GrantLease(ttl);
  }
  absl::StatusOr<std::chrono::seconds> KeepAlive(LeaseId lease) override {
    return core_->KeepAlive(lease);
  }
  absl::Status RevokeLease(LeaseId lease) override { return core_->RevokeLease(lease); }
  absl::Status Compact(int64_t revision) override { return core_->Compact(revision); }
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix, int64_t from,
                                                     WatchCallback callback) override {
    return core_->Watch(prefix, from, std::move(callback));
  }

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace

absl::Status EmbeddedStoreOptions::Validate() const {
  if (dir.empty()) return absl::InvalidArgumentError("embedded store: dir is not set");
  if (snapshot_threshold_bytes < 4096) {
    return absl::InvalidArgumentError("embedded store: snapshot_threshold_bytes below 4096");
  }
  if (max_history_events == 0 || max_history_bytes == 0) {
    return absl::InvalidArgumentError("embedded store: max_history_events/bytes must be positive");
  }
  if (poll_interval.count() <= 0) {
    return absl::InvalidArgumentError("embedded store: poll_interval must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Store>> OpenEmbeddedStore(const EmbeddedStoreOptions& options) {
  CNINET_RETURN_IF_ERROR(options.Validate());
  auto core = std::make_shared<Core>(options);
  CNINET_RETURN_IF_ERROR(Annotate(core->Open(), StrCat("embedded store ", options.dir)));
  return std::unique_ptr<Store>(new EmbeddedStore(std::move(core)));
}

}  // namespace cninet::agent
