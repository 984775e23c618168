#include "meshlm/train/step_benchmark.hpp"

#include <algorithm>
#include <fstream>
#include <memory>

#include "meshlm/core/device.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/process_memory.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/train/trainer.hpp"

namespace meshlm {

namespace {

// Tokens for the benchmark: a fixed pseudo-random sequence over the whole vocabulary, enough
// windows for every sample of the run and one validation window.
class SyntheticTokens final : public TokenSource {
 public:
  SyntheticTokens(int64_t vocab, int64_t train_tokens, int64_t val_tokens)
      : vocab_(vocab), train_(train_tokens), val_(val_tokens), tokenizer_(make_byte_tokenizer()) {}
  int64_t size(Split s) const override { return s == Split::train ? train_ : val_; }
  int64_t vocab_size() const override { return vocab_; }
  void read(Split s, int64_t offset, int64_t n, int32_t* out) const override {
    const int64_t base = s == Split::train ? 0 : train_;
    for (int64_t i = 0; i < n; ++i) out[i] = int32_t((uint64_t(base + offset + i) * 7919 + 13) % uint64_t(vocab_));
  }
  // The benchmark never writes a checkpoint; a tokenizer is only what the interface asks for.
  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  std::string description() const override { return "synthetic tokens"; }

 private:
  int64_t vocab_, train_, val_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace

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

StepBenchmark run_step_benchmark(const RunConfig& config, Precision precision, int steps, int warmup, bool profile,
                                 Device device) {
  RunConfig cfg = config;
  cfg.train.precision = precision;
  cfg.train.device = device;
  cfg.train.steps = std::max<int64_t>(cfg.train.steps, warmup + steps);
  const GPTConfig& m = cfg.model;
  StepBenchmark r;
  r.B = cfg.train.micro_batch;
  r.T = cfg.train.T(m);
  const int64_t tokens_per_step = r.B * r.T * cfg.train.grad_accum;
  const SyntheticTokens data(m.vocab_size, tokens_per_step * (warmup + steps) + 1, r.T + 1);
  KernelProfile kernel_profile;
  Trainer trainer(cfg, data, nullptr, profile ? &kernel_profile : nullptr);
  for (const auto& v : trainer.global_layout().views()) r.params += int64_t(v.numel);
  const double tokens = double(tokens_per_step), N = double(r.params), L = double(m.n_layer),
               H = double(m.n_head), Q = double(m.head_size()), T = double(r.T);
  r.flops_palm = (6 * N + 12 * L * H * Q * T) * tokens;
  r.flops_llmc = (6 * N + 6 * L * double(m.n_embd) * T) * tokens;
  r.load_before = load_average();
  for (int s = 0; s < warmup + steps; ++s) {
    if (s == warmup) {
      kernel_profile.reset();
      r.update_s = r.norm_s = 0;
    }
    Timer t;
    const StepStats st = trainer.step();
    device_synchronize(device);  // GPU kernels are queued: the step ends when they are done
    if (s >= warmup) r.ms.push_back(t.ms());
    r.loss = st.loss;
    r.update_s += st.update_ms * 1e-3;
    r.norm_s += st.norm_ms * 1e-3;
    r.device_memory_bytes = std::max(r.device_memory_bytes, device_memory_in_use(device));
  }
  r.load_after = load_average();
  r.peak_rss_bytes = peak_rss_bytes();
  if (profile) r.ops = kernel_profile.ops();
  return r;
}

}  // namespace meshlm
