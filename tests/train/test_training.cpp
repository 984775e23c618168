#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/window_sampler.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/trainer.hpp"
#include "training_data.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_data::kjv_text;
using testing_data::temp_dir;
using testing_data::tiny_config;

// Entropy (nats) of the byte distribution of the validation part: the lowest cross-entropy a
// model that ignores context can reach on it.
double unigram_entropy(const std::string& bytes) {
  std::vector<double> count(256, 0.0);
  for (unsigned char c : bytes) count[c] += 1;
  double h = 0;
  for (double c : count)
    if (c > 0) h -= c / double(bytes.size()) * std::log(c / double(bytes.size()));
  return h;
}

TEST(Training, TinyModelLearnsTheKingJamesBibleBeyondUnigramStatistics) {
  RunConfig cfg = tiny_config();
  cfg.train.steps = 500;
  cfg.train.warmup_steps = 50;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  const std::string text = read_file(kjv_text(), "kjv");
  const double h = unigram_entropy(text.substr(size_t(data->size(Split::train))));
  Trainer trainer(cfg, *data);
  const float start = trainer.evaluate().loss;
  for (int64_t s = 0; s < cfg.train.steps; ++s) trainer.step();
  const float end = trainer.evaluate().loss;
  std::printf("val loss %.3f -> %.3f nats; unigram entropy of the validation bytes %.3f nats\n", start, end, h);
  EXPECT_NEAR(start, std::log(256.0), 0.2);  // starts as a uniform guess
  // A model that ignores context cannot beat the unigram entropy (~3.0 nats for this text);
  // 25% below it means the model predicts from context (words, spelling, verse structure).
  EXPECT_LT(end, 0.75 * h);
}

TEST(Training, SameSeedGivesBitIdenticalParameters) {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 2;
  cfg.train.micro_batch = 4;
  cfg.train.grad_accum = 2;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  auto run = [&](int64_t seed) {
    RunConfig c = cfg;
    c.train.seed = seed;
    Trainer t(c, *data);
    for (int i = 0; i < 5; ++i) t.step();
    return std::vector<float>(t.params().begin(), t.params().end());
  };
  std::vector<float> a = run(1), b = run(1), c = run(2);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  EXPECT_NE(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float)));
}

TEST(TokenSource, RejectsMissingAndEmptyFilesAndTooShortData) {
  fs::path dir = temp_dir();
  EXPECT_THROW(open_token_source(dir / "missing.txt", 0.1), UserError);
  std::ofstream(dir / "empty.txt").close();
  EXPECT_THROW(open_token_source(dir / "empty.txt", 0.1), UserError);
  std::ofstream(dir / "short.txt") << "hello world";
  auto data = open_token_source(dir / "short.txt", 0.1);
  RunConfig cfg = tiny_config();
  EXPECT_THROW(Trainer(cfg, *data), UserError);  // fewer tokens than one block
  fs::create_directories(dir / "not_prepared");
  EXPECT_THROW(open_token_source(dir / "not_prepared", 0.1), UserError);
}

TEST(WindowSampler, EachEpochVisitsEveryWindowOnceInASeededOrder) {
  for (int64_t W : {1, 2, 7, 64, 1000}) {
    WindowSampler s(5, W), same(5, W), other(6, W);
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      std::vector<int> seen(size_t(W), 0);
      for (int64_t i = 0; i < W; ++i) {
        const int64_t w = s.window(epoch * W + i);
        ASSERT_GE(w, 0);
        ASSERT_LT(w, W);
        ++seen[size_t(w)];
        EXPECT_EQ(w, same.window(epoch * W + i));
      }
      for (int c : seen) EXPECT_EQ(c, 1);
    }
  }
  WindowSampler a(5, 1000), b(6, 1000);
  int differ = 0, epochs_differ = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    differ += a.window(i) != b.window(i);
    epochs_differ += a.window(i) != a.window(1000 + i);
  }
  EXPECT_GT(differ, 900);         // another seed, another order
  EXPECT_GT(epochs_differ, 900);  // each epoch reshuffles
}

TEST(RunConfig, OverridesAndErrors) {
  RunConfig cfg = tiny_config();
  apply_override(cfg, "model.n_layer", "2");
  apply_override(cfg, "train.lr", "3e-4");
  apply_override(cfg, "optim.nesterov", "true");
  EXPECT_EQ(cfg.model.n_layer, 2);
  EXPECT_DOUBLE_EQ(cfg.train.lr, 3e-4);
  EXPECT_TRUE(cfg.optim.nesterov);
  EXPECT_THROW(apply_override(cfg, "model.n_layers", "2"), UserError);
  EXPECT_THROW(apply_override(cfg, "model.n_layer", "two"), UserError);
  EXPECT_THROW(apply_toml_text(cfg, "[model]\nn_embd = 'wide'\n", "t.toml"), UserError);
  EXPECT_THROW(apply_toml_text(cfg, "[train]\nfoo = 1\n", "t.toml"), UserError);
  EXPECT_THROW(apply_toml_text(cfg, "[model\n", "t.toml"), UserError);
  cfg.model.n_head = 5;
  EXPECT_THROW(cfg.validate(), UserError);
}

