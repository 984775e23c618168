// Training on the GPU against the CPU: the tiny config's loss curve over 50 steps, in fp32 and
// bf16, and checkpoints that move between the devices. Without a GPU (or in a build without
// CUDA) these tests report themselves as SKIPPED; what runs everywhere is the check that the
// layouts the GPU trainer does not support yet are refused with one clear UserError.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "meshlm/core/device.hpp"
#include "meshlm/model/generate.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/evaluation.hpp"
#include "meshlm/train/trainer.hpp"
#include "training_data.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_data::kjv_text;
using testing_data::temp_dir;
using testing_data::tiny_config;

struct Curve {
  std::vector<float> loss;
  float val = 0;
};

Curve train(RunConfig cfg, const TokenSource& data, int steps) {
  Trainer t(cfg, data);
  Curve c;
  for (int i = 0; i < steps; ++i) c.loss.push_back(t.step().loss);
  c.val = t.evaluate().loss;
  return c;
}

double worst_rel(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double w = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) w = std::max(w, std::abs(double(a[i]) - b[i]) / b[i]);
  return w;
}

RunConfig small_run(const std::string& device) {
  RunConfig cfg = tiny_config();
  cfg.train.micro_batch = 4;
  cfg.train.steps = 50;
  cfg.train.warmup_steps = 5;
  cfg.train.device = parse_enum(kDeviceNames, device, "device");
  return cfg;
}

class CudaTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!device_available(Device::cuda))
      GTEST_SKIP() << (built_with_cuda() ? "no CUDA GPU on this machine" : "this build has no CUDA backend");
  }
};

// The same kernels' contracts in f32 on both devices: only summation orders differ.
TEST_F(CudaTraining, FiftyTinyStepsFollowTheCpuCurveInFp32) {
  auto data = open_token_source(kjv_text(), 0.05);
  const Curve cpu = train(small_run("cpu"), *data, 50), gpu = train(small_run("cuda"), *data, 50);
  const double worst = worst_rel(gpu.loss, cpu.loss);
  std::printf("fp32: worst per-step relative loss difference %.3g; val %.6f (cpu %.6f)\n", worst, gpu.val, cpu.val);
  EXPECT_LE(worst, 1e-4);
  EXPECT_NEAR(gpu.val, cpu.val, 1e-4 * cpu.val);
}

// bf16 rounds the same operands the same way on both devices; the f32 accumulation order of
// cuBLASLt and oneDNN differs, and 50 steps of Adam amplify it. Stated tolerance: 2e-3.
TEST_F(CudaTraining, FiftyTinyStepsFollowTheCpuCurveInBf16) {
  auto data = open_token_source(kjv_text(), 0.05);
  RunConfig cpu_cfg = small_run("cpu"), gpu_cfg = small_run("cuda");
  cpu_cfg.train.precision = gpu_cfg.train.precision = Precision::bf16;
  const Curve cpu = train(cpu_cfg, *data, 50), gpu = train(gpu_cfg, *data, 50);
  const double worst = worst_rel(gpu.loss, cpu.loss);
  std::printf("bf16: worst per-step relative loss difference %.3g\n", worst);
  EXPECT_LE(worst, 2e-3);
}

// A checkpoint holds host data in the whole-model layout, whichever device wrote it: 10 steps on
// one device, saved, then 10 on the other follow 20 steps on one device.
TEST_F(CudaTraining, CheckpointsMoveBetweenGpuAndCpu) {
  auto data = open_token_source(kjv_text(), 0.05);
  for (const auto& [first, second] : {std::pair{"cuda", "cpu"}, std::pair{"cpu", "cuda"}}) {
    RunConfig cfg = small_run(first);
    cfg.train.steps = 20;
    const Curve straight = train(cfg, *data, 20);
    const fs::path run = temp_dir() / (std::string("device_resume_") + first);
    fs::remove_all(run);
    {
      Trainer t(cfg, *data);
      for (int i = 0; i < 10; ++i) t.step();
      save_checkpoint(run, t, data->tokenizer(), data->description(), true);
    }
    CheckpointInfo info = read_checkpoint_info(*latest_checkpoint(run));
    info.config.train.device = parse_enum(kDeviceNames, second, "device");
    Trainer resumed(info.config, *data);
    load_checkpoint_into(info, resumed);
    std::vector<float> tail;
    for (int i = 0; i < 10; ++i) tail.push_back(resumed.step().loss);
    const std::vector<float> want(straight.loss.begin() + 10, straight.loss.end());
    EXPECT_LE(worst_rel(tail, want), 1e-4) << first << " -> " << second;
  }
}

// The same weights on both devices: the validation loss agrees to f32 summation order and greedy
// decoding (KV cache on the GPU, logits brought back per token) picks the same tokens.
TEST_F(CudaTraining, EvaluationAndGreedyGenerationMatchTheCpu) {
  auto data = open_token_source(kjv_text(), 0.05);
  const RunConfig cfg = small_run("cpu");
  const GPTConfig& mc = cfg.model;
  const std::unique_ptr<Communicator> alone = make_self_communicator();
  auto executor_on = [&](Device d) {
    return StepExecutor([&] { return std::make_unique<GPT>(mc, 4, 64, d); }, 1, *alone, *alone, 4, 64, 1);
  };
  StepExecutor on_cpu = executor_on(Device::cpu), on_gpu = executor_on(Device::cuda);
  GPT &cpu_model = on_cpu.model(), &gpu_model = on_gpu.model();
  std::vector<float> host(cpu_model.num_params());
  init_params(cpu_model.layout(), mc, 1234, host);
  Buffer dev(Device::cuda, DType::f32, host.size());
  copy_bytes(dev.raw(), Device::cuda, host.data(), Device::cpu, host.size() * sizeof(float));
  const EvalResult a = evaluate(on_cpu, host.data(), *data, Split::val, 64, 4096, *alone, *alone, false);
  const EvalResult b = evaluate(on_gpu, dev.data<float>(), *data, Split::val, 64, 4096, *alone, *alone, false);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NEAR(b.loss, a.loss, 1e-5 * a.loss);
  SamplingOptions greedy;
  greedy.temperature = 0;
  const std::vector<int32_t> prompt = {10, 20, 30, 40, 50};
  EXPECT_EQ(generate_tokens(gpu_model, dev.data<float>(), prompt, 40, greedy),
            generate_tokens(cpu_model, host.data(), prompt, 40, greedy));
}

TEST(CudaTrainingLayouts, UnsupportedGpuLayoutsAreUserErrors) {
  auto data = open_token_source(kjv_text(), 0.05);
  RunConfig cfg = small_run("cuda");
  try {
    Trainer t(cfg, *data);
    if (!device_available(Device::cuda)) FAIL() << "a trainer on a missing GPU was built";
  } catch (const UserError& e) {
    EXPECT_FALSE(device_available(Device::cuda)) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
  }
  if (!device_available(Device::cuda)) return;
  RunConfig zero3 = cfg;
  zero3.parallel.zero = 3;
  EXPECT_THROW(Trainer(zero3, *data), UserError);
  RunConfig sgd = cfg;
  sgd.optim.name = OptimizerKind::sgd;
  EXPECT_THROW(Trainer(sgd, *data), UserError);
}

}  // namespace
}  // namespace meshlm
