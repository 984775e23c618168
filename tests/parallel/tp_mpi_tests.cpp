// Tensor parallelism under mpirun (2 and 4 ranks): the sharded model computes what one
// process computes — outputs and every gradient, training curves, checkpoints, generation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "meshlm/core/device.hpp"
#include "meshlm/core/rng.hpp"
#include "meshlm/model/kv_cache.hpp"
#include "meshlm/model/safetensors.hpp"
#include "meshlm/model/tp_ops.hpp"
#include "meshlm/parallel/device_mesh.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "tests/parallel/mpi_training_support.hpp"

namespace meshlm {
namespace {

using namespace testing_mpi;

// A model whose vocabulary (97) no tp size divides, so the last rank's slice is padded.
GPTConfig awkward() {
  GPTConfig c;
  c.vocab_size = 97;
  c.n_positions = 16;
  c.n_embd = 32;
  c.n_layer = 2;
  c.n_head = 4;
  return c;
}

// Whole-model gradients from every rank's shard gradients (the tp group is the world here).
std::vector<float> gather_global(const GPT& model, const ParamLayout& global, TpGroup& tp, const std::vector<float>& shard) {
  std::vector<float> shards(shard.size() * size_t(tp.size())), whole(global.total(), 0.0f);
  tp.all_gather(shard.data(), shards.data(), int64_t(shard.size()));
  for (int r = 0; r < tp.size(); ++r)
    shard_to_global(model.layout(), global, tp.size(), r, shards.data() + size_t(r) * shard.size(), whole.data());
  return whole;
}

double relative_l2(const float* got, const float* want, size_t n) {
  double d2 = 0, w2 = 0;
  for (size_t i = 0; i < n; ++i) {
    d2 += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    w2 += double(want[i]) * want[i];
  }
  return w2 > 0 ? std::sqrt(d2 / w2) : std::sqrt(d2);
}

// The conjugate pairs on closed-form data: rank r's value at (i, j) is 1000·r + 10·i + j.
TEST(TensorParallelOps, EachPairsForwardAndBackwardDoWhatMegatronSays) {
  TpGroup tp(*g_world, Device::cpu);
  const int64_t n = tp.size(), r = tp.rank(), N = 3, Cl = 5;
  auto value = [](int64_t rank, int64_t i, int64_t j) { return float(1000 * rank + 10 * i + j); };
  std::vector<float> x(size_t(N * Cl));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < Cl; ++j) x[size_t(i * Cl + j)] = value(r, i, j);

  // copy_to_tp: forward identity, backward sums the ranks' gradients.
  std::vector<float> y = x;
  copy_to_tp_forward(&tp, y.data(), N * Cl);
  EXPECT_EQ(y, x);
  copy_to_tp_backward(&tp, y.data(), N * Cl);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < Cl; ++j) {
      float sum = 0;
      for (int64_t q = 0; q < n; ++q) sum += value(q, i, j);
      EXPECT_EQ(y[size_t(i * Cl + j)], sum);
    }
  // reduce_from_tp: forward sums, backward identity.
  std::vector<float> z = x;
  reduce_from_tp_forward(&tp, z.data(), N * Cl);
  EXPECT_EQ(z, y);
  std::vector<float> dz = x;
  reduce_from_tp_backward(&tp, dz.data(), N * Cl);
  EXPECT_EQ(dz, x);

