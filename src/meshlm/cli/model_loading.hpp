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
  std::unique_ptr<Tokenizer> tokenizer;  // null when the directory has no tokenizer.json
};

ModelForInference load_model_for_inference(const std::filesystem::path& path);
// UserError if the data was tokenized differently from the model's training data.
void check_tokenizer_matches(const ModelForInference& m, const Tokenizer& data_tokenizer, const std::string& data);

}  // namespace meshlm
