#include <omp.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "meshlm/cli/commands.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/train/byte_dataset.hpp"
#include "meshlm/train/run_config.hpp"
#include "meshlm/train/trainer.hpp"

namespace meshlm {

namespace fs = std::filesystem;

Overrides parse_overrides(const std::vector<std::string>& args) {
  Overrides out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a.find('.') == std::string::npos)
      throw UserError(cat("unexpected argument '", a, "' (config overrides look like --train.lr 3e-4)"));
    std::string key = a.substr(2);
    std::string value;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) throw UserError(cat("--", key, " needs a value"));
      value = args[++i];
    }
    out.emplace_back(key, value);
  }
  return out;
}

int run_train(const TrainArgs& args) {
  RunConfig cfg;
  if (!args.config.empty()) apply_toml_file(cfg, args.config);
  std::optional<LoadedModel> init;
  if (!args.init.empty()) {
    init = load_model(args.init);
    cfg.model = init->config;  // the model's shape comes from the pretrained directory
  }
  for (const auto& [k, v] : args.overrides) {
    if (!args.init.empty() && k.rfind("model.", 0) == 0)
      throw UserError(cat("--", k, " cannot change a model loaded with --init (its shape comes from ", args.init,
                          "/config.json)"));
    apply_override(cfg, k, v);
  }
  cfg.validate();
  if (!args.out.empty() && fs::exists(args.out) && !fs::is_directory(args.out))
    throw UserError(cat("--out ", args.out, " exists and is not a directory"));
  if (cfg.train.threads > 0) omp_set_num_threads(int(cfg.train.threads));

  const int64_t T = cfg.train.T(cfg.model);
  ByteDataset data(args.data, cfg.train.val_fraction, T);
  if (cfg.model.vocab_size < 256)
    throw UserError(cat("model.vocab_size must be at least 256 to train on bytes, got ", cfg.model.vocab_size));
  Trainer trainer(cfg, data);
  if (init) trainer.set_params(init->params);
  std::printf("meshlm train: %lld parameters, %lld layers, %lld heads, n_embd %lld, B %lld x T %lld x accum %lld, "
              "%d threads, data %lld train / %lld val bytes\n",
              (long long)trainer.model().num_params(), (long long)cfg.model.n_layer, (long long)cfg.model.n_head,
              (long long)cfg.model.n_embd, (long long)cfg.train.micro_batch, (long long)T,
              (long long)cfg.train.grad_accum, omp_get_max_threads(), (long long)data.size(Split::train),
              (long long)data.size(Split::val));
  std::fflush(stdout);

  auto report_eval = [&] {
    EvalStats e = trainer.evaluate();
    std::printf("eval step %lld | val loss %.4f | val ppl %.2f\n", (long long)e.step, e.val_loss,
                std::exp(double(e.val_loss)));
    std::fflush(stdout);
  };
  for (int64_t s = 0; s < cfg.train.steps; ++s) {
    StepStats st = trainer.step();
    if (!std::isfinite(st.loss))
      throw UserError(cat("training diverged at step ", st.step, " (loss ", st.loss, "); lower train.lr"));
    if (st.step % cfg.train.log_every == 0 || st.step == cfg.train.steps) {
      std::printf("step %lld/%lld | loss %.4f | lr %.3e | norm %.3f | %.1f ms | %.0f tok/s\n", (long long)st.step,
                  (long long)cfg.train.steps, st.loss, st.lr, st.grad_norm, st.ms, st.tokens_per_s);
      std::fflush(stdout);
    }
    if (cfg.train.eval_every > 0 && st.step % cfg.train.eval_every == 0 && st.step != cfg.train.steps) report_eval();
  }
  report_eval();
  if (!args.out.empty()) {
    save_model(args.out, cfg.model, trainer.model().layout(), trainer.params());
    std::printf("saved %s/model.safetensors and %s/config.json\n", args.out.c_str(), args.out.c_str());
  }
  return 0;
}

}  // namespace meshlm
