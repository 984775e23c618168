#pragma once
#include <string>
#include <utility>
#include <vector>

namespace meshlm {

using Overrides = std::vector<std::pair<std::string, std::string>>;

// Turns leftover arguments "--a.b v" / "--a.b=v" into (key, value) pairs; anything else is a UserError.
Overrides parse_overrides(const std::vector<std::string>& args);

struct TrainArgs {
  std::string config, data, out, init;
  Overrides overrides;
};
int run_train(const TrainArgs& args);

// Prints every config key with its type, default and meaning (a Markdown table).
int run_keys();

}  // namespace meshlm
