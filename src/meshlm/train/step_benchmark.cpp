#include "meshlm/train/step_benchmark.hpp"

#include <algorithm>
#include <fstream>

#include "meshlm/core/buffer.hpp"
#include "meshlm/core/device.hpp"
#include "meshlm/core/process_memory.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/optim/clip.hpp"
#include "meshlm/optim/optimizer.hpp"

namespace meshlm {

double StepBenchmark::median_ms() const {
  std::vector<double> s = ms;
  std::sort(s.begin(), s.end());
  return s.empty() ? 0.0 : s[s.size() / 2];
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double load = -1;
  if (!(f >> load)) return -1;
  return load;
}

StepBenchmark run_step_benchmark(const RunConfig& cfg, Precision precision, int steps, int warmup, bool profile,
                                 Device device) {
  const GPTConfig& m = cfg.model;
  StepBenchmark r;
  r.B = cfg.train.micro_batch;
  r.T = cfg.train.T(m);
  KernelProfile kernel_profile;
  GPT model(m, r.B, r.T, device, nullptr, StageSpec::whole(), parse_recompute(cfg.train.recompute), precision,
            profile ? &kernel_profile : nullptr);
  const size_t n = model.num_params();
  Buffer params(device, DType::f32, n), grads(device, DType::f32, n);
  {
    std::vector<float> host(n);
    init_params(model.layout(), m, uint64_t(cfg.train.seed), host);
    copy_bytes(params.raw(), device, host.data(), Device::cpu, n * sizeof(float));
  }
  auto opt = make_optimizer(cfg.optim, n, device);
  auto ranges = param_ranges(model.layout(), cfg.optim.decay_embeddings);
  std::vector<int32_t> x(size_t(r.B * r.T)), y(size_t(r.B * r.T));
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = int32_t((i * 7919 + 13) % size_t(m.vocab_size));
    y[i] = int32_t((i * 104729 + 7) % size_t(m.vocab_size));
  }
  for (const auto& v : model.layout().views()) r.params += int64_t(v.numel);
  const double tokens = double(r.B * r.T), N = double(r.params), L = double(m.n_layer), H = double(m.n_head),
               Q = double(m.head_size()), T = double(r.T);
  r.flops_palm = (6 * N + 12 * L * H * Q * T) * tokens;
  r.flops_llmc = (6 * N + 6 * L * double(m.n_embd) * T) * tokens;
  r.load_before = load_average();
  for (int s = 0; s < warmup + steps; ++s) {
    if (s == warmup) {
      kernel_profile.reset();
      r.optimizer_s = r.clip_s = 0;
    }
    Timer t;
    grads.zero();
    r.loss = model.forward(params.data<float>(), x.data(), y.data(), r.B, r.T);
    model.backward(params.data<float>(), grads.data<float>());
    Timer clip;
    clip_grad_norm(grads.data<float>(), n, float(cfg.train.grad_clip > 0 ? cfg.train.grad_clip : 1e30));
    r.clip_s += clip.seconds();
    Timer step;
    opt->step(params.data<float>(), grads.data<float>(), ranges, float(cfg.train.lr));
    device_synchronize(device);  // GPU kernels are queued: the step ends when they are done
    r.optimizer_s += step.seconds();
    if (s >= warmup) r.ms.push_back(t.ms());
    r.device_memory_bytes = std::max(r.device_memory_bytes, device_memory_in_use(device));
  }
  r.load_after = load_average();
  r.peak_rss_bytes = peak_rss_bytes();
  if (profile) r.ops = kernel_profile.ops();
  return r;
}

}  // namespace meshlm
