#include "meshlm/train/run_setup.hpp"

#include <omp.h>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

// A model directory, or a checkpoint, or a run directory (its latest checkpoint).
LoadedModel load_initial_model(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(cat("--init-from: not found: ", path.string()));
  if (fs::is_regular_file(path, ec) && path.filename() == kModelWeightsFile) return load_model(path.parent_path());
  return load_model(resolve_checkpoint(path));
}

}  // namespace

RunSetup read_run_setup(const RunRequest& request) {
  RunSetup s;
  const bool resuming = request.resume_flag;
  s.run_dir = request.out;
  if (resuming && !request.resume.empty()) {
    if (!s.run_dir.empty() && fs::weakly_canonical(s.run_dir) != fs::weakly_canonical(request.resume))
      throw UserError(cat("--resume ", request.resume, " and --out ", request.out, " name different run directories"));
    s.run_dir = request.resume;
  }
  if (resuming && s.run_dir.empty()) throw UserError("--resume needs the run directory (--resume RUN_DIR or --out RUN_DIR)");
  if (!s.run_dir.empty() && fs::exists(s.run_dir) && !fs::is_directory(s.run_dir))
    throw UserError(cat("--out ", s.run_dir.string(), " exists and is not a directory"));

  if (resuming) {
    auto latest = latest_checkpoint(s.run_dir);
    if (!latest) throw UserError(cat("--resume: no checkpoint in ", s.run_dir.string(), "/checkpoints"));
    s.resume_from = read_checkpoint_info(*latest);
  }

  RunConfig& cfg = s.cfg;
  cfg = s.resume_from && request.config.empty() ? s.resume_from->config : RunConfig{};
  cfg.parallel = ParallelConfig{};  // the layout is this launch's choice: a run resumes under any
  if (!request.config.empty()) apply_toml_file(cfg, request.config);
  if (!request.init_from.empty()) {
    if (resuming) throw UserError("--init-from and --resume cannot be combined (a resumed run has its own weights)");
    s.init = load_initial_model(request.init_from);
    const float dropout = cfg.model.dropout;  // a training setting, not part of the weights' shape
    cfg.model = s.init->config;  // the model's shape comes from the pretrained weights
    cfg.model.dropout = dropout;
  }
  for (const auto& [k, v] : request.overrides) {
    if (s.init && k.rfind("model.", 0) == 0 && k != "model.dropout")
      throw UserError(cat("--", k, " cannot change a model loaded with --init-from (its shape comes from its config.json)"));
    apply_override(cfg, k, v);
  }
  cfg.validate();
  if (s.resume_from) {
    auto diff = resume_incompatible_keys(s.resume_from->config, cfg);
    if (!diff.empty()) {
      std::string keys;
      for (const auto& k : diff) keys += (keys.empty() ? "" : ", ") + k;
      throw UserError(cat("--resume: the config differs from the checkpoint's in ", keys,
                          " (a resumed run must keep the model, optimizer, batch shape and seed)"));
    }
  }
  if (cfg.train.threads > 0) omp_set_num_threads(int(cfg.train.threads));
  s.data = open_token_source(request.data, cfg.train.val_fraction);
  return s;
}

}  // namespace meshlm
