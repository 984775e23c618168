#pragma once
// meshlm's exit codes, shared by the command line, the launcher and the supervisor (docs/CLI.md
// lists them for users; scripts and schedulers may branch on them).
namespace meshlm {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUserError = 2;      // one "error: ..." line: bad config, missing or corrupt file, ...
inline constexpr int kExitInternalError = 3;  // a bug
inline constexpr int kExitHung = 4;           // stopped because a rank made no progress (watchdog, collective timeout)
// 128 + N: stopped by signal N after saving a checkpoint (130 SIGINT, 143 SIGTERM; SIGHUP as SIGTERM).

}  // namespace meshlm
