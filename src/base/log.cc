#include "cninet/base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "absl/strings/ascii.h"
#include "cninet/base/strings.h"

namespace cninet {
namespace {

class StderrSink final : public LogSink {
 public:
  void Send(LogLevel level, std::string_view file, int line, std::string_view message) override {
    static constexpr std::string_view kNames[] = {"D", "I", "W", "E"};
    size_t slash = file.rfind('/');
    if (slash != std::string_view::npos) file.remove_prefix(slash + 1);
    std::string text = cninet::StrCat(kNames[static_cast<int>(level)], " cninet[", getpid(), "] ",
                                      file, ":", line, "] ", message, "\n");
    std::lock_guard<std::mutex> lock(mu_);
    // One write(2) per line so concurrent processes do not interleave within a line.
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
  }

 private:
  std::mutex mu_;
};

StderrSink& DefaultSink() {
  static StderrSink* sink = new StderrSink();
  return *sink;
}

LogLevel LevelFromEnv() {
  const char* v = std::getenv("CNINET_LOG_LEVEL");
  if (v == nullptr) return LogLevel::kWarning;
  std::string s = absl::AsciiStrToLower(v);
  if (s == "debug") return LogLevel::kDebug;
  if (s == "info") return LogLevel::kInfo;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kWarning;
}

std::atomic<LogSink*> g_sink{nullptr};
std::atomic<int> g_level{-1};

}  // namespace

void SetLogSink(LogSink* sink) { g_sink.store(sink); }

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

LogLevel GetLogLevel() {
  int level = g_level.load(std::memory_order_relaxed);
  if (level < 0) {
    level = static_cast<int>(LevelFromEnv());
    g_level.store(level);
  }
  return static_cast<LogLevel>(level);
}

void LogMessage(LogLevel level, std::string_view file, int line, std::string_view message) {
  if (level < GetLogLevel()) return;
  LogSink* sink = g_sink.load();
  (sink != nullptr ? *sink : DefaultSink()).Send(level, file, line, message);
}

}  // namespace cninet
