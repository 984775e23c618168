#pragma once
// Everything a training run reads before its first step: the run directory, the config (a TOML
// file, a resumed checkpoint's config, a pretrained model's shape, command-line overrides), the
// checkpoint to resume from, the initial weights and the data.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  bool overwrite = false;  // --overwrite: a new run replaces the earlier run in --out
  bool allow_tokenizer_mismatch = false;  // train on data tokenized differently from the model's
  Overrides overrides;  // config keys from the command line, in order
  int64_t processes = 1;  // processes launched: without parallel.dp, dp = processes / (tp · pp)
};

struct RunSetup {
  std::filesystem::path run_dir;
  std::optional<CheckpointInfo> resume_from;
  RunConfig cfg;
  std::optional<LoadedModel> init;
  std::string init_from;  // where `init` came from (--init-from)
  std::unique_ptr<TokenSource> data;
  std::string data_fingerprint;              // data/data_fingerprint.hpp, stored in checkpoints
  std::vector<std::string> previous_run;     // --overwrite: what of an earlier run --out holds
  std::optional<int64_t> previous_horizon;   // resumed with --train.decay_steps changing the horizon: the old one
  std::vector<std::string> resume_notes;     // checkpoints skipped or resumed unverified, leftovers cleaned up
};

// The run directory a request names: --resume's when it gives one, else --out (empty: none).
std::filesystem::path requested_run_dir(const RunRequest& request);

// Reads and checks everything; UserError naming the first problem (a resumed run must keep
// its model, optimizer, batch shape, seed and data; --init-from fixes the model's shape; --out
// must not hold another run unless --overwrite). `chosen`: the checkpoint to resume, already
// picked (train/resume_point.hpp); without it a resumed run picks it here.
RunSetup read_run_setup(const RunRequest& request, std::optional<ResumePoint> chosen = std::nullopt);

// model.vocab_size kVocabFromData becomes the data's tokenizer's vocabulary; a smaller one than
// the data's is a UserError naming both. A larger one stays (the header says so).
void settle_vocab_size(GPTConfig& model, int64_t data_vocab);

// A resumed run decays over its own horizon: `now.decay_steps` kDecayStepsUnset (the launch did
// not set train.decay_steps) takes the horizon of `saved`, so a longer train.steps continues at
// the floor. Set explicitly, it replaces it; returns the old horizon when the horizon changed.
inline constexpr int64_t kDecayStepsUnset = -1;
std::optional<int64_t> settle_decay_horizon(TrainConfig& now, const TrainConfig& saved);

}  // namespace meshlm
