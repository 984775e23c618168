#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"
#include "meshlm/optim/optimizer.hpp"

namespace meshlm {
namespace {

// ---------------------------------------------------------------------------------------
// A straightforward double-precision transcription of torch.optim (1.13) as the reference.

struct Reference {
  OptimConfig cfg;
  std::vector<double> p, m, v, buf, sum;
  int64_t t = 0;

  Reference(const OptimConfig& c, const std::vector<float>& params) : cfg(c), p(params.begin(), params.end()) {
    const size_t n = p.size();
    m.assign(n, 0.0);
    v.assign(n, 0.0);
    buf.assign(n, 0.0);
    sum.assign(n, double(c.initial_accumulator));
  }

  void step(const std::vector<float>& grads, const std::vector<ParamRange>& ranges, double lr) {
    ++t;
    const double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps, momentum = cfg.momentum;
    for (const ParamRange& r : ranges) {
      const double wd = r.decay ? double(cfg.weight_decay) : 0.0;
      for (size_t i = r.begin; i < r.begin + r.count; ++i) {
        double g = grads[i];
        if (cfg.name == OptimizerKind::adamw || cfg.name == OptimizerKind::adam) {
          if (cfg.name == OptimizerKind::adamw) p[i] *= 1.0 - lr * wd;
          else g += wd * p[i];
          m[i] = b1 * m[i] + (1.0 - b1) * g;
          v[i] = b2 * v[i] + (1.0 - b2) * g * g;
          const double bc1 = 1.0 - std::pow(b1, double(t)), bc2 = 1.0 - std::pow(b2, double(t));
          const double denom = std::sqrt(v[i]) / std::sqrt(bc2) + eps;
          p[i] -= lr / bc1 * m[i] / denom;
        } else if (cfg.name == OptimizerKind::sgd) {
          g += wd * p[i];
          if (momentum != 0.0) {
            buf[i] = t == 1 ? g : momentum * buf[i] + (1.0 - double(cfg.dampening)) * g;
            g = cfg.nesterov ? g + momentum * buf[i] : buf[i];
          }
          p[i] -= lr * g;
        } else {
          g += wd * p[i];
          const double clr = lr / (1.0 + double(t - 1) * double(cfg.lr_decay));
          sum[i] += g * g;
          p[i] -= clr * g / (std::sqrt(sum[i]) + double(cfg.adagrad_eps));
        }
      }
    }
  }
};

std::vector<float> random_vector(size_t n, uint64_t stream, float scale, uint64_t seed = 42) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = scale * normal_at(seed, stream, i);
  return x;
}

// Relative error with a floor, so elements that happen to be near zero do not dominate.
double max_scaled_error(const float* got, const std::vector<double>& want, double floor) {
  double worst = 0.0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) / std::max(std::abs(want[i]), floor));
  return worst;
}

