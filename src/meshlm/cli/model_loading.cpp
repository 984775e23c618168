#include "meshlm/cli/model_loading.hpp"

#include "meshlm/core/error.hpp"
#include "meshlm/train/model_path.hpp"

namespace meshlm {

namespace fs = std::filesystem;

ModelForInference load_model_for_inference(const fs::path& path) {
  fs::path dir = resolve_model_dir(path, "--checkpoint");
  std::unique_ptr<Tokenizer> tok;
  std::error_code ec;
  if (fs::exists(dir / "tokenizer.json", ec)) tok = load_tokenizer(dir);
  return {dir, load_model(dir), std::move(tok)};
}

void check_tokenizer_matches(const ModelForInference& m, const Tokenizer& data_tokenizer, const std::string& data) {
  if (data_tokenizer.vocab_size() > m.model.config.vocab_size)
    throw UserError(cat("data ", data, " has a vocabulary of ", data_tokenizer.vocab_size(), " but the model only ",
                        m.model.config.vocab_size));
  if (m.tokenizer && (m.tokenizer->kind() != data_tokenizer.kind() ||
                      m.tokenizer->vocab_size() != data_tokenizer.vocab_size()))
    throw UserError(cat("data ", data, " was tokenized with ", data_tokenizer.kind(), " (vocab ",
                        data_tokenizer.vocab_size(), ") but the model with ", m.tokenizer->kind(), " (vocab ",
                        m.tokenizer->vocab_size(), ")"));
}

}  // namespace meshlm
