#include "meshlm/train/checkpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/buffer.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/model/safetensors.hpp"
#include "meshlm/train/checkpoint_manifest.hpp"
#include "meshlm/train/tokenizer_identity.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kTempPrefix = ".tmp.";     // a save in progress: .tmp.step_NNNNNN.PID
constexpr const char* kAsideSuffix = ".aside";  // a re-saved step's previous copy: .tmp.step_NNNNNN.aside

// The step a "step_NNNNNN" name stands for; nullopt for any other name.
std::optional<int64_t> step_of_name(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5 || name.size() > 5 + 18) return std::nullopt;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

fs::path aside_dir(const fs::path& checkpoint_dir) {
  return checkpoint_dir.parent_path() / cat(kTempPrefix, checkpoint_dir.filename().string(), kAsideSuffix);
}

// Renames `tmp` to `final_dir`. A re-save of the same step moves the old copy aside first and
// deletes it only once the new one is in place, so that at every moment one complete copy of
// the step exists under its name or its aside name (resume and the next run's clean-up read both).
void move_into_place(const fs::path& tmp, const fs::path& final_dir) {
  const fs::path root = final_dir.parent_path();
  const fs::path aside = aside_dir(final_dir);
  std::error_code ec;
  const bool resave = fs::exists(final_dir, ec);
  if (resave) {
    fs::remove_all(aside);  // an older interruption's copy: final_dir is complete and newer
    fs::rename(final_dir, aside);
  }
  try {
    fs::rename(tmp, final_dir);
  } catch (...) {
    if (resave) fs::rename(aside, final_dir, ec);  // the old copy back under its name
    throw;
  }
  sync_directory(root);
  fs::remove_all(aside, ec);
}

std::string step_dir_name(int64_t step) {
  std::ostringstream os;
  os << "step_" << std::setw(6) << std::setfill('0') << step;
  return os.str();
}

std::optional<std::string> read_pointer(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  std::string name = read_file(file, "checkpoint pointer");
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (name.empty() || name.find('/') != std::string::npos) return std::nullopt;
  return name;
}

void write_optimizer(const fs::path& path, const std::vector<std::pair<std::string, std::vector<float>>>& state,
                     int64_t steps, const ParamLayout& layout) {
  std::vector<TensorRef> tensors;
  for (auto& [state_name, values] : state)
    for (const ParamView& v : layout.views())
      tensors.emplace_back(state_name + "." + v.spec.name, DType::f32, v.spec.shape, values.data() + v.offset);
  write_safetensors(path, tensors, {{"optimizer", ""}, {"steps", std::to_string(steps)}});
}

// Reads the whole-model state and hands it to the trainer, which keeps its shard: a checkpoint
// resumes under any data-parallel size or ZeRO stage.
// Whether state kept per rank and per tensor shard (gradient compression's) fits this run: the
// checkpoint was saved by the same method over the same data- and tensor-parallel ranks.
bool same_rank_state(const ParallelConfig& saved, const ParallelConfig& now) {
  return saved.dp == now.dp && saved.tp == now.tp && saved.pp == now.pp && saved.compress == now.compress &&
         saved.compress_rank == now.compress_rank;
}