  // gather_from_tp: whole[i, q·Cl + j] = rank q's (i, j); its backward and scatter's forward
  // keep this rank's columns; scatter's backward gathers.
  std::vector<float> whole(size_t(N * n * Cl));
  gather_from_tp_forward(&tp, x.data(), whole.data(), N, Cl, Device::cpu);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t q = 0; q < n; ++q)
      for (int64_t j = 0; j < Cl; ++j) EXPECT_EQ(whole[size_t(i * n * Cl + q * Cl + j)], value(q, i, j));
  std::vector<float> back(size_t(N * Cl));
  gather_from_tp_backward(&tp, whole.data(), back.data(), N, Cl, Device::cpu);
  EXPECT_EQ(back, x);
  std::vector<float> mine(size_t(N * Cl));
  scatter_to_tp_forward(&tp, whole.data(), mine.data(), N, Cl, Device::cpu);
  EXPECT_EQ(mine, x);
  std::vector<float> regathered(whole.size());
  scatter_to_tp_backward(&tp, mine.data(), regathered.data(), N, Cl, Device::cpu);
  EXPECT_EQ(regathered, whole);
  EXPECT_GT(tp.all_reduces(), 0);
}

TEST(TensorParallelModel, ForwardLossLogitsAndEveryGradientMatchOneProcess) {
  const GPTConfig cfg = awkward();
  const int64_t B = 3, T = 16;
  TpGroup tp(*g_world, Device::cpu);
  GPT sharded(cfg, B, T, Device::cpu, &tp), single(cfg, B, T);
  ASSERT_EQ(sharded.tp_size(), g_world->size());
  const ParamLayout& global = single.layout();

  // The shard initialises itself at the global coordinates: it is a slice of the single model.
  std::vector<float> p_single(single.num_params()), p_shard(sharded.num_params());
  init_params(global, cfg, 5, p_single);
  init_params(sharded.layout(), cfg, 5, p_shard, tp.size(), tp.rank());
  std::vector<float> from_single(sharded.num_params());
  global_to_shard(sharded.layout(), global, tp.size(), tp.rank(), p_single.data(), from_single.data());
  EXPECT_EQ(0, std::memcmp(from_single.data(), p_shard.data(), p_shard.size() * sizeof(float)))
      << "a shard's initial values differ from the single-process weights";

  std::vector<int32_t> in(size_t(B * T)), tg(size_t(B * T));
  for (size_t i = 0; i < in.size(); ++i) {
    in[i] = int32_t(random_bits(11, 0, i) % uint32_t(cfg.vocab_size));
    tg[i] = i % 7 == 3 ? -1 : int32_t(random_bits(11, 1, i) % uint32_t(cfg.vocab_size));  // some ignored
  }
  tg[5] = int32_t(cfg.vocab_size - 1);  // the last (padded) slice's last real token
  const float loss_single = single.forward(p_single.data(), in.data(), tg.data(), B, T);
  const float loss_shard = sharded.forward(p_shard.data(), in.data(), tg.data(), B, T);
  EXPECT_NEAR(loss_shard, loss_single, 1e-6f * std::abs(loss_single));

  // This rank's logits are columns [first, first + valid) of the single model's.
  const VocabShard vs = vocab_shard(cfg.vocab_size, tp.size(), tp.rank());
  float worst_logit = 0;
  for (int64_t i = 0; i < B * T; ++i)
    for (int64_t j = 0; j < vs.valid; ++j)
      worst_logit = std::max(worst_logit, std::abs(sharded.logits()[i * vs.rows + j] -
                                                   single.logits()[i * cfg.vocab_size + vs.first + j]));
  EXPECT_LE(worst_logit, 1e-5f);

  std::vector<float> g_single(single.num_params(), 0.0f), g_shard(sharded.num_params(), 0.0f);
  single.backward(p_single.data(), g_single.data(), 0.7f);
  sharded.backward(p_shard.data(), g_shard.data(), 0.7f);
  const std::vector<float> g_whole = gather_global(sharded, global, tp, g_shard);
  for (const ParamView& v : global.views()) {
    const double rel = relative_l2(g_whole.data() + v.offset, g_single.data() + v.offset, v.numel);
    EXPECT_LE(rel, 1e-5) << "gradient of " << v.spec.name;
  }
  // Replicated parameters' gradients must be the same bytes on every rank, padding rows zero.
  for (const ParamView& v : sharded.layout().views()) {
    if (v.spec.split == TpSplit::replicated) {
      std::vector<float> mine(g_shard.begin() + long(v.offset), g_shard.begin() + long(v.offset + v.numel));
      EXPECT_TRUE(same_on_every_rank(mine)) << v.spec.name << "'s gradient differs between tp ranks";
    }
    if (v.spec.split == TpSplit::vocab_rows) {
      for (int64_t row = vs.valid; row < vs.rows; ++row)
        for (int64_t c = 0; c < cfg.n_embd; ++c) ASSERT_EQ(g_shard[v.offset + size_t(row * cfg.n_embd + c)], 0.0f);
    }
  }

  // Generation: the cached forward returns whole logit rows, equal to one process's.
  KVCache cache_single(single.cache_config(), 1), cache_shard(sharded.cache_config(), 1);
  const float* l1 = single.forward_cached(p_single.data(), in.data(), 1, 5, cache_single);
  std::vector<float> want(l1, l1 + 5 * cfg.vocab_size);
  const float* l2 = sharded.forward_cached(p_shard.data(), in.data(), 1, 5, cache_shard);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(l2[i], want[i], 1e-5f) << "cached logit " << i;
}

