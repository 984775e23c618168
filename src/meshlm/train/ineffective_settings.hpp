#pragma once
// Settings that a run accepts but that change nothing in it (ZeRO with one data-parallel rank,
// a pipeline schedule without stages, another optimizer's hyper-parameters, ...): the start-up
// header prints one "warning: ..." line for each, so that a user does not believe them in effect.
// Only values that differ from the defaults are named.
#include <string>
#include <vector>

#include "meshlm/train/run_config.hpp"

namespace meshlm {

struct RunContext {
  bool writes_files = false;   // --out given
  bool text_file_data = false; // --data is a plain text file (train.val_fraction applies)
  bool resuming = false;       // train.decay_steps then holds the run's own horizon
};

std::vector<std::string> ineffective_settings(const RunConfig& cfg, const RunContext& ctx);

}  // namespace meshlm
