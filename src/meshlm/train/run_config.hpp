#pragma once
// Everything a training run is configured by, in five TOML sections ([model], [train],
// [optim], [parallel], [debug]). One schema table lists every key once; it drives the TOML reader, the
// `--section.key value` command-line overrides and the reference in docs/CLI.md.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "meshlm/core/device.hpp"
#include "meshlm/core/enum_names.hpp"
#include "meshlm/core/precision.hpp"
#include "meshlm/model/config.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/optim/loss_scaler.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/optim/schedule.hpp"
#include "meshlm/parallel/parallel_config.hpp"

namespace meshlm {

// What a failed checkpoint write does to the run: end it (exit 2), or warn and train on.
enum class CheckpointErrors : uint8_t { stop, continue_ };
inline constexpr EnumNames<CheckpointErrors, 2> kCheckpointErrorsNames{
    {{CheckpointErrors::stop, "stop"}, {CheckpointErrors::continue_, "continue"}}};

struct TrainConfig {
  int64_t micro_batch = 16;   // sequences per micro-batch (B)
  int64_t block_size = 0;     // tokens per sequence (T); 0 = model.n_positions
  int64_t grad_accum = 1;     // micro-batches per optimizer step
  int64_t steps = 1000;       // optimizer steps
  int64_t decay_steps = 0;    // the learning-rate decay's horizon; 0 = steps (optim/schedule.hpp)
  double lr = 3e-4;           // peak learning rate
  int64_t warmup_steps = 0;
  Decay decay = Decay::cosine;
  double min_lr_ratio = 0.1;     // floor of the decay, as a fraction of lr
  double grad_clip = 1.0;        // max global gradient norm; 0 disables clipping
  int64_t seed = 1337;           // parameters and batches both derive from it
  int64_t eval_every = 100;      // steps between validation passes; 0 = only at the end
  int64_t eval_tokens = 65536;   // validation tokens per evaluation
  int64_t patience = 0;          // early stopping: evaluations without improvement; 0 = off
  double min_delta = 0.0;        // improvement in val loss that counts
  int64_t save_every = 0;        // steps between checkpoints (0 = only at the end and on stop)
  int64_t keep_checkpoints = 3;  // most recent checkpoints kept (plus the best)
  bool async_checkpoint = true;  // write checkpoints on a background thread (train/checkpoint_writer.hpp)
  CheckpointErrors checkpoint_errors = CheckpointErrors::stop;
  double val_fraction = 0.1;     // for a plain text file: its tail held out for validation
  int64_t threads = 0;           // CPU threads; 0 = all
  int64_t log_every = 1;
  Device device = Device::cpu;
  Recompute recompute = Recompute::selective;  // activation recomputation (model/gpt.hpp)
  Precision precision = Precision::fp32;       // core/precision.hpp
  // fp16 dynamic loss scaling (optim/loss_scaler.hpp)
  double loss_scale = 65536.0;
  int64_t loss_scale_window = 1000;
  int64_t loss_scale_hysteresis = 2;
  double loss_scale_min = 1.0;

  LossScalerConfig loss_scaler() const {
    return {float(loss_scale), loss_scale_window, loss_scale_hysteresis, float(loss_scale_min)};
  }

  int64_t T(const GPTConfig& m) const { return block_size > 0 ? block_size : m.n_positions; }
  // The step at which the decay reaches its floor.
  int64_t decay_horizon() const { return decay_steps > 0 ? decay_steps : steps; }
};

// model.vocab_size 0: the data's tokenizer's vocabulary, filled in when the data is opened
// (train/run_setup.hpp). A run configuration starts there; GPTConfig alone keeps bytes (256).
inline constexpr int64_t kVocabFromData = 0;

// [debug]: test and benchmark aids that change a run's timing, never its results.
struct DebugConfig {
  // A straggler: rank slow_rank (of the job; -1: none) sleeps (slow_factor - 1) times the
  // compute time of each training micro-batch (its forward and backward passes) after it.
  int64_t slow_rank = -1;
  double slow_factor = 1.0;
  // A straggler that moves: every data-parallel rank (a worker, with parameter servers) is
  // slowed by slow_factor on every other step of its own, even ranks on even steps and odd
  // ones on odd steps, so that at each step half of them are slow.
  bool slow_alternate = false;
};

struct RunConfig {
  GPTConfig model{.vocab_size = kVocabFromData};
  TrainConfig train;
  OptimConfig optim;
  ParallelConfig parallel;  // how the run is laid out over ranks: not part of its results
  DebugConfig debug;        // timing aids for tests and benchmarks: not part of its results

  ScheduleConfig schedule() const;
  // Throws UserError naming the first invalid key. model.vocab_size may still be kVocabFromData
  // (the data fills it in); a Trainer's config must have it set.
  void validate() const;
};

// A key whose value is one of a few names, held as an enumeration: parsed once, when the config
// is read, so an unknown name is an error naming the key and the names it takes.
struct ChoiceRef {
  std::function<std::string_view()> get;
  std::function<bool(std::string_view)> set;  // false: not one of the names
  std::string names;                          // "a, b or c"
};
template <class E, size_t N>
ChoiceRef choice(E* target, const EnumNames<E, N>& names) {
  return {[=] { return enum_to_name(names, *target); },
          [=](std::string_view name) {
            const auto v = enum_from_name(names, name);
            if (v) *target = *v;
            return v.has_value();
          },
          enum_choices(names)};
}

struct ConfigField {
  std::string key;  // "section.name"
  std::variant<int64_t*, double*, float*, bool*, std::string*, ChoiceRef> target;
  std::string help;
};
std::vector<ConfigField> config_fields(RunConfig& cfg);

// Reads a TOML file over the defaults; unknown keys and wrong types are UserErrors.
void apply_toml_file(RunConfig& cfg, const std::filesystem::path& path);
void apply_toml_text(RunConfig& cfg, const std::string& text, const std::string& source);
// Sets one key from its command-line text ("train.lr", "3e-4").
void apply_override(RunConfig& cfg, const std::string& key, const std::string& value);
// Config keys with their command-line values, applied in order.
using Overrides = std::vector<std::pair<std::string, std::string>>;

// The whole config as a flat JSON object {"model.n_layer": 4, ...} and back (for checkpoints).
std::string config_to_json(const RunConfig& cfg);
RunConfig config_from_json(const std::string& json, const std::string& source);
// Keys whose change would make a resumed run differ from an uninterrupted one. micro_batch and
// grad_accum may change when their product (the global batch) does not.
std::vector<std::string> resume_incompatible_keys(const RunConfig& saved, const RunConfig& now);

}  // namespace meshlm
