#include "meshlm/cli/model_loading.hpp"

#include "meshlm/core/error.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/model_path.hpp"
#include "meshlm/train/tokenizer_identity.hpp"

namespace meshlm {

namespace fs = std::filesystem;

ModelForInference load_model_for_inference(const fs::path& path) {
  fs::path dir = resolve_model_dir(path, "--checkpoint");
  return {dir, load_model(dir), load_model_tokenizer(dir)};
}

void check_tokenizer_matches(const ModelForInference& m, const Tokenizer& data_tokenizer, const std::string& data,
                             bool allow_mismatch) {
  const std::optional<TokenizerIdentity> model =
      m.tokenizer ? std::optional(TokenizerIdentity::of(*m.tokenizer, m.dir.string())) : std::nullopt;
  check_tokenizer_identity(TokenizerIdentity::of(data_tokenizer, data), model, m.model.config.vocab_size,
                           m.dir.string(), allow_mismatch);
}

fs::path tokenizer_dir_of(const fs::path& path, const std::string& option) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(cat(option, ": not found: ", path.string()));
  if (fs::is_regular_file(path, ec) && path.filename() == kModelWeightsFile && has_tokenizer(path.parent_path()))
    return path.parent_path();
  if (fs::is_directory(path, ec) && has_tokenizer(path)) return path;
  if (fs::is_directory(path, ec))
    if (auto latest = latest_checkpoint(path); latest && has_tokenizer(*latest)) return *latest;
  throw UserError(cat(option, " ", path.string(),
                      " holds no tokenizer (expected a data directory, a run directory, a checkpoint or a model "
                      "directory with tokenizer files)"));
}

}  // namespace meshlm
