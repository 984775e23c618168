#pragma once
// Loading a trained model for eval/generate: from a checkpoint, a run directory (its latest
// checkpoint) or a bare model directory; with the tokenizer saved beside it, if any.
#include <filesystem>
#include <memory>
#include <string>

#include "meshlm/data/tokenizer.hpp"
#include "meshlm/model/model_io.hpp"

namespace meshlm {

struct ModelForInference {
  std::filesystem::path dir;
  LoadedModel model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the directory has no tokenizer meshlm reads
};

ModelForInference load_model_for_inference(const std::filesystem::path& path);
// UserError if the data was tokenized differently from the model's training data (by the
// tokenizers' fingerprints; by vocabulary size alone when the model has no tokenizer), unless
// `allow_mismatch` (the vocabulary must fit the model regardless).
void check_tokenizer_matches(const ModelForInference& m, const Tokenizer& data_tokenizer, const std::string& data,
                             bool allow_mismatch = false);

// The directory whose tokenizer `path` means: a data directory, a model directory or a
// checkpoint holding tokenizer files, a run directory (its final model, else its latest
// checkpoint), or a model.safetensors file (its directory). UserError naming `option` if none.
std::filesystem::path tokenizer_dir_of(const std::filesystem::path& path, const std::string& option);

}  // namespace meshlm