struct Case {
  std::string label;
  OptimConfig cfg;
  float grad_scale = 0.1f;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

std::vector<Case> reference_cases() {
  std::vector<Case> cases;
  OptimConfig c;
  cases.push_back({"adamw", c});
  c.eps = 1e-3f;  // large enough that where eps enters the denominator matters
  c.beta2 = 0.999f;
  cases.push_back({"adamw_large_eps", c, 1e-3f});
  c = {};
  c.name = OptimizerKind::adam;
  c.weight_decay = 0.05f;
  cases.push_back({"adam_l2", c});
  c = {};
  c.name = OptimizerKind::sgd;
  c.weight_decay = 0.01f;
  cases.push_back({"sgd_plain", c});
  c.momentum = 0.9f;
  c.dampening = 0.25f;
  cases.push_back({"sgd_momentum_dampening", c});
  c.dampening = 0.0f;
  c.nesterov = true;
  cases.push_back({"sgd_nesterov", c});
  c = {};
  c.name = OptimizerKind::adagrad;
  c.weight_decay = 0.01f;
  c.lr_decay = 0.05f;
  c.initial_accumulator = 0.1f;
  cases.push_back({"adagrad", c});
  return cases;
}

class OptimReference : public ::testing::TestWithParam<Case> {};

TEST_P(OptimReference, MatchesDoublePrecisionTorchFormulasOverSeveralSteps) {
  const Case& cs = GetParam();
  // A decayed range, an undecayed one and a gap between them that must stay untouched.
  const size_t n = 2003;
  const std::vector<ParamRange> ranges = {{0, 1000, true}, {1017, 986, false}};
  std::vector<float> params = random_vector(n, 1, 1.0f);
  const std::vector<float> initial = params;
  Reference ref(cs.cfg, params);
  auto opt = make_optimizer(cs.cfg, n);
  const float lrs[] = {1e-2f, 2e-2f, 5e-3f, 3e-2f, 1e-2f, 7e-3f};
  for (int s = 0; s < 6; ++s) {
    const std::vector<float> grads = random_vector(n, 100 + uint64_t(s), cs.grad_scale);
    opt->step(params.data(), grads.data(), ranges, lrs[s]);
    ref.step(grads, ranges, double(lrs[s]));
  }
  EXPECT_EQ(opt->steps(), 6);
  EXPECT_LT(max_scaled_error(params.data(), ref.p, 1e-2), 1e-6) << cs.label;
  for (size_t i = 1000; i < 1017; ++i) EXPECT_EQ(params[i], initial[i]) << "gap element " << i;

  for (auto& [name, buffer] : opt->state()) {
    const std::vector<double>& want = name == "exp_avg"      ? ref.m
                                      : name == "exp_avg_sq" ? ref.v
                                      : name == "sum"        ? ref.sum
                                                             : ref.buf;
    EXPECT_EQ(buffer->size(), n);
    // Moments of signed gradients can cancel to near zero: measure their error against the
    // gradients' scale. Sums of squares cannot cancel.
    const bool signed_moment = name == "exp_avg" || name == "momentum_buffer";
    const double floor = signed_moment ? double(cs.grad_scale) : 1e-12;
    EXPECT_LT(max_scaled_error(buffer->data<float>(), want, floor), 1e-6) << cs.label << " " << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Optim, OptimReference, ::testing::ValuesIn(reference_cases()),
                         [](const auto& info) { return info.param.label; });

// ---------------------------------------------------------------------------------------
// Golden values from PyTorch 1.13 (torch.optim on CPU, float32): two parameter groups,
// p[0..3) with weight_decay 0.1 and p[3..5) without, three steps at lr 0.01, 0.02, 0.005.
// Hyper-parameters were passed to torch rounded to float32, as our config holds them.

const float kGoldenParams[5] = {0.5f, -1.25f, 2.0f, 0.03125f, -0.75f};
const float kGoldenGrads[3][5] = {{0.1f, -0.2f, 0.3f, -0.4f, 0.05f},
                                  {0.2f, 0.1f, -0.3f, 0.25f, -0.05f},
                                  {-0.15f, 0.3f, 0.1f, -0.1f, 0.4f}};

void expect_golden(const OptimConfig& cfg, const std::vector<float>& torch_result) {
  std::vector<float> p(kGoldenParams, kGoldenParams + 5);
  auto opt = make_optimizer(cfg, 5);
  const std::vector<ParamRange> ranges = {{0, 3, true}, {3, 2, false}};
  const float lrs[3] = {0.01f, 0.02f, 0.005f};
  for (int s = 0; s < 3; ++s) opt->step(p.data(), kGoldenGrads[s], ranges, lrs[s]);
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(p[i], torch_result[i], 1e-6f * std::abs(torch_result[i])) << optimizer_name(cfg.name) << " " << i;
}

TEST(OptimGolden, AdamWMatchesTorch) {
  OptimConfig c;
  expect_golden(c, {0.467814833f, -1.23221898f, 1.98354304f, 0.0460823663f, -0.761984766f});
}

TEST(OptimGolden, AdamMatchesTorch) {
  OptimConfig c;
  c.name = OptimizerKind::adam;
  expect_golden(c, {0.467928857f, -1.22441781f, 1.9763422f, 0.0460823663f, -0.761984766f});
}

TEST(OptimGolden, SgdMatchesTorch) {
  OptimConfig c;
  c.name = OptimizerKind::sgd;
  c.momentum = 0.9f;
  c.dampening = 0.1f;
  expect_golden(c, {0.490137219f, -1.23983145f, 1.98484659f, 0.0390074998f, -0.752300024f});
  c.dampening = 0.0f;
  c.nesterov = true;
  expect_golden(c, {0.484636754f, -1.23802435f, 1.98198557f, 0.0372254997f, -0.753639758f});
}

TEST(OptimGolden, AdagradMatchesTorch) {
  OptimConfig c;
  c.name = OptimizerKind::adagrad;
  c.lr_decay = 0.1f;
  c.initial_accumulator = 0.1f;
  expect_golden(c, {0.486115694f, -1.24336505f, 1.99274325f, 0.0318131372f, -0.751993835f});
}

// ---------------------------------------------------------------------------------------

TEST(OptimDecay, AdamWShrinksOnlyDecayedRangesByOneMinusLrTimesWd) {
  OptimConfig c;
  c.weight_decay = 0.5f;
  const size_t n = 64;
  std::vector<float> p = random_vector(n, 3, 1.0f);
  const std::vector<float> before = p;
  const std::vector<float> zero_grads(n, 0.0f);
  auto opt = make_optimizer(c, n);
  const std::vector<ParamRange> ranges = {{0, 32, true}, {32, 32, false}};
  opt->step(p.data(), zero_grads.data(), ranges, 0.1f);
  // With zero gradients the Adam part is 0 / (0 + eps): only the decoupled decay acts.
  const float factor = float(1.0 - double(0.1f) * double(0.5f));
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(p[i], before[i] * factor) << i;
  for (size_t i = 32; i < n; ++i) EXPECT_EQ(p[i], before[i]) << i;
}

TEST(OptimDecay, SgdFirstStepStartsMomentumBufferAtTheGradient) {
  OptimConfig c;
  c.name = OptimizerKind::sgd;
  c.momentum = 0.9f;
  c.dampening = 0.5f;
  c.weight_decay = 0.0f;
  const std::vector<float> g = {1.0f, -2.0f, 0.5f};
  std::vector<float> p = {0.0f, 0.0f, 0.0f};
  auto opt = make_optimizer(c, 3);
  const ParamRange all[] = {{0, 3, true}};
  opt->step(p.data(), g.data(), all, 0.1f);
  auto state = opt->state();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].first, "momentum_buffer");
  // Undamped on the first step, as torch clones the gradient into the new buffer.
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(state[0].second->data<float>()[i], g[i]);
}

