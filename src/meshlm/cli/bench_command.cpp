// `meshlm bench`: training-step speed of a config on this machine, with model FLOP/s, MFU
// against the matrix-product peak measured here and now, the machine's load, and with
// --profile the time of every kernel.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "meshlm/cli/commands.hpp"
#include "meshlm/core/device.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cpu/gemm.hpp"
#include "meshlm/train/bench_quietness.hpp"
#include "meshlm/train/config_lookup.hpp"
#include "meshlm/train/step_benchmark.hpp"

namespace meshlm {

namespace {

struct BenchArgs {
  std::string config, precision = "fp32", device = "cpu";
  int threads = 0, steps = 10, warmup = 2;
  double peak_tflops = 0;
  bool profile = false;
  Overrides overrides;
};

// H100 SXM's dense peaks (NVIDIA's data sheet): tensor cores for bf16/fp16, CUDA cores for fp32
// (the fp32 path does not use TF32).
double default_gpu_peak_tflops(Precision p) { return p == Precision::fp32 ? 67.0 : 989.0; }

// The GPU run: the same steps and FLOP accounting; MFU against the data-sheet peak (or
// --peak-tflops), memory as the GPU's own.
int run_device_bench(const BenchArgs& a, const RunConfig& cfg, Precision precision, Device device) {
  if (a.profile) throw UserError("--profile times CPU kernels only (GPU kernels run asynchronously)");
  const StepBenchmark r = run_step_benchmark(cfg, precision, a.steps, a.warmup, false, device);
  const double median = r.median_ms();
  const double palm = r.flops_palm / median / 1e9, llmc = r.flops_llmc / median / 1e9;  // TFLOP/s
  const double peak = a.peak_tflops > 0 ? a.peak_tflops : default_gpu_peak_tflops(precision);
  const auto [lo, hi] = std::minmax_element(r.ms.begin(), r.ms.end());
  const double gpu_mib = double(r.device_memory_bytes) / (1 << 20), rss_mib = double(r.peak_rss_bytes) / (1 << 20);
  std::printf("meshlm bench: %s (%.1f M parameters, B %lld x T %lld), %s, on %s\n", a.config.c_str(),
              double(r.params) / 1e6, (long long)r.B, (long long)r.T, std::string(precision_name(precision)).c_str(),
              device_description(device).c_str());
  std::printf("step: median %.2f ms (min %.2f, max %.2f over %zu steps after %d warm-up), %.0f tokens/s, loss %.4f\n",
              median, *lo, *hi, r.ms.size(), a.warmup, r.tokens_per_s(), r.loss);
  const BenchQuietness quiet = judge_quietness(r.ms, -1, -1, 1);  // the host's load says little about a GPU
  std::printf("step spread %.1f%%: %s\n", 100 * quiet.spread, quiet.verdict.c_str());
  std::printf("GPU memory in use: %.0f MiB (the whole GPU, all processes); host: %.0f MiB resident\n", gpu_mib,
              rss_mib);
  std::printf("model FLOP/s: %.1f TFLOP/s (PaLM accounting); %.1f (llm.c) -> MFU %.1f%% of %.0f TFLOP/s%s\n", palm,
              llmc, 100 * palm / peak, peak, a.peak_tflops > 0 ? "" : " (H100 SXM data sheet, dense)");
  std::printf("{\"system\": \"meshlm\", \"device\": \"%s\", \"precision\": \"%s\", \"median_ms\": %.3f, "
              "\"min_ms\": %.3f, \"max_ms\": %.3f, \"tokens_per_s\": %.1f, \"gflops_palm\": %.1f, "
              "\"gflops_llmc\": %.1f, \"peak_gflops\": %.1f, \"mfu\": %.4f, \"peak_gpu_mib\": %.1f, "
              "\"peak_rss_mib\": %.1f, \"spread\": %.4f, \"disturbed\": %s}\n",
              std::string(device_name(device)).c_str(), std::string(precision_name(precision)).c_str(), median, *lo,
              *hi, r.tokens_per_s(), palm * 1e3, llmc * 1e3, peak * 1e3, palm / peak, gpu_mib, rss_mib, quiet.spread,
              quiet.disturbed ? "true" : "false");
  return 0;
}

int run_bench(const BenchArgs& a) {
  RunConfig cfg;
  apply_config(cfg, a.config);
  for (const auto& [k, v] : a.overrides) apply_override(cfg, k, v);
  cfg.validate();
  const Precision precision = parse_precision(a.precision, "--precision");
  const int threads = a.threads > 0 ? a.threads : omp_get_num_procs();
  omp_set_num_threads(threads);
  const int cpus = int(std::thread::hardware_concurrency());
  const Device device = parse_device(a.device);
  if (device != Device::cpu) return run_device_bench(a, cfg, precision, device);
  // The peak is measured before and after the steps and the better taken: a neighbour's
  // burst during one measurement would otherwise inflate the MFU.
  const double peak_before = cpu::gemm_peak_gflops(precision);
  const StepBenchmark r = run_step_benchmark(cfg, precision, a.steps, a.warmup, a.profile);
  const double peak = std::max(peak_before, cpu::gemm_peak_gflops(precision));
  const double median = r.median_ms();
  const double palm = r.flops_palm / median / 1e6, llmc = r.flops_llmc / median / 1e6;
  const auto [lo, hi] = std::minmax_element(r.ms.begin(), r.ms.end());
  std::printf("meshlm bench: %s (%.1f M parameters, B %lld x T %lld), %s, %d thread%s\n", a.config.c_str(),
              double(r.params) / 1e6, (long long)r.B, (long long)r.T, std::string(precision_name(precision)).c_str(),
              threads, threads == 1 ? "" : "s");
  std::printf("step: median %.1f ms (min %.1f, max %.1f over %zu steps after %d warm-up), %.0f tokens/s, loss %.4f\n",
              median, *lo, *hi, r.ms.size(), a.warmup, r.tokens_per_s(), r.loss);
  const double peak_mib = double(r.peak_rss_bytes) / (1 << 20);
  std::printf("peak memory: %.0f MiB resident (the whole process)\n", peak_mib);
  std::printf("model FLOP/s: %.1f GFLOP/s (PaLM accounting, 6N + 12LHQT per token); %.1f (llm.c, 6N + 6LCT)\n", palm,
              llmc);
  std::printf("peak: %.1f GFLOP/s (oneDNN %s 2048^3 matmul, %d thread%s, best of before and after the steps) -> MFU %.1f%% (llm.c %.1f%%)\n",
              peak, precision == Precision::bf16 ? "bf16" : "f32", threads, threads == 1 ? "" : "s",
              100 * palm / peak, 100 * llmc / peak);
  const BenchQuietness quiet = judge_quietness(r.ms, r.load_before, r.load_after, threads);
  std::printf("load average: %.2f before, %.2f after, %d CPUs; step spread %.1f%%: %s\n", r.load_before, r.load_after,
              cpus, 100 * quiet.spread, quiet.verdict.c_str());
  if (a.profile) {
    const double steps = double(r.ms.size());
    double total = 0, kernels = 0;
    for (double m : r.ms) total += m;
    std::printf("\nprofile: time per step, mean over the %zu timed steps\n%-26s %10s %7s %8s\n", r.ms.size(), "op",
                "ms/step", "share", "calls");
    std::vector<OpTime> ops = r.ops;
    std::sort(ops.begin(), ops.end(), [](const OpTime& x, const OpTime& y) { return x.seconds > y.seconds; });
    auto row = [&](std::string_view name, double seconds, double calls) {
      std::printf("%-26.*s %10.2f %6.1f%% %8.0f\n", int(name.size()), name.data(), seconds * 1e3 / steps,
                  100 * seconds * 1e3 / total, calls / steps);
    };
    for (const OpTime& o : ops)
      if (o.calls > 0) row(o.op, o.seconds, double(o.calls)), kernels += o.seconds;
    row("optimizer step (+ clip)", r.update_s, steps);
    row("gradient norm", r.norm_s, steps);
    row("other (model glue)", total / 1e3 - kernels - r.update_s - r.norm_s, 0);
  }
  std::printf("{\"system\": \"meshlm\", \"precision\": \"%s\", \"threads\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, "
              "\"max_ms\": %.3f, \"tokens_per_s\": %.1f, \"gflops_palm\": %.2f, \"gflops_llmc\": %.2f, "
              "\"peak_gflops\": %.2f, \"mfu\": %.4f, \"peak_rss_mib\": %.1f, \"load_before\": %.2f, \"load_after\": %.2f, "
              "\"spread\": %.4f, \"disturbed\": %s}\n",
              std::string(precision_name(precision)).c_str(), threads, median, *lo, *hi, r.tokens_per_s(), palm, llmc,
              peak, palm / peak, peak_mib, r.load_before, r.load_after, quiet.spread, quiet.disturbed ? "true" : "false");
  return 0;
}

}  // namespace

Command register_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "time training steps on synthetic tokens: ms/step, tokens/s, MFU");
  cmd->add_option("--config", args->config, "a config name (tiny, small, gpt2-124M: configs/NAME.toml, from any directory) or a TOML file")
      ->required();
  cmd->add_option("--precision", args->precision, "fp32, bf16 or fp16");
  cmd->add_option("--device", args->device, "cpu (default) or cuda");
  cmd->add_option("--peak-tflops", args->peak_tflops,
                  "cuda: the GPU's peak for MFU (default: H100 SXM dense, 989 bf16/fp16, 67 fp32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", args->threads, "CPU threads (default: all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--steps", args->steps, "timed steps (the median is reported)")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", args->warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--profile", args->profile, "time every kernel, the optimizer and clipping");
  cmd->footer("Config keys can be overridden: --section.key value (e.g. --train.micro_batch 4).");
  cmd->allow_extras();
  return {cmd, [args, cmd] {
            args->overrides = parse_overrides(cmd->remaining());
            return run_bench(*args);
          }};
}

}  // namespace meshlm
