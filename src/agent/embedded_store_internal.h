// Test-only fault injection for the embedded store's write path (not part of the public API).
#ifndef CNINET_SRC_AGENT_EMBEDDED_STORE_INTERNAL_H_
#define CNINET_SRC_AGENT_EMBEDDED_STORE_INTERNAL_H_

#include <string_view>

namespace cninet::agent::internal {

// Called with the name of each crash point the write path passes: "append-half" (half of a log
// record written), "append-before-sync", "append-synced", "snapshot-written" (temp file synced,
// not renamed), "snapshot-renamed" (log not rotated yet), "wal-written" (new log synced, not
// renamed), "wal-rotated". A test hook may _exit()
// there to simulate a crash. With a hook installed, log records are written in two halves.
using CrashHook = void (*)(std::string_view point);

// Installs `hook` for the whole process (nullptr removes it).
void SetEmbeddedStoreCrashHook(CrashHook hook);

}  // namespace cninet::agent::internal

#endif  // CNINET_SRC_AGENT_EMBEDDED_STORE_INTERNAL_H_
