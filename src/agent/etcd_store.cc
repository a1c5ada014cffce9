// The etcd v3 store over gRPC (synchronous C++ API). Unary calls carry a deadline and wait for the
// channel to (re)connect within it; each watch runs one bidirectional Watch stream on its own
// thread, resumes from the last revision it delivered after any stream failure (with exponential
// backoff) and relists the prefix when etcd reports that revision compacted.
#include "cninet/agent/etcd_store.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "agent/dispatcher.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/ip.h"
#include "etcdserverpb/rpc.grpc.pb.h"

namespace cninet::agent {
namespace {

using internal::Dispatcher;

absl::Status FromGrpc(const grpc::Status& status, std::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      StrCat("etcd ", what, ": ", status.error_message()));
}

// The range_end selecting every key with `prefix` ("\0" = no upper bound, etcd's convention).
std::string RangeEnd(std::string_view prefix) {
  std::string end = PrefixRangeEnd(prefix);
  return end.empty() ? std::string(1, '\0') : end;
}

// etcd rejects an empty key; "\0" is the smallest key and starts a range over everything.
std::string RangeStart(std::string_view prefix) {
  return prefix.empty() ? std::string(1, '\0') : std::string(prefix);
}

KeyValue FromPb(const mvccpb::KeyValue& kv) {
  KeyValue out;
  out.key = kv.key();
  out.value = kv.value();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

// The contents of `path` (a PEM file named by an option called `what`).
absl::StatusOr<std::string> ReadPem(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::FailedPreconditionError(StrCat("etcd ", what, " ", path, ": cannot read it"));
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return absl::FailedPreconditionError(StrCat("etcd ", what, " ", path, ": not a PEM file"));
  }
  return pem;
}

// gRPC SSL credentials from the TLS options; the key file must pass CheckPrivateKeyFile.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsCredentials(
    const EtcdTlsOptions& tls) {
  grpc::SslCredentialsOptions ssl;
  if (!tls.ca_file.empty()) {
    CNINET_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem(tls.ca_file, "CA file"));
  }
  if (!tls.key_file.empty()) {
    CNINET_RETURN_IF_ERROR(CheckPrivateKeyFile(tls.key_file));
    CNINET_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadPem(tls.key_file, "client key"));
    CNINET_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadPem(tls.cert_file, "client certificate"));
  }
  return grpc::SslCredentials(ssl);
}

// Why a TLS connection failed, in words, from gRPC's message. A refused client certificate shows
// as the TLS alert with TLS 1.2, and with TLS 1.3 (the client's handshake is over before etcd
// checks the certificate) as etcd closing the connection at once.
std::string TlsHint(absl::string_view grpc_message, const EtcdTlsOptions& tls) {
  const std::string m = absl::AsciiStrToLower(grpc_message);
  auto has = [&](std::string_view s) { return m.find(s) != std::string::npos; };
  if (has("certificate verify failed")) {
    return StrCat(
        " (etcd's server certificate is not signed by the CA file ",
        tls.ca_file.empty() ? std::string("(none given: the system's roots)") : tls.ca_file,
        ", or is not valid now)");
  }
  if (has("peer name") || has("name check")) {
    return StrCat(" (etcd's certificate does not name ",
                  tls.server_name.empty() ? std::string("the endpoint's host") : tls.server_name,
                  ")");
  }
  if (has("wrong version number") || has("http/1.x") || has("http2 frame")) {
    return " (the endpoint speaks plain text: write http:// if that is intended)";
  }
  if (has("alert certificate required") || has("alert handshake failure") ||
      has("alert bad certificate") || has("alert unknown ca") || has("connection reset") ||
      has("endpoint read failed") || has("socket closed") || has("tsi_data_corrupted")) {
    if (tls.cert_file.empty()) {
      return " (etcd requires a client certificate: give the client certificate and key)";
    }
    return StrCat(" (etcd refused the client certificate ", tls.cert_file,
                  ": is it signed by a CA in etcd's --trusted-ca-file?)");
  }
  return {};
}

