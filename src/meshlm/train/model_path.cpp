#include "meshlm/train/model_path.hpp"

#include <fstream>
#include <string>

#include "meshlm/core/error.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/train/checkpoint_manifest.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

constexpr const char* kExpected =
    "expected a model directory or checkpoint (with model.safetensors), a model.safetensors file, a run "
    "directory (with checkpoints/latest), or a checkpoints/latest or checkpoints/best pointer";

// The checkpoint a pointer file (one line: the checkpoint's directory name) names, beside it.
fs::path follow_pointer(const fs::path& file, std::string_view option) {
  std::ifstream in(file);
  std::string name;
  std::getline(in, name);
  while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.pop_back();
  std::error_code ec;
  if (name.empty() || name.find('/') != std::string::npos || fs::file_size(file, ec) > 256)
    throw UserError(cat(option, " ", file.string(), " is not a checkpoint pointer (one line naming a checkpoint directory)"));
  const fs::path dir = file.parent_path() / name;
  if (!fs::is_directory(dir, ec))
    throw UserError(cat(option, " ", file.string(), " points to checkpoint ", name, ", which does not exist"));
  return dir;
}

fs::path locate_model_dir(const fs::path& path, std::string_view option) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(cat(option, " ", path.string(), ": not found"));
  if (fs::is_regular_file(path, ec)) {
    if (path.filename() == kModelWeightsFile) return path.parent_path().empty() ? fs::path(".") : path.parent_path();
    if (path.filename() == "latest" || path.filename() == "best") return follow_pointer(path, option);
    throw UserError(cat(option, " ", path.string(), " is a file but not a model: ", kExpected));
  }
  if (fs::exists(path / kModelWeightsFile, ec)) return path;
  if (fs::is_regular_file(path / "checkpoints" / "latest", ec)) return follow_pointer(path / "checkpoints" / "latest", option);
  if (fs::is_regular_file(path / "latest", ec)) return follow_pointer(path / "latest", option);
  throw UserError(cat(option, " ", path.string(), " holds no model: ", kExpected));
}

}  // namespace

fs::path resolve_model_dir(const fs::path& path, std::string_view option) {
  const fs::path dir = locate_model_dir(path, option);
  require_verified(dir, cat(option, " ", dir.string()));  // a checkpoint's files must match its manifest
  return dir;
}

}  // namespace meshlm
