#pragma once
// Checkpoints: RUN_DIR/checkpoints/step_NNNNNN/ holding
//   model.safetensors + config.json   the model (Hugging Face GPT-2 layout)
//   optimizer.safetensors             optimizer moments, one tensor per parameter and state
//   trainer_state.json                step, early-stopping state, lr, data and tokenizer reference,
//                                     and the whole run config
//   meshlm_tokenizer.json + files     so that eval/generate decode with the same tokenizer (and
//                                     Hugging Face's loaders find theirs: see tokenizer.hpp)
// A checkpoint is written into a temporary directory, every file fsync'ed, then renamed into
// place; the `latest` pointer (a one-line file) is updated last, so a crash at any moment
// leaves the previous checkpoint as `latest`. Old checkpoints beyond the most recent K are
// removed, except the one `best` points to.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "meshlm/data/tokenizer.hpp"
#include "meshlm/train/trainer.hpp"

namespace meshlm {

struct CheckpointInfo {
  std::filesystem::path dir;
  TrainerState state;
  RunConfig config;
  std::string data;       // what the run trained on
  std::string data_fingerprint;  // its identity (data/data_fingerprint.hpp); empty in older checkpoints
  std::string tokenizer;  // the tokenizer's kind
};

// Saves the trainer's current state; returns the checkpoint directory. Collective over the
// trainer's ranks (ZeRO optimizer shards are gathered); rank 0 alone writes.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, Trainer& trainer,
                                      const Tokenizer& tokenizer, const std::string& data_description, bool is_best,
                                      const std::string& data_fingerprint = "");

// A checkpoint directory itself, or a run directory (its `latest` checkpoint); UserError if none.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);
// The run's latest complete checkpoint, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// Reads trainer_state.json (and validates it).
CheckpointInfo read_checkpoint_info(const std::filesystem::path& checkpoint_dir);
// Loads parameters and optimizer state into the trainer (which must have the same shapes);
// each rank reads the files and keeps its ZeRO shard, so any data-parallel layout resumes.
void load_checkpoint_into(const CheckpointInfo& info, Trainer& trainer);

}  // namespace meshlm