// A gRPC target for the endpoints: "host:port" for one, "ipv4:a:p,b:p" (pick_first fails over
// in order) for several numeric addresses.
absl::StatusOr<std::string> Target(const std::vector<std::string>& endpoints) {
  std::vector<std::string> stripped;
  for (std::string endpoint : endpoints) {
    if (endpoint.rfind("https://", 0) == 0) endpoint = endpoint.substr(8);
    if (endpoint.rfind("http://", 0) == 0) endpoint = endpoint.substr(7);
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    stripped.push_back(endpoint);
  }
  if (stripped.size() == 1) return stripped[0];
  for (const std::string& endpoint : stripped) {
    size_t colon = endpoint.rfind(':');
    if (colon == std::string::npos || !cni::IPAddress::Parse(endpoint.substr(0, colon)).ok() ||
        !cni::IPAddress::Parse(endpoint.substr(0, colon))->is_v4()) {
      return absl::InvalidArgumentError(
          StrCat("several etcd endpoints must all be IPv4 address:port; got ", endpoint));
    }
  }
  return StrCat("ipv4:", StrJoin(stripped, ","));
}

class WatchState;

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(EtcdStoreOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)),
        channel_(std::move(channel)),
        kv_(etcdserverpb::KV::NewStub(channel_)),
        watch_(etcdserverpb::Watch::NewStub(channel_)),
        lease_(etcdserverpb::Lease::NewStub(channel_)) {}

  const EtcdStoreOptions& options() const { return options_; }
  etcdserverpb::Watch::Stub* watch_stub() { return watch_.get(); }

  void Prepare(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
    ctx->set_wait_for_ready(true);
  }

  // A failed call's status; a deadline that passed while disconnected is Unavailable.
  absl::Status CallStatus(const grpc::Status& status, std::string_view what) {
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
        channel_->GetState(false) != GRPC_CHANNEL_READY) {
      return absl::UnavailableError(
          StrCat("etcd ", what, ": not connected (", status.error_message(), ")"));
    }
    return FromGrpc(status, what);
  }

  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& req) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    etcdserverpb::RangeResponse resp;
    grpc::Status status = kv_->Range(&ctx, req, &resp);
    if (!status.ok()) return CallStatus(status, "range");
    return resp;
  }

  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& req) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    etcdserverpb::TxnResponse resp;
    grpc::Status status = kv_->Txn(&ctx, req, &resp);
    if (!status.ok()) return CallStatus(status, "txn");
    return resp;
  }

  absl::StatusOr<KeyValue> Get(std::string_view key) {
    etcdserverpb::RangeRequest req;
    req.set_key(std::string(key));
    CNINET_ASSIGN_OR_RETURN(auto resp, Range(req));
    if (resp.kvs_size() == 0) return absl::NotFoundError(StrCat("key ", key, " not found"));
    return FromPb(resp.kvs(0));
  }

  // Lists in pages, every page read at the first page's revision (a consistent snapshot).
  absl::StatusOr<ListResult> List(std::string_view prefix) {
    etcdserverpb::RangeRequest req;
    req.set_key(RangeStart(prefix));
    req.set_range_end(RangeEnd(prefix));
    req.set_limit(options_.list_page_size);
    ListResult result;
    while (true) {
      absl::StatusOr<etcdserverpb::RangeResponse> resp = Range(req);
      if (!resp.ok()) {
        if (absl::IsOutOfRange(resp.status()) && result.revision != 0) {
          // Compacted between two pages: start over at the newest revision.
          result = ListResult();
          req.set_key(RangeStart(prefix));
          req.set_revision(0);
          continue;
        }
        return resp.status();
      }
      if (result.revision == 0) {
        result.revision = resp->header().revision();
        req.set_revision(result.revision);
      }
      for (const auto& kv : resp->kvs()) result.kvs.push_back(FromPb(kv));
      if (!resp->more() || resp->kvs_size() == 0) return result;
      req.set_key(resp->kvs(resp->kvs_size() - 1).key() + std::string(1, '\0'));
    }
  }

  // The store's revision (from CountReadable()'s header).
  absl::StatusOr<int64_t> Revision() {
    CNINET_ASSIGN_OR_RETURN(auto resp, Range(CountReadable()));
    return resp.header().revision();
  }

  // One call that fails at once when the channel cannot connect: gRPC's reason (the TLS alert,
  // the refused connection) is in the failure's message.
  absl::Status Probe() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    etcdserverpb::RangeResponse resp;
    return FromGrpc(kv_->Range(&ctx, CountReadable(), &resp), "range");
  }

  // Counts the keys of options_.readable_prefix (a range every client may read: with etcd
  // authentication on, a node's role reads only /cninet/); its header has the store revision.
  etcdserverpb::RangeRequest CountReadable() const {
    etcdserverpb::RangeRequest req;
    req.set_key(RangeStart(options_.readable_prefix));
    req.set_range_end(RangeEnd(options_.readable_prefix));
    req.set_count_only(true);
    return req;
  }

  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value, LeaseId lease) {
    etcdserverpb::PutRequest req;
    req.set_key(std::string(key));
    req.set_value(std::string(value));
    req.set_lease(lease);
    grpc::ClientContext ctx;
    Prepare(&ctx);
    etcdserverpb::PutResponse resp;
    grpc::Status status = kv_->Put(&ctx, req, &resp);
    if (!status.ok()) return CallStatus(status, "put");
    return resp.header().revision();
  }

  // A transaction guarded by one comparison on `key`; `failure` is the status when it fails.
  absl::StatusOr<int64_t> Guarded(std::string_view key, etcdserverpb::Compare::CompareTarget target,
                                  int64_t expected, etcdserverpb::RequestOp op,
                                  absl::Status failure) {
    etcdserverpb::TxnRequest req;
    etcdserverpb::Compare* cmp = req.add_compare();
    cmp->set_key(std::string(key));
    cmp->set_result(etcdserverpb::Compare::EQUAL);
    cmp->set_target(target);
    if (target == etcdserverpb::Compare::CREATE) {
      cmp->set_create_revision(expected);
    } else {
      cmp->set_mod_revision(expected);
    }
    *req.add_success() = std::move(op);
    CNINET_ASSIGN_OR_RETURN(auto resp, Txn(req));
    if (!resp.succeeded()) return failure;
    return resp.header().revision();
  }

  static etcdserverpb::RequestOp PutOp(std::string_view key, std::string_view value,
                                       LeaseId lease) {
    etcdserverpb::RequestOp op;
    auto* put = op.mutable_request_put();
    put->set_key(std::string(key));
    put->set_value(std::string(value));
    put->set_lease(lease);
    return op;
  }

  static etcdserverpb::RequestOp DeleteOp(std::string_view key) {
    etcdserverpb::RequestOp op;
    op.mutable_request_delete_range()->set_key(std::string(key));
    return op;
  }

  absl::StatusOr<bool> Delete(std::string_view key) {
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(std::string(key));
    grpc::ClientContext ctx;
    Prepare(&ctx);
    etcdserverpb::DeleteRangeResponse resp;
    grpc::Status status = kv_->DeleteRange(&ctx, req, &resp);
    if (!status.ok()) return CallStatus(status, "delete");
    return resp.deleted() > 0;
  }

  absl::StatusOr<int64_t> Apply(std::span<const Op> ops) {
    if (ops.empty()) return Revision();
    std::set<std::string_view> keys;
    etcdserverpb::TxnRequest req;
    for (const Op& op : ops) {
      if (op.key.empty()) return absl::InvalidArgumentError("empty key");
      if (!keys.insert(op.key).second) {
        return absl::InvalidArgumentError(StrCat("key ", op.key, " appears twice in one batch"));
      }
      *req.add_success() =
          op.kind == Op::Kind::kPut ? PutOp(op.key, op.value, op.lease) : DeleteOp(op.key);
    }
    CNINET_ASSIGN_OR_RETURN(auto resp, Txn(req));
    return resp.header().revision();
  }

  absl::StatusOr<LeaseId> GrantLease(std::chrono::seconds ttl) {
    if (ttl.count() < 1) return absl::InvalidArgumentError("lease TTL must be at least 1 second");
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(ttl.count());
    grpc::ClientContext ctx;
    Prepare(&ctx);
    etcdserverpb::LeaseGrantResponse resp;
    grpc::Status status = lease_->LeaseGrant(&ctx, req, &resp);
    if (!status.ok()) return CallStatus(status, "lease grant");
    if (!resp.error().empty())
      return absl::InternalError(StrCat("etcd lease grant: ", resp.error()));
    return resp.id();
  }

  absl::StatusOr<std::chrono::seconds> KeepAlive(LeaseId lease) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    auto stream = lease_->LeaseKeepAlive(&ctx);
    etcdserverpb::LeaseKeepAliveRequest req;
    req.set_id(lease);
    etcdserverpb::LeaseKeepAliveResponse resp;
    bool got = stream->Write(req) && stream->WritesDone() && stream->Read(&resp);
    grpc::Status status = stream->Finish();
    if (!got) {
      if (status.ok()) return absl::UnavailableError("etcd lease keep-alive: no response");
      return CallStatus(status, "lease keep-alive");
    }
    if (resp.ttl() <= 0)
      return absl::NotFoundError(StrCat("lease ", lease, " not found or expired"));
    return std::chrono::seconds(resp.ttl());
  }

  absl::Status RevokeLease(LeaseId lease) {
    etcdserverpb::LeaseRevokeRequest req;
    req.set_id(lease);
    grpc::ClientContext ctx;
    Prepare(&ctx);
    etcdserverpb::LeaseRevokeResponse resp;
    grpc::Status status = lease_->LeaseRevoke(&ctx, req, &resp);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) return absl::OkStatus();
    if (!status.ok()) return CallStatus(status, "lease revoke");
    return absl::OkStatus();
  }

  absl::Status Compact(int64_t revision) {
    etcdserverpb::CompactionRequest req;
    req.set_revision(revision);
    req.set_physical(true);
    grpc::ClientContext ctx;
    Prepare(&ctx);
    etcdserverpb::CompactionResponse resp;
    grpc::Status status = kv_->Compact(&ctx, req, &resp);
    if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE &&
        status.error_message().find("compacted") != std::string::npos) {
      return absl::OkStatus();  // Already compacted at least that far.
    }
    if (!status.ok()) return CallStatus(status, "compact");
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix, int64_t from,
                                                     WatchCallback callback);
  void Forget(WatchState* watch);
  void StopAllWatches();

 private:
  const EtcdStoreOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
  std::mutex mu_;
  std::set<std::shared_ptr<WatchState>> watches_;
};