void read_optimizer(const fs::path& path, Trainer& trainer, const ParamLayout& layout, bool rank_state_fits) {
  const std::vector<std::string> names = trainer.strategy().checkpoint_state_names();
  // A bound on the tensors (one per state and parameter, with room for another strategy's
  // states, refused below by name): a header describing more is refused before it is parsed.
  SafetensorsFile file(path, std::max<size_t>(1024, names.size() + trainer.strategy().optional_checkpoint_state_names().size()) * layout.views().size());
  std::vector<float> whole(layout.total());
  const std::string first = layout.views().front().spec.name;
  const bool merging_ranks = file.has("rank0.params." + first);
  if (merging_ranks != (std::find(names.begin(), names.end(), "rank0.params") != names.end()))
    throw UserError(cat("checkpoint ", path.parent_path().string(), " was saved ",
                        merging_ranks ? "by ranks that merge parameters" : "by synchronous training",
                        ": resume with the parallel.sync it was saved with (",
                        merging_ranks ? "local_sgd, diloco or gossip" : "allreduce or ps", ")"));
  for (const std::string& state_name : names) {
    for (const ParamView& v : layout.views()) {
      const std::string name = state_name + "." + v.spec.name;
      if (!file.has(name))
        throw UserError(cat("optimizer state ", path.string(), " lacks tensor ", name,
                            " (a checkpoint resumes with the parallel.sync it was saved with; ranks that merge "
                            "parameters also need the same parallel.dp)"));
      file.read_as_f32(name, {whole.data() + v.offset, v.numel});
    }
    trainer.load_optimizer_state(state_name, whole);
  }
  // Restored where the checkpoint has them, saved with the same method and ranks; otherwise
  // they start afresh (a compression residual from zero, PowerSGD's Q from its seed).
  for (const std::string& state_name : trainer.strategy().optional_checkpoint_state_names()) {
    if (!rank_state_fits || !file.has(state_name + "." + first)) continue;
    for (const ParamView& v : layout.views()) {
      const std::string name = state_name + "." + v.spec.name;
      if (!file.has(name)) throw UserError(cat("optimizer state ", path.string(), " lacks tensor ", name));
      file.read_as_f32(name, {whole.data() + v.offset, v.numel});
    }
    trainer.load_optimizer_state(state_name, whole);
  }
}

// Removes step_* directories beyond the newest `keep`, sparing `best`.
void prune(const fs::path& ckpt_root, int64_t keep, const std::optional<std::string>& best) {
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(ckpt_root))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0)
      steps.push_back(e.path().filename().string());
  std::sort(steps.begin(), steps.end());
  const int64_t excess = int64_t(steps.size()) - keep;
  for (int64_t i = 0; i < excess; ++i)
    if (!best || steps[size_t(i)] != *best) fs::remove_all(ckpt_root / steps[size_t(i)]);
}

}  // namespace

bool snapshot_is_a_copy(const Trainer& trainer) {
  const ParallelConfig& p = trainer.config().parallel;
  // Parameter-server workers hold the parameters whole but not the optimizer state.
  // Gradient compression's residuals are gathered from every rank.
  return p.tp == 1 && p.pp == 1 && p.zero == 0 && p.sync == SyncKind::allreduce && p.compress == Compression::none &&
         trainer.model().device() == Device::cpu;
}

