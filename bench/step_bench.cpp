// Training-step benchmark: forward, backward, clipping and AdamW on synthetic tokens for a
// config of shared/bench-configs.md. Prints one JSON line (for bench/compare_pytorch.sh)
// after a human-readable summary.
//   meshlm_step_bench CONFIG.toml [--threads N] [--steps N] [--warmup N] [--precision fp32|bf16|fp16]
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/optim/clip.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/train/run_config.hpp"

using namespace meshlm;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONFIG.toml [--threads N] [--steps N] [--warmup N] [--precision P]\n", argv[0]);
    return 2;
  }
  int threads = 1, steps = 10, warmup = 2;
  std::string precision = "fp32";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--warmup")) warmup = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--precision")) precision = argv[i + 1];
  }
  try {
    RunConfig cfg;
    apply_toml_file(cfg, argv[1]);
    cfg.validate();
    omp_set_num_threads(threads);
    const GPTConfig& m = cfg.model;
    const int64_t B = cfg.train.micro_batch, T = cfg.train.T(m);
    GPT model(m, B, T, Device::cpu, nullptr, StageSpec::whole(), Recompute::none, parse_precision(precision));
    std::vector<float> params(model.num_params()), grads(model.num_params());
    init_params(model.layout(), m, 1, params);
    auto opt = make_optimizer(cfg.optim, model.num_params());
    auto ranges = param_ranges(model.layout(), cfg.optim.decay_embeddings);
    std::vector<int32_t> x(size_t(B * T)), y(size_t(B * T));
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = int32_t((i * 7919 + 13) % size_t(m.vocab_size));
      y[i] = int32_t((i * 104729 + 7) % size_t(m.vocab_size));
    }
    std::vector<double> ms;
    float loss = 0;
    for (int s = 0; s < warmup + steps; ++s) {
      Timer t;
      std::fill(grads.begin(), grads.end(), 0.0f);
      loss = model.forward(params.data(), x.data(), y.data(), B, T);
      model.backward(params.data(), grads.data());
      clip_grad_norm(grads.data(), grads.size(), 1.0f);
      opt->step(params.data(), grads.data(), ranges, 3e-4f);
      if (s >= warmup) ms.push_back(t.ms());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    // Parameters counted once (tied head), positions included, padding of the layout excluded.
    double n_params = 0;
    for (const auto& v : model.layout().views()) n_params += double(v.numel);
    const double tokens = double(B * T);
    const double L = double(m.n_layer), H = double(m.n_head), Q = double(m.head_size()), Tq = double(T);
    const double flops_palm = (6 * n_params + 12 * L * H * Q * Tq) * tokens;
    const double flops_llmc = (6 * n_params + 6 * L * double(m.n_embd) * Tq) * tokens;
    std::printf("meshlm %s %s: %d threads, %.0f params, B %lld T %lld: median %.1f ms/step (min %.1f, max %.1f, %zu steps), "
                "%.0f tok/s, %.1f GFLOP/s (PaLM accounting; %.1f llm.c), loss %.4f\n",
                argv[1], precision.c_str(), threads, n_params, (long long)B, (long long)T, median, ms.front(), ms.back(), ms.size(),
                tokens / median * 1e3, flops_palm / median / 1e6, flops_llmc / median / 1e6, loss);
    std::printf("{\"system\": \"meshlm\", \"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, \"tokens_per_s\": %.1f, "
                "\"gflops_palm\": %.2f}\n",
                median, ms.front(), ms.back(), tokens / median * 1e3, flops_palm / median / 1e6);
    return 0;
  } catch (const UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
