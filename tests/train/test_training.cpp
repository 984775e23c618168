#include <gtest/gtest.h>

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
#include "meshlm/train/trainer.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("meshlm_train_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// The King James Bible from the Debian package bible-kjv (installed by scripts/install-deps.sh).
fs::path kjv_text() {
  static fs::path path = [] {
    fs::path p = temp_dir() / "kjv.txt";
    std::string cmd = std::string("bash ") + MESHLM_SOURCE_DIR + "/scripts/kjv-text.sh " + p.string();
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return p;
  }();
  return path;
}

RunConfig tiny_config() {
  RunConfig cfg;
  apply_toml_file(cfg, fs::path(MESHLM_SOURCE_DIR) / "configs/tiny.toml");
  return cfg;
}

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
  ByteDataset data(kjv_text(), cfg.train.val_fraction, cfg.train.T(cfg.model));
  const std::string text = read_file(kjv_text(), "kjv");
  const double h = unigram_entropy(text.substr(size_t(data.size(Split::train))));
  Trainer trainer(cfg, data);
  const float start = trainer.evaluate().val_loss;
  for (int64_t s = 0; s < cfg.train.steps; ++s) trainer.step();
  const float end = trainer.evaluate().val_loss;
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
  ByteDataset data(kjv_text(), cfg.train.val_fraction, cfg.train.T(cfg.model));
  auto run = [&](int64_t seed) {
    RunConfig c = cfg;
    c.train.seed = seed;
    Trainer t(c, data);
    for (int i = 0; i < 5; ++i) t.step();
    return std::vector<float>(t.params().begin(), t.params().end());
  };
  std::vector<float> a = run(1), b = run(1), c = run(2);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  EXPECT_NE(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float)));
}

TEST(ByteDataset, RejectsMissingEmptyAndTooShortFiles) {
  fs::path dir = temp_dir();
  EXPECT_THROW(ByteDataset(dir / "missing.txt", 0.1, 16), UserError);
  std::ofstream(dir / "empty.txt").close();
  EXPECT_THROW(ByteDataset(dir / "empty.txt", 0.1, 16), UserError);
  std::ofstream(dir / "short.txt") << "hello world";
  EXPECT_THROW(ByteDataset(dir / "short.txt", 0.1, 16), UserError);
}

TEST(ByteDataset, TargetsAreInputsShiftedByOne) {
  fs::path p = temp_dir() / "abc.txt";
  std::string text;
  for (int i = 0; i < 1000; ++i) text += char('a' + i % 26);
  std::ofstream(p) << text;
  ByteDataset data(p, 0.2, 8);
  std::vector<int32_t> x(16), y(16);
  data.batch(Split::train, 1, 3, 0, 2, 8, x.data(), y.data());
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 8; ++t) EXPECT_EQ(y[size_t(b * 8 + t)], 'a' + (x[size_t(b * 8 + t)] - 'a' + 1) % 26);
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

}  // namespace
}  // namespace meshlm
