#pragma once
// Heartbeats: every rank of a supervised run publishes what it is doing (the progress beacon,
// core/progress_beacon.hpp) to a file of its own, DIR/rank_K, rewritten atomically about twice
// a second by a small thread. The supervisor's hang watchdog reads them: a rank whose
// `progress` stands still is stuck; one whose `beat` stands still too is stopped or frozen
// (its threads do not run). The supervisor names DIR in the environment variable
// MESHLM_HEARTBEAT_DIR; without it no heartbeat is written. Format: docs/formats.md.
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace meshlm {

inline constexpr const char* kHeartbeatDirEnv = "MESHLM_HEARTBEAT_DIR";

struct Heartbeat {
  int rank = 0;
  int64_t pid = 0;
  std::string host;
  uint64_t beat = 0;      // counts the writes: stands still when the process is stopped
  uint64_t progress = 0;  // the beacon's counter: stands still when the rank is stuck
  int64_t step = 0;
  std::string phase;
  std::string waiting;  // the blocking call it waits in; empty when computing
};

std::string heartbeat_json(const Heartbeat& h);
// nullopt when `text` is not a heartbeat (e.g. a file caught while being replaced).
std::optional<Heartbeat> parse_heartbeat(std::string_view text);
// The heartbeats in `dir` (files rank_K), by rank; unreadable files are skipped.
std::vector<Heartbeat> read_heartbeats(const std::filesystem::path& dir);

// Publishes this rank's heartbeat while it lives, when MESHLM_HEARTBEAT_DIR is set.
class HeartbeatWriter {
 public:
  explicit HeartbeatWriter(int rank);
  ~HeartbeatWriter();
  HeartbeatWriter(const HeartbeatWriter&) = delete;
  HeartbeatWriter& operator=(const HeartbeatWriter&) = delete;

 private:
  void loop();
  void write_once();

  int rank_;
  std::filesystem::path file_;
  std::string host_;
  uint64_t beat_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace meshlm
