#include "meshlm/train/run_setup.hpp"

#include <omp.h>

#include "meshlm/core/error.hpp"
#include "meshlm/data/data_fingerprint.hpp"
#include "meshlm/model/memory_estimate.hpp"
#include "meshlm/train/config_lookup.hpp"
#include "meshlm/train/launch_layout.hpp"
#include "meshlm/train/model_path.hpp"
#include "meshlm/train/run_directory.hpp"
#include "meshlm/train/tokenizer_identity.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

// A new run into a directory that holds another run needs --overwrite.
void check_run_directory(const RunRequest& request, const fs::path& run_dir, RunSetup& s) {
  if (request.overwrite && run_dir.empty()) throw UserError("--overwrite needs --out RUN_DIR");
  if (request.resume_flag || run_dir.empty()) return;
  s.previous_run = previous_run_entries(run_dir);
  if (!s.previous_run.empty() && !request.overwrite)
    throw UserError(cat("--out ", run_dir.string(), " already holds a run (", join_list(s.previous_run),
                        "): continue it with --resume, or replace it with --overwrite"));
}

void check_resumed_data(const CheckpointInfo& saved, const std::string& path, const std::string& fingerprint) {
  if (saved.data_fingerprint.empty() || saved.data_fingerprint == fingerprint) return;
  throw UserError(cat("--resume: --data ", path, " is not the data the checkpoint was trained on (", saved.data,
                      "): fingerprint ", fingerprint, ", the checkpoint's ", saved.data_fingerprint));
}

// Before anything of the model is allocated: a config too large for this machine is refused
// with both figures, not left to end in std::bad_alloc or swapping.
void check_run_fits_memory(const RunConfig& cfg) {
  const ParallelConfig& p = cfg.parallel;
  const ModelWorkload work{.training = true, .batch = cfg.train.micro_batch, .seq_len = cfg.train.T(cfg.model),
                           .model_shards = p.tp * p.pp, .zero_shards = p.dp, .zero_stage = int(p.zero)};
  check_model_fits_memory(cfg.model, work, cfg.train.device, "the run's model");
}

}  // namespace

void settle_vocab_size(GPTConfig& model, int64_t data_vocab) {
  if (model.vocab_size == kVocabFromData) model.vocab_size = data_vocab;
  if (model.vocab_size < data_vocab)
    throw UserError(cat("model.vocab_size (", model.vocab_size, ") is smaller than the data's tokenizer vocabulary (",
                        data_vocab, "): leave model.vocab_size unset (or 0) to take the data's"));
}

std::optional<int64_t> settle_decay_horizon(TrainConfig& now, const TrainConfig& saved) {
  const int64_t old = saved.decay_horizon();
  if (now.decay_steps == kDecayStepsUnset) {
    now.decay_steps = old;
    return std::nullopt;
  }
  now.decay_steps = now.decay_horizon();  // explicit: kept as a number, so that a later resume keeps it too
  return now.decay_steps == old ? std::nullopt : std::optional<int64_t>(old);
}

fs::path requested_run_dir(const RunRequest& request) {
  const bool resuming = request.resume_flag;
  fs::path run_dir = request.out;
  if (resuming && !request.resume.empty()) {
    if (!run_dir.empty() && fs::weakly_canonical(run_dir) != fs::weakly_canonical(request.resume))
      throw UserError(cat("--resume ", request.resume, " and --out ", request.out, " name different run directories"));
    run_dir = request.resume;
  }
  if (resuming && run_dir.empty()) throw UserError("--resume needs the run directory (--resume RUN_DIR or --out RUN_DIR)");
  if (!run_dir.empty() && fs::exists(run_dir) && !fs::is_directory(run_dir))
    throw UserError(cat("--out ", run_dir.string(), " exists and is not a directory"));
  if (request.overwrite && resuming)
    throw UserError("--overwrite and --resume contradict each other (--resume continues the run, --overwrite replaces it)");
  return run_dir;
}

RunSetup read_run_setup(const RunRequest& request, std::optional<ResumePoint> chosen) {
  RunSetup s;
  const bool resuming = request.resume_flag;
  s.run_dir = requested_run_dir(request);
  check_run_directory(request, s.run_dir, s);

  if (resuming) {
    ResumePoint point = chosen ? std::move(*chosen) : choose_resume_checkpoint(s.run_dir);
    s.resume_from = std::move(point.info);
    s.resume_notes = std::move(point.notes);
  }

  RunConfig& cfg = s.cfg;
  cfg = s.resume_from && request.config.empty() ? s.resume_from->config : RunConfig{};
  cfg.parallel = unset_layout();  // the layout is this launch's choice: a run resumes under any
  if (resuming) cfg.train.decay_steps = kDecayStepsUnset;  // unless this launch sets it, the run's own
  if (!request.config.empty()) apply_config(cfg, request.config);
  fs::path init_dir;
  if (!request.init_from.empty()) {
    if (resuming) throw UserError("--init-from and --resume cannot be combined (a resumed run has its own weights)");
    init_dir = resolve_model_dir(request.init_from, "--init-from");
    s.init = load_model(init_dir);
    s.init_from = request.init_from;
    const float dropout = cfg.model.dropout;  // a training setting, not part of the weights' shape
    cfg.model = s.init->config;  // the model's shape comes from the pretrained weights
    cfg.model.dropout = dropout;
  }
  for (const auto& [k, v] : request.overrides) {
    if (s.init && k.rfind("model.", 0) == 0 && k != "model.dropout")
      throw UserError(cat("--", k, " cannot change a model loaded with --init-from (its shape comes from its config.json)"));
    apply_override(cfg, k, v);
  }
  if (s.resume_from) {
    if (cfg.model.vocab_size == kVocabFromData) cfg.model.vocab_size = s.resume_from->config.model.vocab_size;
    s.previous_horizon = settle_decay_horizon(cfg.train, s.resume_from->config.train);
  }
  fit_layout_to_processes(cfg.parallel, request.processes);
  cfg.validate();
  if (s.resume_from) {
    auto diff = resume_incompatible_keys(s.resume_from->config, cfg);
    if (!diff.empty()) {
      std::string keys;
      for (const auto& k : diff) keys += (keys.empty() ? "" : ", ") + k;
      throw UserError(cat("--resume: the config differs from the checkpoint's in ", keys,
                          " (a resumed run must keep the model, optimizer, batch shape, seed and data split)"));
    }
  }
  if (cfg.train.threads > 0) omp_set_num_threads(int(cfg.train.threads));
  s.data = open_token_source(request.data, cfg.train.val_fraction);
  if (s.init || s.resume_from)
    check_tokenizer_identity(TokenizerIdentity::of(s.data->tokenizer(), request.data),
                             model_tokenizer_identity(s.init ? init_dir : s.resume_from->dir), cfg.model.vocab_size,
                             s.init ? cat("--init-from ", request.init_from) : cat("--resume ", s.run_dir.string()),
                             request.allow_tokenizer_mismatch);
  settle_vocab_size(cfg.model, s.data->vocab_size());
  check_run_fits_memory(cfg);
  s.data_fingerprint = data_fingerprint(request.data);
  if (s.resume_from) check_resumed_data(*s.resume_from, request.data, s.data_fingerprint);
  return s;
}

}  // namespace meshlm
