#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "meshlm/cli/commands.hpp"
#include "meshlm/cli/model_loading.hpp"
#include "meshlm/cli/mpirun_launcher.hpp"
#include "meshlm/cli/tensor_parallel_inference.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/model/generate.hpp"
#include "meshlm/model/gpt.hpp"

namespace meshlm {

namespace {

struct GenerateArgs {
  std::string checkpoint, prompt;
  int64_t max_new_tokens = 200, tp = 1, nproc = 0;
  std::string device = "cpu";
  SamplingOptions sampling;
};

int run_generate(GenerateArgs a) {
  if (a.nproc > 0 && !launched_by_mpi()) {
    std::vector<std::string> rest = command_line_without_nproc();
    if (!command_line_has("--tp")) rest.insert(rest.end(), {"--tp", std::to_string(a.nproc)});
    return run_under_mpirun(int(a.nproc), rest);
  }
  const Device device = inference_device(a.device);
  InferenceGroup group = make_inference_group(a.tp, device);
  ModelForInference m = load_model_for_inference(a.checkpoint);
  if (!m.tokenizer)
    throw UserError(cat(m.dir.string(), " has no tokenizer (meshlm_tokenizer.json, or GPT-2 style vocab.json + merges.txt or tokenizer.json): generate needs one to read the prompt"));
  if (a.max_new_tokens < 0) throw UserError(cat("--max-new-tokens must not be negative, got ", a.max_new_tokens));
  std::vector<int32_t> prompt;
  m.tokenizer->encode(a.prompt, prompt);
  if (prompt.empty()) {
    auto sep = m.tokenizer->document_separator();
    if (!sep) throw UserError("--prompt is empty and this tokenizer has no document separator to start from");
    prompt.push_back(*sep);
  }
  const GPTConfig& cfg = m.model.config;
  if (int64_t(prompt.size()) > cfg.n_positions && group.root())
    std::fprintf(stderr, "note: the prompt has %zu tokens, more than the model's context (%lld): it sees the last %lld\n",
                 prompt.size(), (long long)cfg.n_positions, (long long)cfg.n_positions);
  GPT gpt(cfg, 1, 1, device, group.collectives());
  const Buffer params = shard_of(gpt, m.model);
  // Every rank samples the same tokens (same logits, same seed); rank 0 prints them.
  FILE* out = group.root() ? stdout : nullptr;
  if (out) std::fprintf(out, "%s", a.prompt.c_str());
  if (out) std::fflush(out);
  // Decode the whole continuation each time and print what is new, so multi-token
  // characters appear once complete.
  std::vector<int32_t> generated;
  size_t printed = 0;
  Timer timer;
  generate_tokens(gpt, params.data<float>(), prompt, a.max_new_tokens, a.sampling, [&](int32_t id) {
    generated.push_back(id);
    std::string text = m.tokenizer->decode(generated);
    if (out && text.size() > printed && !utf8_error_offset(text.substr(printed))) {
      std::fwrite(text.data() + printed, 1, text.size() - printed, out);
      std::fflush(out);
      printed = text.size();
    }
    return true;
  });
  if (!out) return 0;
  const std::string text = m.tokenizer->decode(generated);
  if (text.size() > printed) std::fwrite(text.data() + printed, 1, text.size() - printed, out);
  std::printf("\n");
  std::fflush(stdout);  // the text before the statistics, also when both go to one file
  std::fprintf(stderr, "generated %zu tokens in %.2f s (%.1f tokens/s)\n", generated.size(), timer.seconds(),
               double(generated.size()) / timer.seconds());
  return 0;
}

}  // namespace

Command register_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "sample text from a trained model");
  cmd->add_option("--checkpoint", a->checkpoint, "a run directory (its final model, else its latest checkpoint), a checkpoint (checkpoints/best, checkpoints/latest, checkpoints/step_N), a model directory or its model.safetensors")->required();
  cmd->add_option("--prompt", a->prompt, "text to continue");
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "tokens to generate; past the model's context (n_positions) the window slides: each new token sees the last n_positions tokens")->capture_default_str();
  cmd->add_option("--temperature", a->sampling.temperature, "softmax temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", a->sampling.top_k, "sample among the k most likely tokens (0 = all)")->capture_default_str();
  cmd->add_option("--top-p", a->sampling.top_p, "sample among the most likely tokens holding this probability mass")->capture_default_str();
  cmd->add_option("--seed", a->sampling.seed, "sampling seed (same seed, same text)")->capture_default_str();
  cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--tp", a->tp, "tensor-parallel ranks (run under mpirun with this many processes)")->capture_default_str();
  cmd->add_option("--nproc", a->nproc, "start N processes on this machine (runs mpirun; sets --tp N)")
      ->check(CLI::PositiveNumber);
  return {cmd, [a] { return run_generate(*a); }};
}

}  // namespace meshlm
