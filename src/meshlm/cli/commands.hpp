#pragma once
// Each command lives in its own file and registers itself on the CLI app: it adds a
// subcommand with its options and returns the function that runs it once parsed.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "meshlm/train/run_config.hpp"

namespace meshlm {

using CommandRunner = std::function<int()>;
struct Command {
  CLI::App* app;
  CommandRunner run;
};

Command register_train(CLI::App& app);
Command register_prepare(CLI::App& app);
Command register_eval(CLI::App& app);
Command register_generate(CLI::App& app);
Command register_keys(CLI::App& app);
Command register_bench(CLI::App& app);
Command register_verify(CLI::App& app);
Command register_supervise(CLI::App& app);  // cli/supervisor.cpp

// Turns leftover arguments "--a.b v" / "--a.b=v" into (key, value) pairs; anything else is a UserError.
Overrides parse_overrides(const std::vector<std::string>& args);

}  // namespace meshlm
