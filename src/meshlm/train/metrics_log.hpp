#pragma once
// RUN_DIR/metrics.jsonl: one JSON object per line, appended and flushed as training goes,
// so scripts and plotting tools can follow a run (also a resumed one).
#include <cstdio>
#include <filesystem>

#include "meshlm/train/trainer.hpp"

namespace meshlm {

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
  std::FILE* f_ = nullptr;
};

}  // namespace meshlm