RunConfig mesh_layout(RunConfig cfg, int64_t dp, int64_t tp, int64_t zero = 0) {
  cfg.parallel.dp = dp;
  cfg.parallel.tp = tp;
  cfg.parallel.zero = zero;
  return cfg;
}

TEST(TensorParallelTraining, TwentyStepsOfTheTinyConfigMatchOneProcess) {
  const int n = g_world->size();
  const RunConfig cfg = mesh_layout(tiny(), 1, n);
  const Curve got = train(cfg, g_world, cfg.train.steps);
  expect_matches(got, reference(cfg), cat("tp ", n));
  EXPECT_TRUE(same_on_every_rank(got.losses));
}

// Attention dropout draws by global head, the residual branches' by global channel (their
// outputs are replicated): every rank's share of the masks is one process's. A third of the
// tiny config's learning rate: at 3e-3 this run's gradient norm spikes to ~60 at step 8, which
// amplifies the row-parallel sums' last-bit differences past the norm's 1e-3 bound.
TEST(TensorParallelTraining, DropoutMatchesOneProcess) {
  const int n = g_world->size();
  auto with_dropout = [](RunConfig cfg) {
    cfg.model.dropout = 0.1f;
    cfg.train.lr = kLr / 3;
    return cfg;
  };
  RunConfig cfg = with_dropout(mesh_layout(tiny(10), 1, n));
  expect_matches(train(cfg, g_world, 10), reference(cfg), cat("tp ", n, ", dropout 0.1"));
  if (n == 4) {
    cfg = with_dropout(mesh_layout(tiny(10), 2, 2, 2));
    cfg.train.recompute = Recompute::full;
    expect_matches(train(cfg, g_world, 10), reference(cfg), "dp 2 x tp 2, ZeRO-2, full recompute, dropout 0.1");
  }
}

// On the GPU: the column/row-parallel layers, the vocabulary-parallel embedding and loss run
// their kernels on GPU buffers, reduced through NCCL or the MPI backend's host staging.
TEST(TensorParallelTraining, RanksOnTheGpuMatchOneGpuProcess) {
  if (!device_available(Device::cuda)) GTEST_SKIP() << "no CUDA GPU (or no CUDA build)";
  const int n = g_world->size();
  RunConfig cfg = mesh_layout(tiny(), 1, n);
  cfg.train.device = Device::cuda;
  expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), cat("tp ", n, " on the GPU"));
  if (n == 4) {
    RunConfig hybrid = mesh_layout(tiny(), 2, 2, 2);
    hybrid.train.device = Device::cuda;
    expect_matches(train(hybrid, g_world, hybrid.train.steps), reference(hybrid), "dp 2 x tp 2, ZeRO-2, on the GPU");
  }
}

