#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "meshlm/data/staged_directory.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_support::ScratchDir;

std::string host() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// A pid that ran a process which has ended (reaped), so nothing runs under it now.
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

void make_leftover(const fs::path& dir, const std::string& marker_content) {
  fs::create_directories(dir);
  std::ofstream(dir / "train.bin.tmp.1.2") << "partial";
  if (!marker_content.empty()) std::ofstream(dir / kStagingMarker) << marker_content;
}

TEST(StagedDirectory, RemovesOnlyLeftoversOfDeadProcessesOnThisHost) {
  ScratchDir dir;
  const fs::path out = dir.path() / "data";
  const fs::path dead = dir.path() / ("data.tmp." + std::to_string(dead_pid()));
  const fs::path alive = dir.path() / ("data.tmp." + std::to_string(::getppid()));
  const fs::path other_host = dir.path() / ("data.tmp." + std::to_string(dead_pid()) + "1");
  const fs::path unmarked = dir.path() / "data.tmp.999999999";
  const fs::path not_a_pid = dir.path() / "data.tmp.12x";
  const fs::path other_out = dir.path() / ("data2.tmp." + std::to_string(dead_pid()));
  make_leftover(dead, host() + "\n");
  make_leftover(alive, host() + "\n");
  make_leftover(other_host, "another-host-" + host() + "\n");
  make_leftover(unmarked, "");
  make_leftover(not_a_pid, host() + "\n");
  make_leftover(other_out, host() + "\n");

  StagedDirectory staged(out);  // stages into data.tmp.<this pid> after the clean-up
  EXPECT_FALSE(fs::exists(dead));
  for (const fs::path& kept : {alive, other_host, unmarked, not_a_pid, other_out}) EXPECT_TRUE(fs::exists(kept)) << kept;
  EXPECT_TRUE(fs::exists(staged.path() / kStagingMarker));
  std::ofstream(staged.path() / "meta.json") << "{}";
  staged.commit();
  EXPECT_TRUE(fs::exists(out / "meta.json"));
  EXPECT_FALSE(fs::exists(out / kStagingMarker)) << "the marker must not reach the output";
}

TEST(StagedDirectory, ReplacesALeftoverUnderItsOwnPid) {
  ScratchDir dir;
  const fs::path own = dir.path() / ("data.tmp." + std::to_string(::getpid()));
  make_leftover(own, host() + "\n");
  StagedDirectory staged(dir.path() / "data");
  EXPECT_EQ(staged.path(), own);
  EXPECT_FALSE(fs::exists(own / "train.bin.tmp.1.2"));
}

}  // namespace
}  // namespace meshlm
