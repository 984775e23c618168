#pragma once
// Shared by the multi-rank training tests (run under mpirun, with the shared main of
// tests/support/mpi_test_main.cpp): the data and config they train on, single-process references
// and the comparisons.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/train/trainer.hpp"
#include "tests/support/mpi_test_main.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm::testing_mpi {

namespace fs = std::filesystem;
using testing_support::ScratchDir;

inline constexpr double kLr = 3e-3;  // configs/tiny.toml's

// The King James Bible (Debian's bible-kjv, as the single-process training tests use it):
// rank 0 writes it once, every rank reads it (into memory, so the file can go at once).
inline const TokenSource& data() {
  static auto source = [] {
    const ScratchDir dir(*g_world, "kjv");
    const fs::path path = dir.path() / "kjv.txt";
    int32_t rc = 0;
    if (g_world->rank() == 0)
      rc = std::system(cat("bash ", MESHLM_SOURCE_DIR, "/scripts/kjv-text.sh ", path.string()).c_str());
    g_world->broadcast(&rc, 1, DType::i32, 0);
    EXPECT_EQ(rc, 0) << "scripts/kjv-text.sh failed";
    return open_token_source(path, 0.1);
  }();
  return *source;
}

// The tiny configuration, with a micro-batch of 8 (uneven over 3 ranks) of 64-token sequences.
inline RunConfig tiny(int64_t steps = 20) {
  RunConfig cfg;
  apply_toml_file(cfg, fs::path(MESHLM_SOURCE_DIR) / "configs/tiny.toml");
  cfg.train.micro_batch = 8;
  cfg.train.block_size = 64;
  cfg.train.steps = steps;
  cfg.train.warmup_steps = 5;
  cfg.train.eval_tokens = 2048;
  EXPECT_EQ(cfg.train.lr, kLr);
  return cfg;
}

struct Curve {
  std::vector<float> losses, norms;
  std::vector<float> params;
  float val_loss = 0;
};

inline Curve train(const RunConfig& cfg, Communicator* comm, int64_t steps) {
  Trainer t(cfg, data(), comm);
  Curve c;
  for (int64_t i = 0; i < steps; ++i) {
    StepStats s = t.step();
    c.losses.push_back(s.loss);
    c.norms.push_back(s.grad_norm);
  }
  c.params = t.global_params();
  c.val_loss = t.evaluate().loss;
  return c;
}

// The single-process run of `cfg` (the parallel keys do not matter to it), computed once.
inline const Curve& reference(RunConfig cfg) {
  static std::map<std::string, Curve> cache;
  cfg.parallel = ParallelConfig{};
  const std::string key = config_to_json(cfg);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, train(cfg, nullptr, cfg.train.steps)).first;
  return it->second;
}

inline RunConfig layout(RunConfig cfg, int64_t zero, const std::string& algo, double bucket_mb) {
  cfg.parallel.dp = g_world->size();
  cfg.parallel.zero = zero;
  cfg.parallel.allreduce = parse_enum(kAllReduceChoiceNames, algo, "allreduce");
  cfg.parallel.bucket_mb = bucket_mb;
  return cfg;
}

inline void expect_matches(const Curve& got, const Curve& want, const std::string& what) {
  ASSERT_EQ(got.losses.size(), want.losses.size());
  for (size_t i = 0; i < want.losses.size(); ++i) {
    EXPECT_LE(std::abs(got.losses[i] - want.losses[i]), 1e-5f * std::abs(want.losses[i]))
        << what << ": loss of step " << i + 1 << " is " << got.losses[i] << ", one process gives " << want.losses[i];
    // The norm is more sensitive than the loss to the last-bit differences (see below).
    EXPECT_LE(std::abs(got.norms[i] - want.norms[i]), 1e-3f * want.norms[i]) << what << ": grad norm of step " << i + 1;
  }
  ASSERT_EQ(got.params.size(), want.params.size());
  // Summing gradients in another order changes them in the last bits; Adam divides by the
  // root of the second moment, so an element whose gradient is zero up to rounding (the
  // attention's key bias: softmax ignores a constant added to every score) moves by a
  // fraction of lr in a step, in a direction set by the rounding. Hence: relative L2 distance of the whole parameter vector ≤ 1e-5,
  // and no single parameter more than 1e-5 + lr/10 away.
  double diff2 = 0, norm2 = 0;
  float worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < want.params.size(); ++i) {
    const double d = double(got.params[i]) - double(want.params[i]);
    diff2 += d * d;
    norm2 += double(want.params[i]) * double(want.params[i]);
    if (std::abs(float(d)) > worst) worst = std::abs(float(d)), at = i;
  }
  const double rel = std::sqrt(diff2 / norm2);
  EXPECT_LE(rel, 1e-5) << what << ": parameters differ by " << rel << " (relative L2)";
  EXPECT_LE(worst, 1e-5f + float(kLr) / 10) << what << ": parameter " << at << " differs by " << worst;
  if (std::getenv("MESHLM_DP_TEST_VERBOSE"))
    std::printf("%s: params relative L2 %.3g, worst %.3g at %zu\n", what.c_str(), rel, double(worst), at);
  EXPECT_LE(std::abs(got.val_loss - want.val_loss), 1e-5f * want.val_loss) << what << ": validation loss";
}

// Every rank must end with the same bytes: compares this rank's buffer with rank 0's.
inline bool same_on_every_rank(const std::vector<float>& v) {
  std::vector<float> root = v;
  g_world->broadcast(root.data(), int64_t(root.size()), DType::f32, 0);
  int32_t differs = std::memcmp(root.data(), v.data(), v.size() * sizeof(float)) != 0;
  g_world->all_reduce(&differs, 1, DType::i32, ReduceOp::max);
  return differs == 0;
}

}  // namespace meshlm::testing_mpi
