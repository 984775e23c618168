#pragma once
// Where a trained model is read from, for `train --init-from`, `eval --checkpoint` and
// `generate --checkpoint` alike.
#include <filesystem>
#include <string_view>

namespace meshlm {

// The directory holding model.safetensors and config.json that `path` names:
//   a model directory or a checkpoint (it holds model.safetensors)   itself
//   a model.safetensors file                                         its directory
//   a run directory without a final model                            its latest checkpoint
//   a checkpoints/ directory                                         its latest checkpoint
//   a checkpoints/latest or checkpoints/best pointer file            the checkpoint it names
// A checkpoint with a manifest must verify against it (checkpoint_manifest.hpp).
// UserError naming `option`, the path and what was expected otherwise.
std::filesystem::path resolve_model_dir(const std::filesystem::path& path, std::string_view option);

}  // namespace meshlm
