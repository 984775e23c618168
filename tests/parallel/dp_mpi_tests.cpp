// Data-parallel training under mpirun (1–4 ranks): every layout must train like one process.
// Each rank also trains the single-process reference itself (with the self communicator), so
// the comparison needs no communication of its own.
#include <gtest/gtest.h>
#include <unistd.h>

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
#include "meshlm/model/safetensors.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/trainer.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;

Communicator* g_world = nullptr;
constexpr double kLr = 3e-3;  // configs/tiny.toml's

// The King James Bible (Debian's bible-kjv, as the single-process training tests use it):
// rank 0 writes it once, every rank reads it.
const TokenSource& data() {
  static auto source = [] {
    int32_t id = int32_t(::getpid());
    g_world->broadcast(&id, 1, DType::i32, 0);
    const fs::path path = fs::temp_directory_path() / cat("meshlm_dp_kjv_", id, ".txt");
    int32_t rc = 0;
    if (g_world->rank() == 0)
      rc = std::system(cat("bash ", MESHLM_SOURCE_DIR, "/scripts/kjv-text.sh ", path.string()).c_str());
    g_world->broadcast(&rc, 1, DType::i32, 0);
    EXPECT_EQ(rc, 0) << "scripts/kjv-text.sh failed";
    auto opened = open_token_source(path, 0.1);
    g_world->barrier();
    if (g_world->rank() == 0) fs::remove(path);  // a text file is read into memory
    return opened;
  }();
  return *source;
}

// The tiny configuration, with a micro-batch of 8 (uneven over 3 ranks) of 64-token sequences.
RunConfig tiny(int64_t steps = 20) {
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

Curve train(const RunConfig& cfg, Communicator* comm, int64_t steps) {
  Trainer t(cfg, data(), comm);
  Curve c;
  for (int64_t i = 0; i < steps; ++i) {
    StepStats s = t.step();
    c.losses.push_back(s.loss);
    c.norms.push_back(s.grad_norm);
  }
  c.params.assign(t.params().begin(), t.params().end());
  c.val_loss = t.evaluate().loss;
  return c;
}

// The single-process run of `cfg` (the parallel keys do not matter to it), computed once.
const Curve& reference(RunConfig cfg) {
  static std::map<std::string, Curve> cache;
  cfg.parallel = ParallelConfig{};
  const std::string key = config_to_json(cfg);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, train(cfg, nullptr, cfg.train.steps)).first;
  return it->second;
}

RunConfig layout(RunConfig cfg, int64_t zero, const std::string& algo, double bucket_mb) {
  cfg.parallel.dp = g_world->size();
  cfg.parallel.zero = zero;
  cfg.parallel.allreduce = algo;
  cfg.parallel.bucket_mb = bucket_mb;
  return cfg;
}

void expect_matches(const Curve& got, const Curve& want, const std::string& what) {
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
bool same_on_every_rank(const std::vector<float>& v) {
  std::vector<float> root = v;
  g_world->broadcast(root.data(), int64_t(root.size()), DType::f32, 0);
  int32_t differs = std::memcmp(root.data(), v.data(), v.size() * sizeof(float)) != 0;
  g_world->all_reduce(&differs, 1, DType::i32, ReduceOp::max);
  return differs == 0;
}

struct Layout {
  int64_t zero;
  const char* algo;
  double bucket_mb;
};
void PrintTo(const Layout& l, std::ostream* os) { *os << "ZeRO-" << l.zero << " " << l.algo << " " << l.bucket_mb << " MiB"; }

// Ranks other than 0 print only their failures, marked with their rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::printf("rank %d: %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
  }

 private:
  int rank_;
};

class DataParallel : public ::testing::TestWithParam<Layout> {};

TEST_P(DataParallel, TwentyStepsOfTheTinyConfigMatchOneProcess) {
  const Layout& l = GetParam();
  const RunConfig cfg = layout(tiny(), l.zero, l.algo, l.bucket_mb);
  const Curve got = train(cfg, g_world, cfg.train.steps);
  expect_matches(got, reference(cfg), cat(g_world->size(), " ranks, ZeRO-", l.zero, ", ", l.algo, ", ", l.bucket_mb, " MiB buckets"));
  EXPECT_TRUE(same_on_every_rank(got.params)) << "ranks hold different parameters";
  EXPECT_TRUE(same_on_every_rank(got.losses)) << "ranks report different losses";
}

// 0.002 MiB buckets cut the tiny model (~0.8 M parameters) into ~400 buckets, most of them
// cutting through tensors and ZeRO shards; 25 MiB holds it whole.
INSTANTIATE_TEST_SUITE_P(Layouts, DataParallel,
                         ::testing::Values(Layout{0, "ring", 25}, Layout{0, "native", 25}, Layout{0, "ring", 0.002},
                                           Layout{0, "native", 0.002}, Layout{1, "ring", 25}, Layout{1, "native", 0.05},
                                           Layout{2, "ring", 25}, Layout{2, "native", 25}, Layout{2, "ring", 0.002},
                                           Layout{2, "native", 0.05}),
                         [](const auto& info) {
                           return cat("zero", info.param.zero, "_", info.param.algo, "_",
                                      info.param.bucket_mb >= 1 ? "whole" : "small");
                         });

