// meshlm's command line. This is where errors become exit codes (core/exit_codes.hpp): a user's
// mistake (UserError, bad arguments) prints one "error: ..." line and exits 2; a bug
// (InternalError or anything else) prints its context and exits 3. Under MPI, an error one rank
// meets alone mid-run ends the whole job from train_command.cpp (job_abort.hpp) instead.
#include <cstdio>
#include <exception>
#include <vector>

#include "meshlm/cli/commands.hpp"
#include "meshlm/cli/mpirun_launcher.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/exit_codes.hpp"

int main(int argc, char** argv) {
  using namespace meshlm;
  set_command_line(argc, argv);
  CLI::App app{"meshlm: train GPT language models on a device mesh", "meshlm"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "meshlm 0.1.0");
  std::vector<Command> commands = {register_prepare(app), register_train(app), register_eval(app),
                                   register_generate(app), register_keys(app), register_bench(app),
                                   register_verify(app), register_supervise(app)};

  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
      throw UserError(e.what());
    }
    for (const Command& c : commands)
      if (*c.app) return c.run();
    return kExitOk;
  } catch (const UserError& e) {
    std::fflush(stdout);
    // Under mpirun every rank meets the same mistake: rank 0 reports it.
    if (launched_rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    return kExitUserError;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", e.what());
    return kExitInternalError;
  }
}
