#pragma once
// `--config X` for train and bench: X is a TOML file, or the name of a shipped config
// ("tiny" or "tiny.toml"), looked up from any working directory.
#include <string>

#include "meshlm/train/run_config.hpp"

namespace meshlm {

struct ConfigText {
  std::string source;  // what error messages call it: the file read, or "configs/tiny.toml (built in)"
  std::string text;    // the TOML
};

// The first of: X as a path; configs/X.toml under the working directory; configs installed
// next to the program (<prefix>/share/meshlm/configs/X.toml for <prefix>/bin/meshlm); the
// configs compiled into the program. UserError naming the names that exist when none is found.
ConfigText find_config(const std::string& name_or_path);
// find_config, then apply_toml_text over cfg.
void apply_config(RunConfig& cfg, const std::string& name_or_path);

}  // namespace meshlm
