#pragma once
// RUN_DIR/metrics.jsonl: one JSON object per line, appended and flushed as training goes,
// so scripts and plotting tools can follow a run (also a resumed one). A line that cannot be
// written (a full disk, an I/O error) ends the run with a UserError: metrics are never lost
// silently.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "meshlm/train/trainer.hpp"

namespace meshlm {

inline constexpr const char* kMetricsFile = "metrics.jsonl";

class MetricsLog {
 public:
  MetricsLog() = default;  // logs nothing
  explicit MetricsLog(const std::filesystem::path& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void step(const StepStats& s);
  void eval(const EvalStats& e, bool best);

 private:
  void append(const std::string& line);  // writes and flushes one line; UserError on failure
  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
};

// A resumed run continues after `step`: the lines of later steps (written by the run before it
// was killed, after its last checkpoint) are dropped, and so is any line that is not a
// complete JSON object with a "step" (the tail of an interrupted write), so that each step
// appears once. The file is replaced atomically; nothing happens when it is absent or has
// nothing to drop.
void truncate_metrics_after(const std::filesystem::path& path, int64_t step);

}  // namespace meshlm