TEST(DataParallelAccumulation, TwoMicroStepsPerStepMatchOneProcess) {
  RunConfig cfg = layout(tiny(10), 2, "ring", 0.05);
  cfg.train.grad_accum = 2;
  expect_matches(train(cfg, g_world, 10), reference(cfg), "ZeRO-2 with grad_accum 2");
}

TEST(DataParallelDeterminism, TheSameLayoutTwiceIsBitIdentical) {
  const RunConfig cfg = layout(tiny(8), 1, "ring", 0.05);
  const Curve a = train(cfg, g_world, 8), b = train(cfg, g_world, 8);
  EXPECT_EQ(0, std::memcmp(a.params.data(), b.params.data(), a.params.size() * sizeof(float)));
  EXPECT_EQ(a.losses, b.losses);
}

TEST(DataParallelMemory, ZeroShardsOptimizerStateAndGradients) {
  const int n = g_world->size();
  for (int64_t zero : {0, 1, 2}) {
    Trainer t(layout(tiny(1), zero, "ring", 25), data(), g_world);
    const size_t psi = t.model().num_params();
    const size_t shard = zero_shard(psi, n, g_world->rank()).count;
    const MemoryPerRank m = t.memory();
    EXPECT_EQ(m.params, 4 * psi);
    // AdamW keeps two moments (K = 8 bytes per parameter in f32).
    EXPECT_EQ(m.optimizer, zero >= 1 ? 8 * shard : 8 * psi) << "ZeRO-" << zero;
    EXPECT_EQ(m.grads, zero == 2 ? 4 * shard : 4 * psi) << "ZeRO-" << zero;
  }
}

TEST(DataParallelCheckpoint, ADataParallelCheckpointIsTheOneProcessCheckpointAndResumesUnderAnyLayout) {
  // Rank 0 picks the directory; every rank reads the checkpoint (one machine, or a shared disk).
  int32_t id = int32_t(::getpid());
  g_world->broadcast(&id, 1, DType::i32, 0);
  const fs::path run = fs::temp_directory_path() / cat("meshlm_dp_ckpt_", id);
  const RunConfig base = tiny(10);
  const Curve whole = reference(base);  // 10 uninterrupted steps

  {  // 5 steps with ZeRO-2, then a checkpoint
    Trainer t(layout(base, 2, "ring", 0.05), data(), g_world);
    for (int i = 0; i < 5; ++i) t.step();
    save_checkpoint(run, t, data().tokenizer(), data().description(), false);
  }
  g_world->barrier();
  const CheckpointInfo info = read_checkpoint_info(*latest_checkpoint(run));
  EXPECT_EQ(info.state.step, 5);

  // The files hold what one process would have written after 5 steps.
  Trainer single(base, data());
  for (int i = 0; i < 5; ++i) single.step();
  SafetensorsFile opt(info.dir / "optimizer.safetensors");
  const auto want = single.gathered_optimizer_state();
  ASSERT_EQ(opt.names().size(), want.size() * single.model().layout().views().size());
  // Same tensors; values equal up to the summation-order rounding (relative L2 per state).
  for (const auto& [name, values] : want) {
    double diff2 = 0, norm2 = 0;
    for (const ParamView& v : single.model().layout().views()) {
      std::vector<float> got(v.numel);
      opt.read_as_f32(name + "." + v.spec.name, got);
      for (size_t i = 0; i < v.numel; ++i) {
        const double w = values[v.offset + i], d = double(got[i]) - w;
        diff2 += d * d;
        norm2 += w * w;
      }
    }
    EXPECT_LE(std::sqrt(diff2 / norm2), 1e-5) << "optimizer state " << name;
  }

  // Resumed under ZeRO-1 on these ranks, and by one process: both continue the same curve.
  for (Communicator* comm : {g_world, static_cast<Communicator*>(nullptr)}) {
    RunConfig cfg = comm ? layout(base, 1, "native", 25) : base;
    Trainer resumed(cfg, data(), comm);
    load_checkpoint_into(info, resumed);
    for (int i = 5; i < 10; ++i) {
      const float loss = resumed.step().loss;
      EXPECT_LE(std::abs(loss - whole.losses[size_t(i)]), 1e-5f * whole.losses[size_t(i)])
          << (comm ? "resumed by the ranks" : "resumed by one process") << ", step " << i + 1;
    }
  }
  g_world->barrier();
  if (g_world->rank() == 0) fs::remove_all(run);
}

TEST(DataParallelErrors, ABatchSmallerThanTheRanksOrAWrongDpIsAUserError) {
  RunConfig cfg = layout(tiny(1), 0, "ring", 25);
  cfg.parallel.dp = g_world->size() + 1;
  EXPECT_THROW(Trainer(cfg, data(), g_world), UserError);
  if (g_world->size() > 1) {
    cfg.parallel.dp = g_world->size();
    cfg.train.micro_batch = g_world->size() - 1;
    EXPECT_THROW(Trainer(cfg, data(), g_world), UserError);
  }
}

}  // namespace
}  // namespace meshlm

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto world = meshlm::make_mpi_world_communicator();
  meshlm::g_world = world.get();
  if (world->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new meshlm::FailurePrinter(world->rank()));
  }
  int32_t failed = RUN_ALL_TESTS() != 0;
  world->all_reduce(&failed, 1, meshlm::DType::i32, meshlm::ReduceOp::max);
  return failed;
}
