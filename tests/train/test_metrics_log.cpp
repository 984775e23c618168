#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "meshlm/core/error.hpp"
#include "meshlm/train/metrics_log.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_support::ScratchDir;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A run killed after step 5 whose last checkpoint is step 3, with a torn last line: a resume
// from step 3 keeps steps 1-3 (and step 3's evaluation) only.
TEST(MetricsLog, ResumeDropsTheStepsAfterTheCheckpointAndATornLine) {
  ScratchDir dir;
  const fs::path file = dir.path() / kMetricsFile;
  const std::string kept =
      "{\"step\": 1, \"loss\": 5.5}\n"
      "{\"step\": 2, \"loss\": 5.4}\n"
      "{\"step\": 3, \"loss\": 5.3}\n"
      "{\"step\": 3, \"val_loss\": 5.35, \"best\": true}\n";
  std::ofstream(file, std::ios::binary) << kept << "{\"step\": 4, \"loss\": 5.2}\n{\"step\": 5, \"loss\": 5.1}\n{\"step\": 6, \"lo";
  truncate_metrics_after(file, 3);
  EXPECT_EQ(slurp(file), kept);
  truncate_metrics_after(file, 3);  // nothing more to drop
  EXPECT_EQ(slurp(file), kept);
  truncate_metrics_after(file, 2);
  EXPECT_EQ(slurp(file), "{\"step\": 1, \"loss\": 5.5}\n{\"step\": 2, \"loss\": 5.4}\n");
}

TEST(MetricsLog, ResumeWithoutAMetricsFileDoesNothing) {
  ScratchDir dir;
  truncate_metrics_after(dir.path() / kMetricsFile, 3);
  EXPECT_FALSE(fs::exists(dir.path() / kMetricsFile));
}

// A full disk is an error, never a silently lost line (/dev/full fails every write with ENOSPC).
TEST(MetricsLog, AFullDiskIsAUserError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  MetricsLog log("/dev/full");
  StepStats s{};
  s.step = 1;
  try {
    log.step(s);
    FAIL() << "a write to a full disk went unnoticed";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace meshlm
