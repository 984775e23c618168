#pragma once
// Tokenizer identity between data and model: token ids mean something only under the
// tokenizer that made them, so training on (or evaluating with) data tokenized differently
// from the model's own data gives silently wrong results. The tokenizer's fingerprint
// (Tokenizer::fingerprint) tells; data directories and model directories (checkpoints, a
// run's final model) carry their tokenizer's files, so both sides are read from those.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "meshlm/data/tokenizer.hpp"
#include "meshlm/model/model_io.hpp"

namespace meshlm {

// Which tokenizer one side has, and where it was read from, for the error message.
struct TokenizerIdentity {
  std::string kind;
  int64_t vocab_size = 0;
  std::string fingerprint;
  std::string source;  // the directory (or file) it came from

  static TokenizerIdentity of(const Tokenizer& tok, std::string source);
  bool same_tokenizer(const TokenizerIdentity& other) const;
  // "bpe (vocab 4096, fingerprint 0123456789abcdef) from DIR"
  std::string describe() const;
};

// The tokenizer saved in a model directory (checkpoint, run directory's final model, or a
// Hugging Face directory with GPT-2 style tokenizer files); null when it holds none, or only
// Hugging Face files of a tokenizer meshlm does not read. UserError if meshlm's own is corrupt.
std::unique_ptr<Tokenizer> load_model_tokenizer(const std::filesystem::path& model_dir);
std::optional<TokenizerIdentity> model_tokenizer_identity(const std::filesystem::path& model_dir);

// UserError (one line naming both sides) when the data's tokenizer is not the model's,
// unless `allow_mismatch`; `model_role` names the model as the user gave it (e.g.
// "--init-from runs/a"). Without a model tokenizer, only the vocabulary sizes are checked,
// and that check holds even with `allow_mismatch` (larger ids have no embedding row).
void check_tokenizer_identity(const TokenizerIdentity& data, const std::optional<TokenizerIdentity>& model,
                              int64_t model_vocab_size, const std::string& model_role, bool allow_mismatch);

// The ids config.json names as bos/eos for a model trained with `tok`.
SpecialTokenIds special_token_ids(const Tokenizer& tok);

}  // namespace meshlm