CheckpointSnapshot snapshot_checkpoint(const fs::path& run_dir, Trainer& trainer, const Tokenizer& tokenizer,
                                       const std::string& data_description, bool is_best,
                                       const std::string& data_fingerprint, CheckpointSnapshot reuse) {
  CheckpointSnapshot snap = std::move(reuse);
  const TrainerState& st = trainer.state();
  snap.run_dir = run_dir;
  snap.name = step_dir_name(st.step);
  snap.is_best = is_best;
  if (snapshot_is_a_copy(trainer)) {
    // Nothing to gather (no collective on any rank): rank 0 copies into the reused buffers.
    if (!trainer.is_root()) return snap;
    const std::span<const float> params = trainer.params();
    MESHLM_ASSERT(params.size() == trainer.global_layout().total(), "unsharded parameters expected");
    snap.params.assign(params.begin(), params.end());
    const auto state = trainer.optimizer().state();
    snap.optimizer_state.resize(state.size());
    for (size_t i = 0; i < state.size(); ++i) {
      const Buffer& buf = *state[i].second;
      MESHLM_ASSERT(buf.size() == params.size() && buf.device() == Device::cpu, "unsharded optimizer state expected");
      snap.optimizer_state[i].first = state[i].first;
      snap.optimizer_state[i].second.assign(buf.data<float>(), buf.data<float>() + buf.size());
    }
  } else {
    // Collective: the tensor-parallel and ZeRO shards are gathered on every rank; rank 0 writes.
    snap.params = trainer.global_params();
    snap.optimizer_state = trainer.gathered_optimizer_state();
    if (!trainer.is_root()) {
      snap.params.clear();
      snap.optimizer_state.clear();
      return snap;
    }
  }
  snap.keep_checkpoints = trainer.config().train.keep_checkpoints;
  snap.model = trainer.config().model;
  snap.layout = trainer.global_layout();
  snap.optimizer_steps = trainer.optimizer().steps();
  snap.special_ids = special_token_ids(tokenizer);
  snap.tokenizer = &tokenizer;
  nlohmann::ordered_json j;
  j["format"] = "meshlm-checkpoint";
  j["version"] = 1;
  j["step"] = st.step;
  j["best_val_loss"] = std::isfinite(st.best_val_loss) ? nlohmann::json(st.best_val_loss) : nlohmann::json();
  j["best_step"] = st.best_step;
  j["evals_without_improvement"] = st.evals_without_improvement;
  j["optimizer_steps"] = trainer.optimizer().steps();
  j["skipped_steps"] = st.skipped_steps;
  if (st.loss_scaler)
    j["loss_scaler"] = {{"scale", st.loss_scaler->scale},
                        {"good_steps", st.loss_scaler->good_steps},
                        {"hysteresis_left", st.loss_scaler->hysteresis_left},
                        {"skipped", st.loss_scaler->skipped}};
  j["data"] = data_description;
  if (!data_fingerprint.empty()) j["data_fingerprint"] = data_fingerprint;
  j["data_position"] = {{"global_samples_seen", st.step * trainer.config().train.micro_batch *
                                                    trainer.config().train.grad_accum}};
  j["rng"] = {{"kind", "philox4x32-10 counter-based"}, {"seed", trainer.config().train.seed}};
  j["tokenizer"] = {{"kind", std::string(tokenizer.kind())},
                    {"vocab_size", tokenizer.vocab_size()},
                    {"fingerprint", tokenizer.fingerprint()}};
  j["config"] = nlohmann::json::parse(config_to_json(trainer.config()));
  snap.trainer_state_json = j.dump(2) + "\n";
  return snap;
}

WrittenCheckpoint write_checkpoint(const CheckpointSnapshot& snap) {
  const fs::path root = snap.run_dir / "checkpoints";
  const fs::path final_dir = root / snap.name;
  fs::create_directories(root);
  const fs::path tmp = root / cat(".tmp.", snap.name, ".", ::getpid());
  fs::remove_all(tmp);
  WrittenCheckpoint written{final_dir, 0};
  try {
    fs::create_directories(tmp);
    save_model(tmp, snap.model, snap.layout, snap.params, snap.special_ids);
    write_optimizer(tmp / kOptimizerFile, snap.optimizer_state, snap.optimizer_steps, snap.layout);
    snap.tokenizer->save(tmp);
    write_text_atomic(tmp / kStateFile, snap.trainer_state_json);
    write_checkpoint_manifest(tmp);  // last: it vouches for every file above
    sync_directory(tmp);
    for (const auto& e : fs::directory_iterator(tmp))
      if (e.is_regular_file()) written.bytes += int64_t(e.file_size());
    move_into_place(tmp, final_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  if (snap.is_best) write_text_atomic(root / "best", snap.name + "\n");
  write_text_atomic(root / "latest", snap.name + "\n");  // last: only a complete checkpoint is ever `latest`
  prune(root, snap.keep_checkpoints, read_pointer(root / "best"));
  return written;
}

fs::path save_checkpoint(const fs::path& run_dir, Trainer& trainer, const Tokenizer& tokenizer,
                         const std::string& data_description, bool is_best, const std::string& data_fingerprint) {
  const CheckpointSnapshot snap =
      snapshot_checkpoint(run_dir, trainer, tokenizer, data_description, is_best, data_fingerprint);
  if (!trainer.is_root()) return run_dir / "checkpoints" / snap.name;
  return write_checkpoint(snap).dir;
}

std::vector<CheckpointEntry> list_checkpoints(const fs::path& run_dir) {
  const fs::path root = run_dir / "checkpoints";
  std::vector<CheckpointEntry> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (!e.is_directory(ec)) continue;
    std::string name = e.path().filename().string();
    bool aside = false;
    const std::string suffix = kAsideSuffix;
    if (name.rfind(kTempPrefix, 0) == 0 && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      name = name.substr(std::string(kTempPrefix).size(), name.size() - suffix.size() - std::string(kTempPrefix).size());
      aside = true;
      if (fs::exists(root / name, ec)) continue;  // the step itself is in place: the copy is a leftover
    }
    if (auto step = step_of_name(name)) found.push_back({*step, name, e.path(), aside});
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.step > b.step; });
  return found;
}

