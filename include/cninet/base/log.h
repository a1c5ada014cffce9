/// @file
/// A small logging facade. The host application may install its own LogSink; the default sink
/// writes to stderr (never stdout: a CNI plugin's stdout carries only its result).
#ifndef CNINET_BASE_LOG_H_
#define CNINET_BASE_LOG_H_

#include <string_view>

#include "cninet/base/strings.h"

namespace cninet {

/// Severity of a log message, lowest first.
enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

/// Receives every message at or above the current level. Implementations must be thread-safe.
class LogSink {
 public:
  virtual ~LogSink() = default;
  /// Called once per message; `file`/`line` locate the call site.
  virtual void Send(LogLevel level, std::string_view file, int line, std::string_view message) = 0;
};

/// Installs `sink` (not owned; must outlive its use). nullptr restores the stderr sink.
void SetLogSink(LogSink* sink);
/// Messages below `level` are dropped. Default: kWarning, or
/// CNINET_LOG_LEVEL=debug|info|warning|error.
void SetLogLevel(LogLevel level);
/// The current threshold.
LogLevel GetLogLevel();
/// Sends one message to the current sink if `level` passes the threshold.
void LogMessage(LogLevel level, std::string_view file, int line, std::string_view message);

}  // namespace cninet

/// CNINET_LOG(kInfo, "attached ", ifname, " ifindex ", idx); arguments are absl::StrCat'ed, and
/// only evaluated when the level is enabled.
#define CNINET_LOG(level, ...)                                            \
  do {                                                                    \
    if (::cninet::LogLevel::level >= ::cninet::GetLogLevel())             \
      ::cninet::LogMessage(::cninet::LogLevel::level, __FILE__, __LINE__, \
                           ::cninet::StrCat(__VA_ARGS__));                \
  } while (false)

#endif  // CNINET_BASE_LOG_H_
