#include <cstdio>
#include <sstream>
#include <string>
#include <type_traits>

#include "meshlm/cli/commands.hpp"
#include "meshlm/train/run_config.hpp"

namespace meshlm {

namespace {

int run_keys() {
  RunConfig defaults;
  std::printf("| key | type | default | meaning |\n|---|---|---|---|\n");
  for (const ConfigField& f : config_fields(defaults)) {
    std::string type, value;
    std::visit(
        [&](const auto& target) {
          std::ostringstream os;
          if constexpr (std::is_same_v<std::decay_t<decltype(target)>, ChoiceRef>) {
            type = "one of " + target.names, os << '"' << target.get() << '"';
            value = os.str();
            return;
          } else {
            const auto* p = target;
            using T = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
            if constexpr (std::is_same_v<T, int64_t>)
              type = "integer", os << *p;
            else if constexpr (std::is_same_v<T, bool>)
              type = "bool", os << (*p ? "true" : "false");
            else if constexpr (std::is_same_v<T, std::string>)
              type = "string", os << '"' << *p << '"';
            else
              type = "number", os << *p;
            value = os.str();
          }
        },
        f.target);
    std::printf("| `%s` | %s | %s | %s |\n", f.key.c_str(), type.c_str(), value.c_str(), f.help.c_str());
  }
  return 0;
}

}  // namespace

Command register_keys(CLI::App& app) {
  return {app.add_subcommand("keys", "list every config key with its default and meaning"), run_keys};
}

}  // namespace meshlm