// ---------------------------------------------------------------------------------------
// ZeRO: stepping a buffer in pieces, by one optimizer or by one optimizer per piece, gives
// exactly the result of stepping it whole.

std::vector<float> concat_state(Optimizer& opt) {
  std::vector<float> all;
  for (auto& [name, buffer] : opt.state()) all.insert(all.end(), buffer->f32().begin(), buffer->f32().end());
  return all;
}

class OptimSharding : public ::testing::TestWithParam<Case> {};

TEST_P(OptimSharding, SteppingPiecesEqualsSteppingWhole) {
  const OptimConfig& cfg = GetParam().cfg;
  const size_t n = 4099, cut = 1531;  // odd sizes: pieces do not end on vector boundaries
  std::vector<float> whole = random_vector(n, 7, 1.0f);
  std::vector<float> pieces = whole, sharded = whole;
  auto opt_whole = make_optimizer(cfg, n);
  auto opt_pieces = make_optimizer(cfg, n);
  // Shard optimizers keep state for their own elements only.
  auto opt_shard_a = make_optimizer(cfg, Range{0, cut});
  auto opt_shard_b = make_optimizer(cfg, Range{cut, n - cut});
  const std::vector<ParamRange> one = {{0, n, true}};
  const std::vector<ParamRange> two = {{0, cut, true}, {cut, n - cut, true}};
  for (int s = 0; s < 4; ++s) {
    const std::vector<float> g = random_vector(n, 200 + uint64_t(s), 0.1f);
    const float lr = 0.01f * float(s + 1);
    opt_whole->step(whole.data(), g.data(), one, lr);
    opt_pieces->step(pieces.data(), g.data(), two, lr);
    opt_shard_a->step(sharded.data(), g.data(), std::span(two).first(1), lr);
    opt_shard_b->step(sharded.data(), g.data() + cut, std::span(two).last(1), lr);
  }
  EXPECT_EQ(pieces, whole);
  EXPECT_EQ(sharded, whole);
  EXPECT_EQ(concat_state(*opt_pieces), concat_state(*opt_whole));
  EXPECT_EQ(opt_shard_a->steps(), 4);
  // Each state buffer of the whole is the shards' buffers end to end.
  auto whole_state = opt_whole->state(), a_state = opt_shard_a->state(), b_state = opt_shard_b->state();
  ASSERT_EQ(a_state.size(), whole_state.size());
  for (size_t k = 0; k < whole_state.size(); ++k) {
    ASSERT_EQ(a_state[k].second->size(), cut);
    ASSERT_EQ(b_state[k].second->size(), n - cut);
    std::vector<float> joined(a_state[k].second->f32().begin(), a_state[k].second->f32().end());
    joined.insert(joined.end(), b_state[k].second->f32().begin(), b_state[k].second->f32().end());
    const auto w = whole_state[k].second->f32();
    EXPECT_EQ(joined, std::vector<float>(w.begin(), w.end())) << whole_state[k].first;
  }
}

