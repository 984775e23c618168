// Dumps what meshlm computes for one small GPT so that check_against_torch.py can compare it
// with an independent PyTorch implementation:
//
//   model.safetensors + config.json   the initial parameters (save_model)
//   batch.safetensors                 inputs, targets: I32 [B,T]
//   forward.safetensors               logits F32 [B,T,V], loss F32 [1]
//   grads.safetensors                 d(mean loss)/d(parameter) for every parameter (HF names)
//   train.safetensors                 losses F32 [steps] (the loss before each AdamW step on the
//                                     same batch) and the final parameters (HF names)
//
// Usage: meshlm_reference_dump OUT_DIR [--vocab V] [--n-positions P] [--n-embd C] [--n-head H]
//                              [--n-layer L] [--batch B] [--seq T] [--seed S] [--steps N]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/model/param_spec.hpp"
#include "meshlm/model/safetensors.hpp"
#include "meshlm/optim/optimizer.hpp"

namespace {

using namespace meshlm;
namespace fs = std::filesystem;

struct Args {
  fs::path out;
  GPTConfig model;
  int64_t B = 2, T = 8, steps = 10;
  uint64_t seed = 1234;
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "error: %s\nusage: meshlm_reference_dump OUT_DIR [--vocab V] [--n-positions P] [--n-embd C] "
               "[--n-head H] [--n-layer L] [--batch B] [--seq T] [--seed S] [--steps N]\n",
               problem.c_str());
  std::exit(2);
}

int64_t parse_int(std::string_view flag, const char* text) {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used != std::string_view(text).size() || v < 0) throw std::invalid_argument("bad");
    return int64_t(v);
  } catch (const std::exception&) {
    usage(cat(flag, " needs a non-negative integer, got '", text, "'"));
  }
}

Args parse_args(int argc, char** argv) {
  Args a;
  a.model.vocab_size = 97;
  a.model.n_positions = 16;
  a.model.n_embd = 48;
  a.model.n_head = 3;
  a.model.n_layer = 2;
  bool have_out = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--")) {
      if (i + 1 >= argc) usage(cat(arg, " needs a value"));
      const int64_t v = parse_int(arg, argv[++i]);
      if (arg == "--vocab") a.model.vocab_size = v;
      else if (arg == "--n-positions") a.model.n_positions = v;
      else if (arg == "--n-embd") a.model.n_embd = v;
      else if (arg == "--n-head") a.model.n_head = v;
      else if (arg == "--n-layer") a.model.n_layer = v;
      else if (arg == "--batch") a.B = v;
      else if (arg == "--seq") a.T = v;
      else if (arg == "--seed") a.seed = uint64_t(v);
      else if (arg == "--steps") a.steps = v;
      else usage(cat("unknown option ", arg));
    } else if (!have_out) {
      a.out = arg;
      have_out = true;
    } else {
      usage(cat("unexpected argument ", arg));
    }
  }
  if (!have_out) usage("missing OUT_DIR");
  if (a.B <= 0 || a.T <= 0) usage("--batch and --seq must be positive");
  return a;
}

// One tensor per parameter of `layout`, viewing `base`, under its Hugging Face name.
std::vector<TensorRef> param_tensors(const ParamLayout& layout, const float* base, const std::string& prefix = "") {
  std::vector<TensorRef> t;
  for (const auto& v : layout.views()) t.emplace_back(prefix + v.spec.name, DType::f32, v.spec.shape, base + v.offset);
  return t;
}

int run(const Args& a) {
  const GPTConfig& cfg = a.model;
  cfg.validate();
  const int64_t B = a.B, T = a.T, V = cfg.vocab_size, N = B * T;
  fs::create_directories(a.out);

  GPT model(cfg, B, T);
  const ParamLayout& layout = model.layout();
  const size_t n = model.num_params();
  Buffer params(Device::cpu, DType::f32, n), grads(Device::cpu, DType::f32, n);
  init_params(layout, cfg, a.seed, params.f32());
  save_model(a.out, cfg, layout, params.f32());

  // A fixed random batch: both inputs and targets uniform in [0, V).
  std::vector<int32_t> inputs(static_cast<size_t>(N)), targets(static_cast<size_t>(N));
  const uint64_t s_in = stream_of("reference.inputs"), s_tg = stream_of("reference.targets");
  for (int64_t i = 0; i < N; ++i) {
    inputs[size_t(i)] = int32_t(random_bits(a.seed, s_in, uint64_t(i)) % uint32_t(V));
    targets[size_t(i)] = int32_t(random_bits(a.seed, s_tg, uint64_t(i)) % uint32_t(V));
  }
  write_safetensors(a.out / "batch.safetensors", {TensorRef("inputs", SafetensorsDType::I32, {B, T}, inputs.data()),
                                                  TensorRef("targets", SafetensorsDType::I32, {B, T}, targets.data())});

  // Forward + backward at the initial parameters. backward() overwrites the logits, so copy
  // them first.
  grads.zero();
  const float loss = model.forward(params.data<float>(), inputs.data(), targets.data(), B, T);
  std::vector<float> logits(model.logits(), model.logits() + N * V);
  model.backward(params.data<float>(), grads.data<float>());
  write_safetensors(a.out / "forward.safetensors", {TensorRef("logits", DType::f32, {B, T, V}, logits.data()),
                                                    TensorRef("loss", DType::f32, {1}, &loss)});
  write_safetensors(a.out / "grads.safetensors", param_tensors(layout, grads.data<float>()));

  // AdamW on the same batch, constant learning rate, no clipping.
  OptimConfig oc;
  oc.name = OptimizerKind::adamw;
  oc.beta1 = 0.9f;
  oc.beta2 = 0.95f;
  oc.eps = 1e-8f;
  oc.weight_decay = 0.1f;
  oc.decay_embeddings = false;
  auto opt = make_optimizer(oc, n);
  const auto ranges = param_ranges(layout, oc.decay_embeddings);
  const float lr = 1e-3f;
  std::vector<float> losses(size_t(a.steps));
  for (int64_t s = 0; s < a.steps; ++s) {
    grads.zero();
    losses[size_t(s)] = model.forward(params.data<float>(), inputs.data(), targets.data(), B, T);
    model.backward(params.data<float>(), grads.data<float>());
    opt->step(params.data<float>(), grads.data<float>(), ranges, lr);
  }
  std::vector<TensorRef> train = param_tensors(layout, params.data<float>());
  train.insert(train.begin(), TensorRef("losses", DType::f32, {a.steps}, losses.data()));
  write_safetensors(a.out / "train.safetensors", train);

  std::printf("dumped %s: %zu parameters, B=%lld T=%lld, initial loss %.6f, loss before the last of %lld AdamW steps %.6f\n",
              a.out.string().c_str(), n, (long long)B, (long long)T, double(loss), (long long)a.steps,
              a.steps > 0 ? double(losses.back()) : double(loss));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
