#pragma once
// Data and configs shared by the training tests.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "meshlm/train/run_config.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm::testing_data {

namespace fs = std::filesystem;

// This process's scratch directory (the text, checkpoint runs), removed when the process exits.
inline fs::path temp_dir() {
  static const testing_support::ScratchDir dir("train_test");
  return dir.path();
}

// The King James Bible from the Debian package bible-kjv (installed by scripts/install-deps.sh).
inline fs::path kjv_text() {
  static fs::path path = [] {
    fs::path p = temp_dir() / "kjv.txt";
    std::string cmd = std::string("bash ") + MESHLM_SOURCE_DIR + "/scripts/kjv-text.sh " + p.string();
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return p;
  }();
  return path;
}

inline RunConfig tiny_config() {
  RunConfig cfg;
  apply_toml_file(cfg, fs::path(MESHLM_SOURCE_DIR) / "configs/tiny.toml");
  return cfg;
}

}  // namespace meshlm::testing_data
