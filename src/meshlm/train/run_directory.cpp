#include "meshlm/train/run_directory.hpp"

#include <nlohmann/json.hpp>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/tokenizer.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/train/metrics_log.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCheckpointsDir = "checkpoints";
constexpr const char* kOldTokenizerManifest = "tokenizer.json";  // the manifest's name before meshlm_tokenizer.json

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A checkpoint's own entries: step_NNNNNN/ holding a trainer state, the pointers, and the
// temporary directories of an interrupted save.
bool is_checkpoint_entry(const fs::directory_entry& e) {
  const std::string name = e.path().filename().string();
  std::error_code ec;
  if (name == "latest" || name == "best") return e.is_regular_file(ec);
  if (!e.is_directory(ec)) return false;
  if (name.rfind(".tmp.step_", 0) == 0) return true;
  return name.rfind("step_", 0) == 0 && is_file(e.path() / "trainer_state.json");
}

int count_checkpoints(const fs::path& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (is_checkpoint_entry(e) && e.path().filename().string().rfind("step_", 0) == 0) ++n;
  return n;
}

// The tokenizer's manifest (meshlm_tokenizer.json, or an older run's tokenizer.json), the
// files it names next to it (a SentencePiece model, GPT-2's vocab.json and merges.txt) and,
// for gpt2, the two Hugging Face side files its save writes.
std::vector<std::string> tokenizer_files(const fs::path& dir) {
  const char* manifest = is_file(dir / kTokenizerManifest) ? kTokenizerManifest : kOldTokenizerManifest;
  if (!is_file(dir / manifest)) return {};
  const nlohmann::json j = nlohmann::json::parse(read_file(dir / manifest, "tokenizer"), nullptr, false);
  if (!j.is_object() || !j.contains("kind")) return {};  // not meshlm's: Hugging Face's own tokenizer.json
  std::vector<std::string> files{manifest};
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string() || key == "kind" || key == "fingerprint") continue;
    const std::string name = value.get<std::string>();
    if (!name.empty() && name.find('/') == std::string::npos && name != "." && name != ".." && is_file(dir / name))
      files.push_back(name);
  }
  if (j.value("kind", "") == "gpt2")
    for (const char* side : {"tokenizer_config.json", "special_tokens_map.json"})
      if (is_file(dir / side)) files.push_back(side);
  return files;
}

}  // namespace

std::vector<std::string> previous_run_entries(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  std::vector<std::string> found;
  if (is_file(dir / kMetricsFile)) found.push_back(kMetricsFile);
  if (fs::is_directory(dir / kCheckpointsDir, ec))
    found.push_back(cat(kCheckpointsDir, "/ (", count_checkpoints(dir / kCheckpointsDir), " checkpoints)"));
  if (is_file(dir / kModelWeightsFile)) found.push_back(kModelWeightsFile);
  return found;
}

std::vector<std::string> remove_previous_run(const fs::path& dir) {
  std::vector<std::string> removed;
  auto remove_file = [&](const std::string& name) {
    std::error_code ec;
    if (fs::remove(dir / name, ec)) removed.push_back(name);
    if (ec) throw UserError(cat("--overwrite: cannot remove ", (dir / name).string(), ": ", ec.message()));
  };
  remove_file(kMetricsFile);
  std::error_code ec;
  const fs::path ckpts = dir / kCheckpointsDir;
  if (fs::is_directory(ckpts, ec)) {
    const int n = count_checkpoints(ckpts);
    std::vector<fs::path> ours;
    for (const auto& e : fs::directory_iterator(ckpts, ec))
      if (is_checkpoint_entry(e)) ours.push_back(e.path());
    for (const fs::path& p : ours) {
      fs::remove_all(p, ec);
      if (ec) throw UserError(cat("--overwrite: cannot remove ", p.string(), ": ", ec.message()));
    }
    if (fs::is_empty(ckpts, ec)) fs::remove(ckpts, ec);
    removed.push_back(cat(kCheckpointsDir, "/ (", n, " checkpoints)"));
  }
  // The final model: weights, their config and the tokenizer (names read before removal).
  if (is_file(dir / kModelWeightsFile)) {
    const std::vector<std::string> tok = tokenizer_files(dir);
    remove_file(kModelWeightsFile);
    remove_file(kModelConfigFile);
    for (const std::string& f : tok) remove_file(f);
  }
  return removed;
}

RunLock open_run_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError(cat("cannot create the run directory ", dir.string(), ": ", ec.message()));
  if (!fs::is_directory(dir, ec)) throw UserError(cat("--out ", dir.string(), " is not a directory"));
  return RunLock(dir);
}

RunLock lock_existing_run_directory(const fs::path& dir) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return {};
  return RunLock(dir);
}

std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i)
    out += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
  return out;
}

}  // namespace meshlm
