#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "meshlm/core/error.hpp"
#include "meshlm/model/memory_estimate.hpp"
#include "meshlm/model/param_spec.hpp"

namespace meshlm {
namespace {

uint64_t spec_total(const GPTConfig& cfg) {
  uint64_t n = 0;
  for (const auto& s : gpt_param_specs(cfg)) n += uint64_t(s.numel());
  return n;
}

TEST(MemoryEstimate, ParameterCountIsTheSpecTables) {
  GPTConfig small;
  EXPECT_EQ(gpt_parameter_count(small), spec_total(small));
  const GPTConfig gpt2{.vocab_size = 50257, .n_positions = 1024, .n_embd = 768, .n_layer = 12, .n_head = 12};
  EXPECT_EQ(gpt_parameter_count(gpt2), 124'439'808u);  // GPT-2 small, as Hugging Face counts it
  EXPECT_EQ(gpt_parameter_count(gpt2), spec_total(gpt2));
}

TEST(MemoryEstimate, HostileSizesSaturateInsteadOfOverflowing) {
  const GPTConfig huge{.vocab_size = 256, .n_positions = INT64_MAX, .n_embd = INT64_MAX, .n_layer = INT64_MAX, .n_head = 1};
  EXPECT_EQ(gpt_parameter_count(huge), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(estimate_model_memory(huge, {.training = true}), std::numeric_limits<uint64_t>::max());
  EXPECT_THROW(huge.validate(), UserError);
  const GPTConfig wide{.n_embd = int64_t(1) << 40, .n_head = 1};  // 12 * 2^80 parameters per layer
  EXPECT_THROW(wide.validate(), UserError);
  EXPECT_EQ(format_bytes(std::numeric_limits<uint64_t>::max()), "more than 16 EiB");
  EXPECT_EQ(format_bytes(3ull << 30), "3.0 GiB");
}

TEST(MemoryEstimate, TrainingNeedsWeightsGradientsAndMomentsShardedByZero) {
  const GPTConfig cfg;
  const uint64_t p = gpt_parameter_count(cfg);
  const ModelWorkload infer{.batch = 1, .seq_len = 1};
  const uint64_t activations = estimate_model_memory(cfg, infer) - 4 * p;
  EXPECT_EQ(activations, 4u * uint64_t(cfg.n_embd + cfg.vocab_size));
  ModelWorkload train{.training = true, .batch = 1, .seq_len = 1};
  const uint64_t whole = estimate_model_memory(cfg, train);
  EXPECT_GE(whole, 16 * p);
  train.zero_shards = 4;
  train.zero_stage = 3;
  EXPECT_LT(estimate_model_memory(cfg, train), whole / 3);
}

TEST(MemoryEstimate, RefusesWhatNoMachineHolds) {
  const GPTConfig cfg{.n_embd = 1 << 20, .n_layer = 1000, .n_head = 16};
  try {
    check_model_fits_memory(cfg, {.training = true}, Device::cpu, "the test's model");
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("the test's model needs at least "), std::string::npos) << msg;
    EXPECT_NE(msg.find("but this machine has "), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(check_model_fits_memory(GPTConfig{}, {.training = true}, Device::cpu, "a tiny model"));
}

}  // namespace
}  // namespace meshlm
