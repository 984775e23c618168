#pragma once
// Data and configs shared by the training tests.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "meshlm/train/run_config.hpp"

namespace meshlm::testing_data {

namespace fs = std::filesystem;

inline fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("meshlm_train_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
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