TEST_P(OptimSharding, ResultDoesNotDependOnThreadCount) {
  const OptimConfig& cfg = GetParam().cfg;
  const size_t n = 10007;
  const std::vector<ParamRange> ranges = {{0, 5000, true}, {5003, 5004, false}};
  std::vector<float> results[2];
  const int threads[2] = {1, 3};
  const int saved = omp_get_max_threads();
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(threads[k]);
    results[k] = random_vector(n, 9, 1.0f);
    auto opt = make_optimizer(cfg, n);
    for (int s = 0; s < 3; ++s)
      opt->step(results[k].data(), random_vector(n, 300 + uint64_t(s), 0.1f).data(), ranges, 0.01f);
  }
  omp_set_num_threads(saved);
  EXPECT_EQ(results[0], results[1]);
}

TEST_P(OptimSharding, ResumingFromSavedStateContinuesExactly) {
  const OptimConfig& cfg = GetParam().cfg;
  const size_t n = 777;
  const std::vector<ParamRange> ranges = {{0, 400, true}, {400, 377, false}};
  std::vector<float> straight = random_vector(n, 11, 1.0f);
  auto opt = make_optimizer(cfg, n);
  auto grads_at = [&](int s) { return random_vector(n, 400 + uint64_t(s), 0.1f); };
  for (int s = 0; s < 3; ++s) opt->step(straight.data(), grads_at(s).data(), ranges, 0.01f);
  // "Checkpoint": copy the parameters, the state buffers and the step count.
  std::vector<float> resumed = straight;
  auto restored = make_optimizer(cfg, n);
  auto saved_state = opt->state();
  auto new_state = restored->state();
  ASSERT_EQ(saved_state.size(), new_state.size());
  for (size_t k = 0; k < saved_state.size(); ++k) {
    EXPECT_EQ(saved_state[k].first, new_state[k].first);
    std::memcpy(new_state[k].second->raw(), saved_state[k].second->raw(), saved_state[k].second->bytes());
  }
  restored->set_steps(opt->steps());
  for (int s = 3; s < 6; ++s) {
    opt->step(straight.data(), grads_at(s).data(), ranges, 0.01f);
    restored->step(resumed.data(), grads_at(s).data(), ranges, 0.01f);
  }
  EXPECT_EQ(resumed, straight);
  EXPECT_EQ(restored->steps(), 6);
}

INSTANTIATE_TEST_SUITE_P(Optim, OptimSharding, ::testing::ValuesIn(reference_cases()),
                         [](const auto& info) { return info.param.label; });

// ---------------------------------------------------------------------------------------