ResumePoint choose_resume_checkpoint(const fs::path& run_dir) {
  const std::vector<CheckpointEntry> all = list_checkpoints(run_dir);
  if (all.empty()) throw UserError(cat("--resume: no checkpoint in ", (run_dir / "checkpoints").string()));
  ResumePoint point;
  std::string reasons;
  for (const CheckpointEntry& c : all) {
    const Verification v = verify_checkpoint_dir(c.dir);
    std::string problem = v.problem;
    if (v.status != Verification::Status::failed) {
      try {
        point.info = read_checkpoint_info(c.dir);
      } catch (const UserError& e) {
        problem = e.what();
      }
    }
    if (!point.info) {
      point.notes.push_back(cat("resume: skipped checkpoint ", c.name, ": ", problem));
      reasons += cat(reasons.empty() ? "" : "; ", c.name, ": ", problem);
      continue;
    }
    if (c.aside)
      point.notes.push_back(cat("resume: ", c.name, " was being re-saved when the run stopped: resuming from its previous copy ",
                                c.dir.filename().string()));
    if (v.status == Verification::Status::unverified)
      point.notes.push_back(cat("resume: checkpoint ", c.name, " has ", v.problem, ": resuming from it unverified"));
    return point;
  }
  throw UserError(cat("--resume: no checkpoint in ", (run_dir / "checkpoints").string(), " verifies (", reasons, ")"));
}

std::vector<std::string> clean_checkpoint_leftovers(const fs::path& run_dir, fs::path* resumed_dir) {
  const fs::path root = run_dir / "checkpoints";
  std::vector<std::string> notes;
  std::error_code ec;
  std::vector<fs::path> temporaries;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.path().filename().string().rfind(std::string(kTempPrefix) + "step_", 0) == 0 && e.is_directory(ec))
      temporaries.push_back(e.path());
  std::sort(temporaries.begin(), temporaries.end());
  for (const fs::path& t : temporaries) {
    const std::string name = t.filename().string();
    const std::string suffix = kAsideSuffix;
    const bool aside = name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    const fs::path step_dir = root / name.substr(std::string(kTempPrefix).size(),
                                                 name.size() - std::string(kTempPrefix).size() - (aside ? suffix.size() : 0));
    if (aside && !fs::exists(step_dir, ec) && step_of_name(step_dir.filename().string())) {
      fs::rename(t, step_dir);
      sync_directory(root);
      if (resumed_dir && *resumed_dir == t) *resumed_dir = step_dir;
      notes.push_back(cat("checkpoints: restored ", step_dir.filename().string(), " from ", name,
                          " (a re-save of it was interrupted)"));
      continue;
    }
    fs::remove_all(t);
    notes.push_back(cat("checkpoints: removed ", name, aside ? " (the previous copy of a re-saved checkpoint)"
                                                             : " (an unfinished checkpoint of a stopped run)"));
  }
  return notes;
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir) {
  auto name = read_pointer(run_dir / "checkpoints" / "latest");
  if (!name) return std::nullopt;
  fs::path dir = run_dir / "checkpoints" / *name;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return dir;
  if (fs::is_directory(aside_dir(dir), ec)) return aside_dir(dir);  // a re-save of it was interrupted
  throw UserError(cat("checkpoint pointer ", (run_dir / "checkpoints" / "latest").string(), " names ", *name,
                      ", which does not exist"));
}

