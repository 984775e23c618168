#pragma once
// Checkpoints: RUN_DIR/checkpoints/step_NNNNNN/ holding
//   model.safetensors + config.json   the model (Hugging Face GPT-2 layout)
//   optimizer.safetensors             optimizer moments, one tensor per parameter and state
//   trainer_state.json                step, early-stopping state, lr, data and tokenizer reference,
//                                     and the whole run config
//   meshlm_tokenizer.json + files     so that eval/generate decode with the same tokenizer (and
//                                     Hugging Face's loaders find theirs: see tokenizer.hpp)
//   manifest.json                     every other file's size and XXH3-128 checksum
//                                     (checkpoint_manifest.hpp), written last
// A checkpoint is written into a temporary directory (.tmp.step_NNNNNN.PID), every file fsync'ed,
// then renamed into place; re-saving a step first renames the old copy aside
// (.tmp.step_NNNNNN.aside) and deletes it only after the new one is in. The `latest` pointer (a
// one-line file) is updated last, so a crash at any moment leaves a complete checkpoint as
// `latest` or as its aside copy. Old checkpoints beyond the most recent K are removed, except the
// one `best` points to.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "meshlm/data/tokenizer.hpp"
#include "meshlm/train/tokenizer_identity.hpp"
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

// Everything a checkpoint's files hold, copied into host memory at a step boundary, so that the
// trainer may train on while the files are written (train/checkpoint_writer.hpp).
struct CheckpointSnapshot {
  std::filesystem::path run_dir;
  std::string name;  // step_NNNNNN
  bool is_best = false;
  int64_t keep_checkpoints = 0;
  GPTConfig model;
  ParamLayout layout{{}};
  std::vector<float> params;  // the whole model (empty on ranks other than 0)
  std::vector<std::pair<std::string, std::vector<float>>> optimizer_state;
  int64_t optimizer_steps = 0;
  std::string trainer_state_json;  // trainer_state.json's text
  SpecialTokenIds special_ids;
  const Tokenizer* tokenizer = nullptr;  // immutable for the run; outlives every write
};

// Collective over the trainer's ranks (the tensor-parallel and ZeRO shards are gathered);
// only rank 0's snapshot holds the state (the others' have only the name). `reuse`, an earlier
// snapshot already written, lends its memory: a repeated snapshot then copies into pages
// already mapped (with a plain CPU run, a copy is then all a snapshot costs).
CheckpointSnapshot snapshot_checkpoint(const std::filesystem::path& run_dir, Trainer& trainer,
                                       const Tokenizer& tokenizer, const std::string& data_description, bool is_best,
                                       const std::string& data_fingerprint = "", CheckpointSnapshot reuse = {});

// Whether a snapshot of this trainer is a plain copy of host memory (one process per model
// replica, no ZeRO, on the CPU), into the memory of an earlier one when given; else it gathers.
// The same on every rank (it follows the config).
bool snapshot_is_a_copy(const Trainer& trainer);

struct WrittenCheckpoint {
  std::filesystem::path dir;
  int64_t bytes = 0;  // of every file in it
};
// Rank 0: writes a snapshot into a temporary directory (the manifest last), moves it into
// place, then updates `best`/`latest` and prunes. On an error the temporary directory is removed
// and the previous checkpoints stay as they were. Touches no trainer: may run on any thread.
WrittenCheckpoint write_checkpoint(const CheckpointSnapshot& snapshot);

// Saves the trainer's current state (snapshot, then write); returns the checkpoint directory.
// Collective over the trainer's ranks; rank 0 alone writes.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, Trainer& trainer,
                                      const Tokenizer& tokenizer, const std::string& data_description, bool is_best,
                                      const std::string& data_fingerprint = "");

// A checkpoint directory itself, or a run directory (its `latest` checkpoint); UserError if none.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);
// The run's latest complete checkpoint, if any (its aside copy when a re-save of it was
// interrupted); UserError when `latest` names a checkpoint that exists in neither form.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// A checkpoint of a run: step_NNNNNN/, or the aside copy of a step whose re-save was interrupted
// (only when step_NNNNNN/ itself is missing).
struct CheckpointEntry {
  int64_t step = 0;
  std::string name;  // step_NNNNNN
  std::filesystem::path dir;
  bool aside = false;
};
// Every checkpoint in RUN_DIR/checkpoints, newest first; empty when there is none.
std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& run_dir);

struct ResumePoint {
  std::optional<CheckpointInfo> info;
  std::vector<std::string> notes;  // one line per checkpoint skipped (which and why), or resumed unverified
};
// The newest checkpoint that verifies against its manifest (or has none: older checkpoints are
// taken unverified, with a note) and whose trainer state reads. UserError when there is no
// checkpoint, or when none qualifies (naming each and why).
ResumePoint choose_resume_checkpoint(const std::filesystem::path& run_dir);

// At the start of a run (which holds the run directory alone): removes the temporary
// directories of saves that a stopped run left, and moves an aside copy back under its step's
// name when that step is missing. Returns one line per directory handled. `resumed_dir`, when it
// is an aside copy that moves back, is updated to the new name.
std::vector<std::string> clean_checkpoint_leftovers(const std::filesystem::path& run_dir,
                                                    std::filesystem::path* resumed_dir = nullptr);

// Reads trainer_state.json (and validates it).
CheckpointInfo read_checkpoint_info(const std::filesystem::path& checkpoint_dir);
// Loads parameters and optimizer state into the trainer (which must have the same shapes);
// each rank reads the files and keeps its ZeRO shard, so any data-parallel layout resumes.
void load_checkpoint_into(const CheckpointInfo& info, Trainer& trainer);

}  // namespace meshlm