// One watch: a thread running Watch streams until stopped, feeding a Dispatcher.
class WatchState {
 public:
  WatchState(std::shared_ptr<Core> core, std::string prefix, int64_t from,
             std::shared_ptr<Dispatcher> dispatcher)
      : core_(std::move(core)),
        prefix_(std::move(prefix)),
        from_(from),
        dispatcher_(std::move(dispatcher)) {}

  void Start() { thread_ = std::thread(&WatchState::Run, this); }

  // Stops the stream thread and the dispatcher; idempotent.
  void Stop() {
    std::thread thread;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
      thread = std::move(thread_);
    }
    cv_.notify_all();
    if (thread.joinable()) thread.join();
    dispatcher_->Stop();
  }

  absl::Status health() const {
    std::lock_guard<std::mutex> lock(mu_);
    return health_;
  }

 private:
  void SetHealth(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    health_ = std::move(status);
  }

  // Sleeps for the current backoff (with jitter) unless stopped; doubles it.
  bool Backoff() {
    const EtcdStoreOptions& options = core_->options();
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    auto wait = std::chrono::milliseconds(static_cast<int64_t>(backoff_.count() * jitter(rng_)));
    backoff_ = std::min(backoff_ * 2, options.max_backoff);
    std::unique_lock<std::mutex> lock(mu_);
    return !cv_.wait_for(lock, wait, [&] { return stop_; });
  }

  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

  void Run() {
    int64_t next = from_;
    bool need_list = from_ == 0;
    backoff_ = core_->options().initial_backoff;
    while (!stopped()) {
      if (need_list) {
        absl::StatusOr<ListResult> list = core_->List(prefix_);
        if (!list.ok()) {
          SetHealth(list.status());
          if (!Backoff()) break;
          continue;
        }
        WatchUpdate reset;
        reset.reset = true;
        reset.revision = list->revision;
        for (KeyValue& kv : list->kvs)
          reset.events.push_back(Event{EventType::kPut, std::move(kv)});
        dispatcher_->Push(std::move(reset));
        next = list->revision + 1;
        need_list = false;
      }
      bool compacted = false;
      grpc::Status status = Stream(next, &compacted);
      if (stopped()) break;
      if (compacted) {
        CNINET_LOG(kInfo, "etcd watch ", prefix_, ": revision ", next, " was compacted; relisting");
        need_list = true;
        continue;
      }
      SetHealth(FromGrpc(
          status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch stream ended") : status,
          "watch"));
      CNINET_LOG(kInfo, "etcd watch ", prefix_, ": stream ended (", status.error_message(),
                 "); resuming from revision ", next);
      if (!Backoff()) break;
    }
  }

  // Runs one Watch stream from revision `next` (updated as events arrive) until it fails, the
  // watch is stopped, or etcd reports the revision compacted.
  grpc::Status Stream(int64_t& next, bool* compacted) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return grpc::Status::CANCELLED;
      ctx_ = &ctx;
    }
    auto stream = core_->watch_stub()->Watch(&ctx);
    etcdserverpb::WatchRequest req;
    auto* create = req.mutable_create_request();
    create->set_key(RangeStart(prefix_));
    create->set_range_end(RangeEnd(prefix_));
    create->set_start_revision(next);
    create->set_progress_notify(true);
    etcdserverpb::WatchResponse resp;
    std::string cancel_reason;
    bool left_open = false;  // We stop reading a stream that is still up: cancel it ourselves.
    if (stream->Write(req)) {
      while (stream->Read(&resp)) {
        if (resp.compact_revision() > 0) {
          *compacted = true;
          left_open = true;
          break;
        }
        if (resp.canceled()) {
          cancel_reason = resp.cancel_reason().empty() ? "canceled by etcd" : resp.cancel_reason();
          left_open = true;
          break;
        }
        if (resp.created()) {
          SetHealth(absl::OkStatus());
          backoff_ = core_->options().initial_backoff;
        }
        if (resp.events_size() > 0) {
          WatchUpdate update;
          for (const auto& event : resp.events()) {
            Event out;
            out.type = event.type() == mvccpb::Event::DELETE ? EventType::kDelete : EventType::kPut;
            out.kv = FromPb(event.kv());
            update.revision = std::max(update.revision, out.kv.mod_revision);
            update.events.push_back(std::move(out));
          }
          next = update.revision + 1;
          dispatcher_->Push(std::move(update));
        } else if (!resp.created()) {
          // Progress notification: nothing under the prefix up to header.revision.
          next = std::max(next, resp.header().revision() + 1);
        }
      }
    }
    if (left_open) ctx.TryCancel();
    grpc::Status status = stream->Finish();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ctx_ = nullptr;
    }
    if (!cancel_reason.empty()) return grpc::Status(grpc::StatusCode::ABORTED, cancel_reason);
    return status;
  }

  std::shared_ptr<Core> core_;
  const std::string prefix_;
  const int64_t from_;
  std::shared_ptr<Dispatcher> dispatcher_;
  std::chrono::milliseconds backoff_{0};
  std::mt19937 rng_{std::random_device{}()};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  grpc::ClientContext* ctx_ = nullptr;
  absl::Status health_ = absl::UnavailableError("etcd watch: connecting");
  std::thread thread_;
};

