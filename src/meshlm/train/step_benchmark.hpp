#pragma once
// The training-step benchmark behind `meshlm bench`: the Trainer's step (the one `meshlm
// train` runs: forward, backward, gradient norm and clipping, the optimizer step) of one
// process on synthetic tokens (a fixed pseudo-random sequence), timed step by step after
// warm-up, with the FLOP counts of ../shared/bench-configs.md and the machine's load around
// the run.
#include <cstdint>
#include <vector>

#include "meshlm/core/device.hpp"
#include "meshlm/core/precision.hpp"
#include "meshlm/kernels/profile.hpp"
#include "meshlm/train/run_config.hpp"

namespace meshlm {

struct StepBenchmark {
  int64_t params = 0;  // counted once (tied head), positions included, layout padding excluded
  int64_t B = 0, T = 0;
  std::vector<double> ms;  // timed steps, in order
  float loss = 0;          // after the last step
  double flops_palm = 0;   // per step: (6·N + 12·L·H·Q·T) · tokens
  double flops_llmc = 0;   // per step: (6·N + 6·L·C·T) · tokens
  double load_before = 0, load_after = 0;  // 1-minute load average of the machine
  int64_t peak_rss_bytes = 0;  // the process's peak resident memory after the last step
  // GPU: the device memory in use after each step, at its largest (the run allocates nothing
  // during a step after the first, so this is the peak); 0 on the CPU.
  int64_t device_memory_bytes = 0;
  // With profiling: kernel time per op over the timed steps. Always: the time of the global
  // gradient norm and of the update (clip scaling, optimizer step) over the timed steps.
  std::vector<OpTime> ops;
  double update_s = 0, norm_s = 0;

  double median_ms() const;
  double tokens_per_s() const { return double(B * T) / median_ms() * 1e3; }
};

// Runs `warmup` + `steps` training steps of `cfg` (micro-batch cfg.train.micro_batch × T,
// cfg.train.grad_accum micro-batches, cfg.optim) in `precision` on `device`; `profile` times every kernel (kernels/profile.hpp; CPU kernels only:
// GPU kernels are asynchronous and the profile would time their launches).
StepBenchmark run_step_benchmark(const RunConfig& cfg, Precision precision, int steps, int warmup,
                                 bool profile = false, Device device = Device::cpu);

// The 1-minute load average (/proc/loadavg), or -1 where there is none.
double load_average();

}  // namespace meshlm