TEST(TensorParallelTraining, DataAndTensorParallelTogetherMatchOneProcess) {
  const int n = g_world->size();
  if (n % 2 != 0 || n < 4) GTEST_SKIP() << "needs 4 ranks";
  for (int64_t zero : {0, 2, 3}) {
    const RunConfig cfg = mesh_layout(tiny(), 2, n / 2, zero);
    expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), cat("dp 2 x tp ", n / 2, ", ZeRO-", zero));
  }
}

TEST(TensorParallelCheckpoint, ATensorParallelCheckpointIsTheOneProcessCheckpointAndResumesUnderAnyTp) {
  // Rank 0 makes the directory; every rank reads the checkpoint (one machine, or a shared disk).
  const ScratchDir scratch(*g_world, "tp_ckpt");
  const fs::path run = scratch.path() / "run";
  const int n = g_world->size();
  const RunConfig base = tiny(10);
  const Curve whole = reference(base);
  {
    Trainer t(mesh_layout(base, n >= 4 ? 2 : 1, n >= 4 ? n / 2 : n, 1), data(), g_world);
    for (int i = 0; i < 5; ++i) t.step();
    save_checkpoint(run, t, data().tokenizer(), data().description(), false);
  }
  g_world->barrier();
  const CheckpointInfo info = read_checkpoint_info(*latest_checkpoint(run));

  // The files hold the whole model, as one process writes it.
  Trainer single(base, data());
  for (int i = 0; i < 5; ++i) single.step();
  SafetensorsFile model(info.dir / "model.safetensors");
  const std::vector<float> want = single.global_params();
  std::vector<float> got(want.size(), 0.0f);
  for (const ParamView& v : single.global_layout().views()) model.read_as_f32(v.spec.name, {got.data() + v.offset, v.numel});
  // As in expect_matches: the whole vector, since the attention's key bias is rounding noise.
  EXPECT_LE(relative_l2(got.data(), want.data(), want.size()), 1e-5);
  // Resumed with every rank in one tensor-parallel group, and by one process.
  for (Communicator* comm : {g_world, static_cast<Communicator*>(nullptr)}) {
    Trainer resumed(comm ? mesh_layout(base, 1, n) : base, data(), comm);
    load_checkpoint_into(info, resumed);
    for (int i = 5; i < 10; ++i) {
      const float loss = resumed.step().loss;
      EXPECT_LE(std::abs(loss - whole.losses[size_t(i)]), 1e-5f * whole.losses[size_t(i)])
          << (comm ? "resumed at tp " : "resumed by one process ") << (comm ? n : 1) << ", step " << i + 1;
    }
  }
}

TEST(TensorParallelMemory, ShardsHoldTheirShareOfSplitTensorsAndAllReplicatedOnes) {
  const int n = g_world->size();
  Trainer t(mesh_layout(tiny(1), 1, n), data(), g_world);
  Trainer one(tiny(1), data());
  size_t split = 0, replicated = 0;
  for (const ParamView& v : one.model().layout().views())
    (v.spec.split == TpSplit::replicated ? replicated : split) += v.numel;
  size_t mine = 0;
  for (const ParamView& v : t.model().layout().views()) mine += v.numel;
  // The tiny config's vocabulary (256) and widths divide by 2 and 4: exactly 1/tp of each split tensor.
  EXPECT_EQ(mine, split / size_t(n) + replicated);
  EXPECT_LT(t.activation_bytes(), one.activation_bytes());
}

TEST(TensorParallelErrors, HeadsThatDoNotDivideAndAWrongMeshAreUserErrors) {
  RunConfig cfg = mesh_layout(tiny(1), 1, g_world->size());
  cfg.model.n_head = 2 * g_world->size() + 1;
  cfg.model.n_embd = 16 * cfg.model.n_head;
  EXPECT_THROW(Trainer(cfg, data(), g_world), UserError);
  cfg = mesh_layout(tiny(1), 2, g_world->size());  // 2·n ranks wanted, n launched
  EXPECT_THROW(Trainer(cfg, data(), g_world), UserError);
}

}  // namespace
}  // namespace meshlm