class EtcdWatchHandle : public WatchHandle {
 public:
  EtcdWatchHandle(std::weak_ptr<Core> core, std::shared_ptr<WatchState> state)
      : core_(std::move(core)), state_(std::move(state)) {}
  ~EtcdWatchHandle() override {
    state_->Stop();
    if (auto core = core_.lock()) core->Forget(state_.get());
  }
  absl::Status health() const override { return state_->health(); }

 private:
  std::weak_ptr<Core> core_;
  std::shared_ptr<WatchState> state_;
};

absl::StatusOr<std::unique_ptr<WatchHandle>> Core::Watch(std::string_view prefix, int64_t from,
                                                         WatchCallback callback) {
  if (!callback) return absl::InvalidArgumentError("watch without a callback");
  if (from < 0) return absl::InvalidArgumentError("negative watch revision");
  auto dispatcher = std::make_shared<Dispatcher>(std::move(callback));
  if (from == 0) {
    // List now, so the reset covers every write completed before Watch returns; when etcd is
    // unreachable the watch thread keeps trying instead.
    absl::StatusOr<ListResult> list = List(prefix);
    if (list.ok()) {
      WatchUpdate reset;
      reset.reset = true;
      reset.revision = list->revision;
      for (KeyValue& kv : list->kvs) reset.events.push_back(Event{EventType::kPut, std::move(kv)});
      dispatcher->Push(std::move(reset));
      from = list->revision + 1;
    }
  }
  auto state = std::make_shared<WatchState>(shared_from_this(), std::string(prefix), from,
                                            std::move(dispatcher));
  {
    std::lock_guard<std::mutex> lock(mu_);
    watches_.insert(state);
  }
  state->Start();
  return std::unique_ptr<WatchHandle>(new EtcdWatchHandle(weak_from_this(), state));
}