TEST(OptimState, NamesFollowTorchAndBuffersSpanAllParameters) {
  auto names = [](const std::string& name, float momentum = 0.0f) {
    OptimConfig c;
    c.name = parse_enum(kOptimizerNames, name, "optim.name");
    c.momentum = momentum;
    auto opt = make_optimizer(c, 100);
    std::vector<std::string> out;
    for (auto& [n, b] : opt->state()) {
      EXPECT_EQ(b->size(), 100u);
      out.push_back(n);
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(names("adamw"), (V{"exp_avg", "exp_avg_sq"}));
  EXPECT_EQ(names("adam"), (V{"exp_avg", "exp_avg_sq"}));
  EXPECT_EQ(names("sgd"), V{});
  EXPECT_EQ(names("sgd", 0.9f), V{"momentum_buffer"});
  EXPECT_EQ(names("adagrad"), V{"sum"});
}

TEST(OptimState, AdagradAccumulatorStartsAtInitialValue) {
  OptimConfig c;
  c.name = OptimizerKind::adagrad;
  c.initial_accumulator = 0.25f;
  auto opt = make_optimizer(c, 10);
  for (float s : opt->state().at(0).second->f32()) EXPECT_EQ(s, 0.25f);
}

TEST(OptimState, CountsOneStepPerCallWhateverTheRanges) {
  auto opt = make_optimizer(OptimConfig{}, 8);
  std::vector<float> p(8, 1.0f), g(8, 0.5f);
  const std::vector<ParamRange> many = {{0, 2, true}, {2, 2, false}, {4, 4, true}};
  opt->step(p.data(), g.data(), many, 0.1f);
  opt->step(p.data(), g.data(), {}, 0.1f);  // a shard with nothing to update still counts
  EXPECT_EQ(opt->steps(), 2);
  opt->set_steps(10);
  EXPECT_EQ(opt->steps(), 10);
}

TEST(OptimState, RejectsOverlappingOrOutOfBoundsRanges) {
  auto opt = make_optimizer(OptimConfig{}, 8);
  std::vector<float> p(8, 1.0f), g(8, 0.5f);
  const std::vector<ParamRange> overlapping = {{0, 4, true}, {3, 2, true}};
  const std::vector<ParamRange> beyond = {{6, 4, true}};
  EXPECT_THROW(opt->step(p.data(), g.data(), overlapping, 0.1f), InternalError);
  EXPECT_THROW(opt->step(p.data(), g.data(), beyond, 0.1f), InternalError);
}

// ---------------------------------------------------------------------------------------

TEST(OptimRanges, OneRangePerParameterAndDecayOnlyOnWeights) {
  GPTConfig cfg;
  cfg.n_layer = 2;
  const ParamLayout layout(gpt_param_specs(cfg));
  for (bool decay_embeddings : {false, true}) {
    const std::vector<ParamRange> ranges = param_ranges(layout, decay_embeddings);
    ASSERT_EQ(ranges.size(), layout.views().size());
    for (size_t k = 0; k < ranges.size(); ++k) {
      const ParamView& view = layout.views()[k];
      EXPECT_EQ(ranges[k].begin, view.offset);
      EXPECT_EQ(ranges[k].count, view.numel);
      const ParamKind kind = view.spec.kind;
      const bool want = kind == ParamKind::weight || (decay_embeddings && kind == ParamKind::embedding);
      EXPECT_EQ(ranges[k].decay, want) << view.spec.name;
    }
  }
  const std::vector<ParamRange> ranges = param_ranges(layout, false);
  EXPECT_TRUE(ranges[size_t(&layout.at("h.0.attn.c_attn.weight") - layout.views().data())].decay);
  EXPECT_FALSE(ranges[size_t(&layout.at("h.0.attn.c_attn.bias") - layout.views().data())].decay);
  EXPECT_FALSE(ranges[size_t(&layout.at("h.1.ln_2.weight") - layout.views().data())].decay);
  EXPECT_FALSE(ranges[size_t(&layout.at("wte.weight") - layout.views().data())].decay);
}

// ---------------------------------------------------------------------------------------

std::string validation_error(const OptimConfig& c) {
  try {
    c.validate();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(OptimConfigValidation, DefaultsAndEveryOptimizerAreValid) {
  for (const auto& [kind, name] : kOptimizerNames) {
    OptimConfig c;
    c.name = kind;
    EXPECT_EQ(validation_error(c), "") << name;
  }
}

TEST(OptimConfigValidation, ErrorsNameTheKeyAndValue) {
  OptimConfig c;
  c.beta1 = 1.5f;
  EXPECT_EQ(validation_error(c), "optim.beta1 must be in [0, 1), got 1.5");
  c = {};
  c.beta2 = 1.0f;
  EXPECT_EQ(validation_error(c), "optim.beta2 must be in [0, 1), got 1");
  c = {};
  c.eps = -1e-8f;
  EXPECT_THAT(validation_error(c), ::testing::StartsWith("optim.eps must be"));
  c = {};
  c.weight_decay = NAN;
  EXPECT_THAT(validation_error(c), ::testing::StartsWith("optim.weight_decay must be"));
  c = {};
  c.momentum = -0.1f;
  EXPECT_THAT(validation_error(c), ::testing::StartsWith("optim.momentum must be"));
  c = {};
  c.dampening = 2.0f;
  EXPECT_EQ(validation_error(c), "optim.dampening must be in [0, 1], got 2");
  c = {};
  c.lr_decay = -1.0f;
  EXPECT_THAT(validation_error(c), ::testing::StartsWith("optim.lr_decay must be"));
  c = {};
  c.initial_accumulator = -1.0f;
  EXPECT_THAT(validation_error(c), ::testing::StartsWith("optim.initial_accumulator must be"));
  c = {};
  c.adagrad_eps = INFINITY;
  EXPECT_THAT(validation_error(c), ::testing::StartsWith("optim.adagrad_eps must be"));
}

TEST(OptimConfigValidation, NesterovNeedsMomentumAndNoDampening) {
  OptimConfig c;
  c.name = OptimizerKind::sgd;
  c.nesterov = true;
  EXPECT_THAT(validation_error(c), ::testing::StartsWith("optim.nesterov requires optim.momentum > 0"));
  c.momentum = 0.9f;
  EXPECT_EQ(validation_error(c), "");
  c.dampening = 0.1f;
  EXPECT_THAT(validation_error(c), ::testing::StartsWith("optim.nesterov requires"));
}

}  // namespace
}  // namespace meshlm
