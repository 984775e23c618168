#include "meshlm/train/config_lookup.hpp"

#include <filesystem>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/train/builtin_configs.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

// "tiny", "tiny.toml" and "configs/tiny.toml" (as the docs write it, from any directory) name
// the same config; another path names none.
std::string config_name(const std::string& arg) {
  const fs::path p = fs::path(arg).lexically_normal();
  const bool in_configs = p.parent_path() == "configs";
  if (!p.has_parent_path() || in_configs) {
    if (p.extension() == ".toml") return p.stem().string();
    if (!in_configs) return arg;
  }
  return "";
}

std::string builtin_names() {
  std::string names;
  for (const BuiltinConfig& c : builtin_configs()) names += cat(names.empty() ? "" : ", ", c.name);
  return names;
}

// The directory of the running program, if the system says.
fs::path program_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path();
}

}  // namespace

ConfigText find_config(const std::string& arg) {
  std::error_code ec;
  if (fs::exists(arg, ec)) return {arg, read_file(arg, "config file")};  // a directory is refused there
  const std::string name = config_name(arg);
  if (name.empty()) throw UserError(cat("--config ", arg, ": config file not found"));
  const fs::path file = fs::path(name + ".toml");
  std::vector<fs::path> dirs = {"configs"};
  if (const fs::path dir = program_dir(); !dir.empty()) dirs.push_back(dir / installed_configs_dir());
  for (const fs::path& dir : dirs)
    if (fs::is_regular_file(dir / file, ec)) {
      const fs::path found = (dir / file).lexically_normal();
      return {found.string(), read_file(found, "config file")};
    }
  for (const BuiltinConfig& c : builtin_configs())
    if (c.name == name) return {cat("configs/", name, ".toml (built in)"), std::string(c.text)};
  throw UserError(cat("--config ", arg, ": not found as a file nor as a config name (names: ", builtin_names(), ")"));
}

void apply_config(RunConfig& cfg, const std::string& name_or_path) {
  const ConfigText found = find_config(name_or_path);
  apply_toml_text(cfg, found.text, found.source);
}

}  // namespace meshlm
