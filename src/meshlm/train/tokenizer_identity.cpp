#include "meshlm/train/tokenizer_identity.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

TokenizerIdentity TokenizerIdentity::of(const Tokenizer& tok, std::string source) {
  return {std::string(tok.kind()), tok.vocab_size(), tok.fingerprint(), std::move(source)};
}

bool TokenizerIdentity::same_tokenizer(const TokenizerIdentity& other) const {
  return kind == other.kind && vocab_size == other.vocab_size && fingerprint == other.fingerprint;
}

std::string TokenizerIdentity::describe() const {
  return cat(kind, " (vocab ", vocab_size, ", fingerprint ", fingerprint, ") from ", source);
}

std::unique_ptr<Tokenizer> load_model_tokenizer(const fs::path& model_dir) {
  if (!has_tokenizer(model_dir)) return nullptr;
  if (has_meshlm_tokenizer(model_dir)) return load_tokenizer(model_dir);
  // Only Hugging Face's files: a model saved elsewhere, whose tokenizer meshlm may not read
  // (not GPT-2 style); then it is as if there were none, and the sizes are checked.
  try {
    return load_tokenizer(model_dir);
  } catch (const UserError&) {
    return nullptr;
  }
}

std::optional<TokenizerIdentity> model_tokenizer_identity(const fs::path& model_dir) {
  auto tok = load_model_tokenizer(model_dir);
  if (!tok) return std::nullopt;
  return TokenizerIdentity::of(*tok, model_dir.string());
}

void check_tokenizer_identity(const TokenizerIdentity& data, const std::optional<TokenizerIdentity>& model,
                              int64_t model_vocab_size, const std::string& model_role, bool allow_mismatch) {
  if (data.vocab_size > model_vocab_size)
    throw UserError(cat("data ", data.source, " has a vocabulary of ", data.vocab_size, " but the model (",
                        model_role, ") only ", model_vocab_size));
  if (!model || allow_mismatch || data.same_tokenizer(*model)) return;
  throw UserError(cat("the data and the model were tokenized differently: data has ", data.describe(), ", model (",
                      model_role, ") has ", model->describe(), "; re-encode the text with `meshlm prepare --tokenizer-from ",
                      model->source, "`, or pass --allow-tokenizer-mismatch"));
}

SpecialTokenIds special_token_ids(const Tokenizer& tok) {
  auto widen = [](std::optional<int32_t> v) { return v ? std::optional<int64_t>(*v) : std::nullopt; };
  return {widen(tok.bos_id()), widen(tok.eos_id())};
}

}  // namespace meshlm
