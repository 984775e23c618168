// meshlm's command line. This is the only place where errors become exit codes:
// a user's mistake (UserError, bad arguments) prints one "error: ..." line and exits 2;
// a bug (InternalError or anything else) prints its context and exits 3.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "meshlm/cli/commands.hpp"
#include "meshlm/core/error.hpp"

int main(int argc, char** argv) {
  using namespace meshlm;
  CLI::App app{"meshlm: train GPT language models on a device mesh", "meshlm"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "meshlm 0.1.0");

  TrainArgs train;
  CLI::App* train_cmd = app.add_subcommand("train", "train a GPT on a text file (bytes as tokens)");
  train_cmd->add_option("--config", train.config, "TOML config file (configs/*.toml); defaults otherwise");
  train_cmd->add_option("--data", train.data, "text file to train on")->required();
  train_cmd->add_option("--out", train.out, "directory for model.safetensors + config.json");
  train_cmd->add_option("--init", train.init,
                        "start from a model directory (model.safetensors + config.json, ours or Hugging Face GPT-2)");
  train_cmd->footer("Any config key can be overridden: --section.key value (e.g. --model.n_layer 2 --train.lr 3e-4).");
  train_cmd->allow_extras();

  CLI::App* keys_cmd = app.add_subcommand("keys", "list every config key with its default and meaning");

  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
      throw UserError(e.what());
    }
    if (*keys_cmd) return run_keys();
    if (*train_cmd) {
      train.overrides = parse_overrides(train_cmd->remaining());
      return run_train(train);
    }
    return 0;
  } catch (const UserError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", e.what());
    return 3;
  }
}