fs::path resolve_checkpoint(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(cat("checkpoint not found: ", path.string()));
  if (fs::exists(path / kModelWeightsFile, ec)) return path;
  if (auto latest = latest_checkpoint(path)) return *latest;
  throw UserError(cat(path.string(), " is neither a checkpoint (no ", kModelWeightsFile,
                      ") nor a run directory with checkpoints"));
}

CheckpointInfo read_checkpoint_info(const fs::path& dir) {
  const fs::path file = dir / kStateFile;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(file, "trainer state"));
  } catch (const nlohmann::json::exception&) {
    throw UserError(cat("trainer state ", file.string(), " is not valid JSON"));
  }
  CheckpointInfo info;
  info.dir = dir;
  try {
    if (j.at("format") != "meshlm-checkpoint") throw UserError(cat(file.string(), " is not a meshlm trainer state"));
    info.state.step = j.at("step").get<int64_t>();
    info.state.best_val_loss =
        j.at("best_val_loss").is_null() ? std::numeric_limits<float>::infinity() : j.at("best_val_loss").get<float>();
    info.state.best_step = j.at("best_step").get<int64_t>();
    info.state.evals_without_improvement = j.at("evals_without_improvement").get<int64_t>();
    info.state.skipped_steps = j.value("skipped_steps", int64_t(0));
    if (j.contains("loss_scaler")) {
      const auto& ls = j.at("loss_scaler");
      info.state.loss_scaler = LossScalerState{ls.at("scale").get<float>(), ls.at("good_steps").get<int64_t>(),
                                               ls.at("hysteresis_left").get<int64_t>(), ls.at("skipped").get<int64_t>()};
      if (!(info.state.loss_scaler->scale > 0) || !std::isfinite(info.state.loss_scaler->scale))
        throw UserError(cat("trainer state ", file.string(), " has an invalid loss scale"));
    }
    info.data = j.at("data").get<std::string>();
    info.data_fingerprint = j.value("data_fingerprint", std::string());
    info.tokenizer = j.at("tokenizer").at("kind").get<std::string>();
    info.config = config_from_json(j.at("config").dump(), file.string());
  } catch (const nlohmann::json::exception& e) {
    throw UserError(cat("trainer state ", file.string(), " is missing a field or has a wrong type"));
  }
  if (info.state.step < 0) throw UserError(cat("trainer state ", file.string(), " has a negative step"));
  if (info.state.skipped_steps < 0 || info.state.skipped_steps > info.state.step)
    throw UserError(cat("trainer state ", file.string(), " has an invalid skipped_steps"));
  return info;
}

void load_checkpoint_into(const CheckpointInfo& info, Trainer& trainer) {
  GPTConfig saved = load_model_config(info.dir);
  saved.dropout = trainer.config().model.dropout;  // not read from config.json; the trainer state's config keeps it
  if (!(saved == trainer.config().model))
    throw UserError(cat("checkpoint ", info.dir.string(), " holds a different model shape than the config"));
  // Files hold the whole model; each rank keeps its tensor-parallel (and ZeRO) shard.
  std::vector<float> whole(trainer.global_layout().total());
  load_model_params(info.dir / kModelWeightsFile, saved, trainer.global_layout(), whole);
  trainer.set_params(whole);
  read_optimizer(info.dir / kOptimizerFile, trainer, trainer.global_layout(),
                 same_rank_state(info.config.parallel, trainer.config().parallel));
  trainer.restore_state(info.state);
}

}  // namespace meshlm