void Core::Forget(WatchState* watch) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = watches_.begin(); it != watches_.end(); ++it) {
    if (it->get() == watch) {
      watches_.erase(it);
      return;
    }
  }
}

void Core::StopAllWatches() {
  std::set<std::shared_ptr<WatchState>> watches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    watches.swap(watches_);
  }
  for (const auto& watch : watches) watch->Stop();
}

class EtcdStore : public Store {
 public:
  explicit EtcdStore(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  // Watches still open are stopped; they hold the channel until their handles go.
  ~EtcdStore() override { core_->StopAllWatches(); }

  std::string_view kind() const override { return "etcd"; }
  absl::StatusOr<KeyValue> Get(std::string_view key) override { return core_->Get(key); }
  absl::StatusOr<ListResult> List(std::string_view prefix) override { return core_->List(prefix); }
  absl::StatusOr<int64_t> Revision() override { return core_->Revision(); }
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              LeaseId lease) override {
    if (key.empty()) return absl::InvalidArgumentError("empty key");
    return core_->Put(key, value, lease);
  }
  absl::StatusOr<int64_t> Create(std::string_view key, std::string_view value,
                                 LeaseId lease) override {
    if (key.empty()) return absl::InvalidArgumentError("empty key");
    return core_->Guarded(key, etcdserverpb::Compare::CREATE, 0, Core::PutOp(key, value, lease),
                          absl::AlreadyExistsError(StrCat("key ", key, " already exists")));
  }
  absl::StatusOr<int64_t> Update(std::string_view key, std::string_view value, int64_t expected,
                                 LeaseId lease) override {
    if (key.empty()) return absl::InvalidArgumentError("empty key");
    return core_->Guarded(
        key, etcdserverpb::Compare::MOD, expected, Core::PutOp(key, value, lease),
        absl::AbortedError(StrCat("key ", key, " is not at mod_revision ", expected)));
  }
  absl::StatusOr<bool> Delete(std::string_view key) override {
    if (key.empty()) return absl::InvalidArgumentError("empty key");
    return core_->Delete(key);
  }
  absl::Status DeleteIf(std::string_view key, int64_t expected) override {
    if (key.empty()) return absl::InvalidArgumentError("empty key");
    return core_
        ->Guarded(key, etcdserverpb::Compare::MOD, expected, Core::DeleteOp(key),
                  absl::AbortedError(StrCat("key ", key, " is not at mod_revision ", expected)))
        .status();
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

bool EtcdStoreAvailable() { return true; }

absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(const EtcdStoreOptions& options) {
  CNINET_RETURN_IF_ERROR(options.Validate());
  CNINET_ASSIGN_OR_RETURN(std::string target, Target(options.endpoints));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(options.initial_backoff.count()));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(options.initial_backoff.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(options.max_backoff.count()));
  // Notice a dead peer on an idle watch stream (etcd accepts pings every 5 s or slower).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  // Each store is its own client with its own connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  const bool tls = options.UsesTls();
  if (tls) {
    CNINET_ASSIGN_OR_RETURN(credentials, TlsCredentials(options.tls));
    if (!options.tls.server_name.empty()) args.SetSslTargetNameOverride(options.tls.server_name);
  }
  auto channel = grpc::CreateCustomChannel(target, credentials, args);
  auto core = std::make_shared<Core>(options, channel);
  if (options.connect_timeout.count() > 0) {
    const std::string where =
        StrCat("etcd at ", StrJoin(options.endpoints, ","), tls ? " (TLS)" : " (plain text)");
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + options.connect_timeout)) {
      // One call for gRPC's reason (a TLS alert, a refused connection) in the message.
      absl::Status why = core->Probe();
      std::string hint = tls ? TlsHint(why.message(), options.tls) : std::string();
      return absl::UnavailableError(StrCat(where, ": not reachable within ",
                                           options.connect_timeout.count(), " ms", hint,
                                           why.ok() ? "" : ": ", why.message()));
    }
    if (absl::Status st = core->Revision().status(); !st.ok()) {
      std::string hint = tls ? TlsHint(st.message(), options.tls) : std::string();
      return absl::Status(st.code(), StrCat(where, hint, ": ", st.message()));
    }
  }
  return std::unique_ptr<Store>(new EtcdStore(std::move(core)));
}

}  // namespace cninet::agent
