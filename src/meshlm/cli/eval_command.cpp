#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "meshlm/cli/commands.hpp"
#include "meshlm/cli/model_loading.hpp"
#include "meshlm/cli/mpirun_launcher.hpp"
#include "meshlm/cli/tensor_parallel_inference.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/train/evaluation.hpp"

namespace meshlm {

namespace {

struct EvalArgs {
  std::string checkpoint, data, split = "val";
  int64_t tokens = 0, batch = 8, block_size = 0, tp = 1, nproc = 0;
  std::string device = "cpu";
  bool allow_tokenizer_mismatch = false;
};

int run_eval(const EvalArgs& a) {
  if (a.nproc > 0 && !launched_by_mpi()) {
    std::vector<std::string> rest = command_line_without_nproc();
    if (!command_line_has("--tp")) rest.insert(rest.end(), {"--tp", std::to_string(a.nproc)});
    return run_under_mpirun(int(a.nproc), rest);
  }
  const Device device = inference_device(a.device);
  InferenceGroup group = make_inference_group(a.tp, device);
  ModelForInference m = load_model_for_inference(a.checkpoint);
  auto data = open_token_source(a.data, 0.1);
  check_tokenizer_matches(m, data->tokenizer(), a.data, a.allow_tokenizer_mismatch);
  const int64_t T = a.block_size > 0 ? a.block_size : m.model.config.n_positions;
  if (T > m.model.config.n_positions)
    throw UserError(cat("--block-size ", T, " exceeds the model's n_positions (", m.model.config.n_positions, ")"));
  if (a.batch <= 0) throw UserError(cat("--batch must be positive, got ", a.batch));
  // The training step's executor on one stage: the evaluation `meshlm train` runs.
  const std::unique_ptr<Communicator> alone = make_self_communicator();
  StepExecutor executor(
      [&] { return std::make_unique<GPT>(m.model.config, a.batch, T, device, group.collectives()); }, 1, *alone,
      *alone, a.batch, T, 1);
  const Buffer params = shard_of(executor.model(), m.model);
  Timer timer;
  const EvalResult r = evaluate(executor, params.data<float>(), *data, a.split == "val" ? Split::val : Split::train, T,
                                a.tokens, *alone, *alone, false);
  if (group.root())
    std::printf("%s split of %s: loss %.4f | perplexity %.3f | %lld tokens evaluated | %.1f s\n", a.split.c_str(),
              a.data.c_str(), r.loss, std::exp(r.loss), (long long)r.tokens, timer.seconds());
  return 0;
}

}  // namespace

Command register_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "loss and perplexity of a model on a data split");
  cmd->add_option("--checkpoint", a->checkpoint, "a run directory (its final model, else its latest checkpoint), a checkpoint (checkpoints/best, checkpoints/latest, checkpoints/step_N), a model directory or its model.safetensors")
      ->required();
  cmd->add_option("--data", a->data, "a data directory from `meshlm prepare`, or a text file")->required();
  cmd->add_option("--split", a->split, "val or train")->check(CLI::IsMember({"val", "train"}))->capture_default_str();
  cmd->add_option("--tokens", a->tokens, "evaluate at most this many tokens (0 = the whole split)")->capture_default_str();
  cmd->add_option("--batch", a->batch, "sequences per forward pass")->capture_default_str();
  cmd->add_option("--block-size", a->block_size, "tokens per sequence (default: the model's n_positions)");
  cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--tp", a->tp, "tensor-parallel ranks (run under mpirun with this many processes)")->capture_default_str();
  cmd->add_option("--nproc", a->nproc, "start N processes on this machine (runs mpirun; sets --tp N)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--allow-tokenizer-mismatch", a->allow_tokenizer_mismatch,
                "evaluate even if the data's tokenizer is not the model's");
  return {cmd, [a] { return run_eval(*a); }};
}

}  // namespace meshlm