// grad_accum micro-batches of B equal one batch of grad_accum·B: the same windows are drawn
// (global sample indices do not depend on the split into micro-batches) and gradients average.
TEST(Training, GradientAccumulationEqualsOneBigBatch) {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 2;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  auto run = [&](int64_t B, int64_t accum) {
    RunConfig c = cfg;
    c.train.micro_batch = B;
    c.train.grad_accum = accum;
    Trainer t(c, *data);
    std::vector<float> losses;
    for (int i = 0; i < 3; ++i) losses.push_back(t.step().loss);
    return std::make_pair(losses, std::vector<float>(t.params().begin(), t.params().end()));
  };
  auto [big_losses, big] = run(8, 1);
  auto [acc_losses, acc] = run(2, 4);
  for (size_t i = 0; i < big_losses.size(); ++i) EXPECT_NEAR(acc_losses[i], big_losses[i], 1e-5f * big_losses[i]);
  double diff = 0, norm = 0;
  for (size_t i = 0; i < big.size(); ++i) {
    diff += double(acc[i] - big[i]) * double(acc[i] - big[i]);
    norm += double(big[i]) * double(big[i]);
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
}

TEST(Checkpoint, TwentyStepsEqualTenThenResumeThenTenBitForBit) {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 2;
  cfg.train.micro_batch = 4;
  cfg.train.steps = 20;
  cfg.train.warmup_steps = 5;
  cfg.train.keep_checkpoints = 2;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  Trainer straight(cfg, *data);
  for (int i = 0; i < 20; ++i) straight.step();

  fs::path run = temp_dir() / "resume_run";
  fs::remove_all(run);
  {
    Trainer first(cfg, *data);
    for (int i = 0; i < 10; ++i) first.step();
    first.record_eval(first.evaluate());
    save_checkpoint(run, first, data->tokenizer(), data->description(), true);
  }
  auto latest = latest_checkpoint(run);
  ASSERT_TRUE(latest.has_value());
  CheckpointInfo info = read_checkpoint_info(*latest);
  EXPECT_EQ(info.state.step, 10);
  Trainer resumed(info.config, *data);
  load_checkpoint_into(info, resumed);
  for (int i = 0; i < 10; ++i) resumed.step();
  ASSERT_EQ(resumed.params().size(), straight.params().size());
  EXPECT_EQ(0, std::memcmp(resumed.params().data(), straight.params().data(), straight.params().size() * 4));
}

TEST(Checkpoint, KeepsTheLastKPlusTheBestAndLatestPointsToTheNewest) {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 1;
  cfg.train.micro_batch = 2;
  cfg.train.keep_checkpoints = 2;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  fs::path run = temp_dir() / "keep_run";
  fs::remove_all(run);
  Trainer t(cfg, *data);
  for (int i = 1; i <= 5; ++i) {
    t.step();
    save_checkpoint(run, t, data->tokenizer(), data->description(), /*is_best=*/i == 2);
  }
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(run / "checkpoints"))
    if (e.is_directory()) dirs.push_back(e.path().filename().string());
  std::sort(dirs.begin(), dirs.end());
  EXPECT_EQ(dirs, (std::vector<std::string>{"step_000002", "step_000004", "step_000005"}));
  EXPECT_EQ(latest_checkpoint(run)->filename(), "step_000005");
  EXPECT_EQ(read_file(run / "checkpoints" / "best", "best"), "step_000002\n");
  // A crash in the middle of the next save leaves a temporary directory behind, never a new `latest`.
  fs::create_directories(run / "checkpoints" / ".tmp.step_000006.999");
  EXPECT_EQ(latest_checkpoint(run)->filename(), "step_000005");
  EXPECT_EQ(read_checkpoint_info(*latest_checkpoint(run)).state.step, 5);
}

TEST(Checkpoint, CorruptOrMissingFilesAreUserErrors) {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 1;
  cfg.train.micro_batch = 2;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  fs::path run = temp_dir() / "corrupt_run";
  fs::remove_all(run);
  Trainer t(cfg, *data);
  t.step();
  fs::path dir = save_checkpoint(run, t, data->tokenizer(), data->description(), false);
  {
    std::ofstream(dir / "trainer_state.json") << "{\"format\": ";
    EXPECT_THROW(read_checkpoint_info(dir), UserError);
  }
  fs::path dir2 = save_checkpoint(run, t, data->tokenizer(), data->description(), false);  // same step: rewritten
  CheckpointInfo info = read_checkpoint_info(dir2);
  fs::resize_file(dir2 / "optimizer.safetensors", 100);
  Trainer fresh(cfg, *data);
  EXPECT_THROW(load_checkpoint_into(info, fresh), UserError);
  fs::remove(dir2 / "model.safetensors");
  EXPECT_THROW(load_checkpoint_into(info, fresh), UserError);
  EXPECT_THROW(resolve_checkpoint(temp_dir() / "no_such_run"), UserError);
}

TEST(Training, EarlyStoppingCountsEvaluationsWithoutImprovement) {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 1;
  cfg.train.patience = 2;
  cfg.train.min_delta = 0.01;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  Trainer t(cfg, *data);
  EXPECT_TRUE(t.record_eval({1, 3.0f, 0}));
  EXPECT_FALSE(t.record_eval({2, 2.995f, 0}));  // better, but by less than min_delta
  EXPECT_FALSE(t.should_stop_early());
  EXPECT_TRUE(t.record_eval({3, 2.9f, 0}));
  EXPECT_FALSE(t.record_eval({4, 3.1f, 0}));
  EXPECT_FALSE(t.record_eval({5, 3.2f, 0}));
  EXPECT_TRUE(t.should_stop_early());
  EXPECT_EQ(t.state().best_step, 3);
  EXPECT_FLOAT_EQ(t.state().best_val_loss, 2.9f);
}

}  // namespace
}  // namespace meshlm
