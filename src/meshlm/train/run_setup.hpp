#pragma once
// Everything a training run reads before its first step: the run directory, the config (a TOML
// file, a resumed checkpoint's config, a pretrained model's shape, command-line overrides), the
// checkpoint to resume from, the initial weights and the data.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "meshlm/data/token_source.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/run_config.hpp"

namespace meshlm {

// What `meshlm train` was asked for, before anything is read.
struct RunRequest {
  std::string config;     // TOML file or config name (empty: defaults, or the resumed checkpoint's config)
  std::string data;       // data directory or text file
  std::string out;        // run directory (empty: no checkpoints, no files)
  std::string init_from;  // pretrained weights: a model directory, checkpoint or run directory
  std::string resume;     // --resume RUN_DIR (empty with resume_flag: --out)
  bool resume_flag = false;
  Overrides overrides;  // config keys from the command line, in order
  int64_t processes = 1;  // processes launched: without parallel.dp, dp = processes / (tp · pp)
};

struct RunSetup {
  std::filesystem::path run_dir;
  std::optional<CheckpointInfo> resume_from;
  RunConfig cfg;
  std::optional<LoadedModel> init;
  std::unique_ptr<TokenSource> data;
};

// Reads and checks everything; UserError naming the first problem (a resumed run must keep
// its model, optimizer, batch shape and seed; --init-from fixes the model's shape).
RunSetup read_run_setup(const RunRequest& request);

}  // namespace meshlm
