#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "meshlm/core/error.hpp"
#include "meshlm/train/run_lock.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_support::ScratchDir;

std::string lock_text(const fs::path& dir) {
  std::ifstream f(dir / kRunLockFile);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// flock(2) locks belong to an open file, so a second lock in the same process conflicts just as
// another process's would.
TEST(RunLock, ASecondLockIsRefusedNamingTheHolder) {
  ScratchDir dir;
  RunLock first(dir.path());
  ASSERT_TRUE(first.held());
  EXPECT_EQ(lock_text(dir.path()).rfind("pid " + std::to_string(::getpid()) + " on host ", 0), 0u) << lock_text(dir.path());
  try {
    RunLock second(dir.path());
    FAIL() << "two locks on one run directory";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("is in use by another training (pid " + std::to_string(::getpid()) + " on host "),
              std::string::npos)
        << e.what();
  }
}

TEST(RunLock, ReleasedWhenDestroyedAndALeftoverFileIsNotTrusted) {
  ScratchDir dir;
  { RunLock first(dir.path()); }
  std::ofstream(dir.path() / kRunLockFile) << "\x01garbage from elsewhere, much longer than the lock line ever is\n";
  RunLock again(dir.path());  // nobody holds it: the content does not matter
  EXPECT_EQ(lock_text(dir.path()).rfind("pid " + std::to_string(::getpid()) + " on host ", 0), 0u) << lock_text(dir.path());
  EXPECT_EQ(lock_text(dir.path()).find("garbage"), std::string::npos);
}

TEST(RunLock, AGarbledHolderIsNotRepeated) {
  ScratchDir dir;
  RunLock first(dir.path());
  std::ofstream(dir.path() / kRunLockFile) << "\x1b[31mnot a holder line\n";
  try {
    RunLock second(dir.path());
    FAIL() << "two locks on one run directory";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("(holder unknown)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace meshlm
