// Linear layer on the GPU through cuBLASLt: out[N,OC] = inp[N,IC]·W + bias, with W stored [IC,OC]
// (in_out) or [OC,IC] (out_in). Backward: dinp = dout·Wᵀ, dW += inpᵀ·dout (or doutᵀ·inp for
// out_in), dbias += Σ_n dout. The contracts and results of cpu/linear.cpp.
//
// Row-major ↔ column-major. cuBLASLt is column-major, and a row-major [R,C] matrix (row stride C)
// is, byte for byte, the column-major [C,R] matrix with leading dimension C: its transpose. So
// each row-major product X = P·Q is computed as the column-major Xᵀ = Qᵀ·Pᵀ, with no copies:
// D is the result read transposed, A comes from the right factor and B from the left one.
// cuBLASLt computes D[m,n] = op(A)[m,k]·op(B)[k,n]; "stored" is the column-major shape of the
// buffer as given to the layout (A is k×m under op T, B is n×k under op T), ld its leading dim.
//
//   product          D (m×n, ld)          A: op, stored, ld           B: op, stored, ld        k
//   forward in_out   outᵀ  OC×N,  OC      W     N  OC×IC  OC          inp   N  IC×N  IC        IC
//   forward out_in   outᵀ  OC×N,  OC      W     T  IC×OC  IC          inp   N  IC×N  IC        IC
//   dinp    in_out   dinpᵀ IC×N,  IC      W     T  OC×IC  OC          dout  N  OC×N  OC        OC
//   dinp    out_in   dinpᵀ IC×N,  IC      W     N  IC×OC  IC          dout  N  OC×N  OC        OC
//   dW      in_out   dWᵀ   OC×IC, OC      dout  N  OC×N   OC          inp   T  IC×N  IC        N
//   dW      out_in   dWᵀ   IC×OC, IC      inp   N  IC×N   IC          dout  T  OC×N  OC        N
//
// E.g. forward in_out: out[N,OC] = inp·W, so outᵀ[OC,N] = Wᵀ·inpᵀ; W row-major [IC,OC] already
// is Wᵀ column-major (op N), inp row-major [N,IC] already is inpᵀ (op N). For out_in,
// out = inp·Wᵀ, so outᵀ = W·inpᵀ, and W row-major [OC,IC] reads as column-major Wᵀ: op T.
// dW in_out: dW[IC,OC] = inpᵀ·dout, so dWᵀ[OC,IC] = doutᵀ·inp: dout reads as doutᵀ (N), inp
// reads as inpᵀ and must be transposed back (T). dW out_in: dWᵀ[IC,OC] = inpᵀ·dout likewise.
// The forward bias is one value per row of D = per output column of out: the BIAS epilogue's
// shape (a vector of D's row count, broadcast over D's columns).
//
// Precision: every product computes in f32 (CUBLAS_COMPUTE_32F) into f32 D. fp32 passes the f32
// operands as they are; CUBLAS_COMPUTE_32F is true f32 (no TF32), so the result matches the CPU
// to rounding order. (CUBLAS_COMPUTE_32F_FAST_TF32 would let f32 inputs use TF32 tensor cores,
// ~10 mantissa bits, several times faster, but no longer within the fp32 tolerance.) bf16 and
// fp16 round A and B into scratch (linear_support.cu) and pass CUDA_R_16BF / CUDA_R_16F with
// CUDA_R_32F C/D, a supported cuBLASLt combination for CUBLAS_COMPUTE_32F.
//
// Caching: one handle and one 32 MiB workspace per process; one plan (descriptor, layouts, the
// heuristic's algorithm) per distinct problem (shape, transposes, precision, accumulate, bias
// and the operands' pointer alignments, which the heuristic filters algorithms by). After the
// first step a training step only looks plans up: no allocation, no heuristic query.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cuda/linear_support.hpp"
#include "meshlm/kernels/cuda/ops.hpp"

namespace meshlm::gpu {

namespace {

// NVIDIA's recommendation for Hopper; enough for split-K on Ampere too.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;
// Scratch grows in steps of this, so a first step of slightly different sizes reallocates rarely.
constexpr size_t kScratchGranule = size_t(2) << 20;

// One column-major product: D[m,n] = op(A)[m,k]·op(B)[k,n] (+ D if accumulate) (+ bias[m] on
// every column). A and B are f32, bf16 or f16 per the precision; D and bias f32.
struct Product {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;
  const void* A = nullptr;
  int64_t lda = 0;
  const void* B = nullptr;
  int64_t ldb = 0;
  float* D = nullptr;
  int64_t ldd = 0;
  const float* bias = nullptr;
  bool accumulate = false;
};

// Everything a plan depends on. Alignments are in bytes (capped at 256, cuBLASLt's default
// assumption); align_bias is 0 without a bias.
struct Key {
  int64_t m, n, k, lda, ldb, ldd;
  uint32_t align_a, align_b, align_d, align_bias;
  Precision precision;
  bool ta, tb, accumulate;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 0;
    auto mix = [&h](uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); };
    for (int64_t v : {k.m, k.n, k.k, k.lda, k.ldb, k.ldd}) mix(uint64_t(v));
    for (uint32_t v : {k.align_a, k.align_b, k.align_d, k.align_bias}) mix(v);
    mix(uint64_t(k.precision) | uint64_t(k.ta) << 8 | uint64_t(k.tb) << 9 | uint64_t(k.accumulate) << 10);
    return size_t(h);
  }
};

// Descriptors live as long as the process (never destroyed, like the handle).
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;  // C shares D's layout and buffer
  cublasLtMatmulAlgo_t algo{};
  bool bias_epilogue = false;  // bias added by CUBLASLT_EPILOGUE_BIAS, else by add_bias after
};

struct Scratch {
  void* ptr = nullptr;
  size_t bytes = 0;
};

// Scratch slots: the low-precision copy of the operand that varies per row (inp forward, dout
// backward), the copy of the other operand (W, then inp for dW), the bias gradient's partials.
enum Slot { kRowsSlot = 0, kOtherSlot = 1, kBiasSlot = 2, kSlots = 3 };

struct State {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::mutex mu;  // guards plans, scratch and the plans' bias-pointer attribute
  std::unordered_map<Key, Plan, KeyHash> plans;
  Scratch scratch[kSlots];
};

// Created on first use and never destroyed: tearing cuBLASLt down during static destruction,
// possibly after the CUDA runtime has shut down, would fail (as for the streams in context.cpp).
State& state() {
  static State* const s = [] {
    compute_stream();  // selects the GPU before the handle and workspace bind to it
    auto st = std::make_unique<State>();
    MESHLM_CUBLAS_CHECK(cublasLtCreate(&st->handle));
    MESHLM_CUDA_CHECK(cudaMalloc(&st->workspace, kWorkspaceBytes));
    return st.release();
  }();
  return *s;
}

uint32_t alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a == 0) return 256;
  return uint32_t(std::min<uintptr_t>(a & (~a + 1), 256));  // lowest set bit
}

cudaDataType_t operand_type(Precision p) {
  switch (p) {
    case Precision::fp32: return CUDA_R_32F;
    case Precision::bf16: return CUDA_R_16BF;
    case Precision::fp16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

// The heuristic's best algorithm for the descriptors as they stand; false where none applies.
bool best_algo(const State& s, const Plan& plan, cublasLtMatmulPreference_t pref, cublasLtMatmulAlgo_t* algo) {
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(s.handle, plan.desc, plan.a, plan.b, plan.d, plan.d, pref, 1, &result, &found);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
  if (st != CUBLAS_STATUS_SUCCESS) cublas_failed(st, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
  if (found < 1 || result.state != CUBLAS_STATUS_SUCCESS) return false;
  *algo = result.algo;
  return true;
}

Plan make_plan(const State& s, const Key& key, const Product& g) {
  const cudaDataType_t ab = operand_type(key.precision);
  Plan plan;
  MESHLM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t opa = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  MESHLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  MESHLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  // Layouts describe the buffers as stored, before op: A is k×m under T, B is n×k under T.
  MESHLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, ab, uint64_t(g.ta ? g.k : g.m), uint64_t(g.ta ? g.m : g.k),
                                                 g.lda));
  MESHLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, ab, uint64_t(g.tb ? g.n : g.k), uint64_t(g.tb ? g.k : g.n),
                                                 g.ldb));
  MESHLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.d, CUDA_R_32F, uint64_t(g.m), uint64_t(g.n), g.ldd));

  cublasLtMatmulPreference_t pref = nullptr;
  MESHLM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t workspace = kWorkspaceBytes;
  MESHLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                           sizeof(workspace)));
  // The default assumes 256-byte aligned buffers; weights and activations at offsets into larger
  // buffers may be less aligned, and an algorithm relying on more would fault.
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d},
  };
  for (const auto& [attr, bytes] : aligns)
    MESHLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &bytes, sizeof(bytes)));

  // The bias in the epilogue saves a pass over out. The heuristic reads the bias pointer's
  // alignment from the descriptor; below 16 bytes the epilogue is known to misbehave, so such a
  // bias (and any combination the heuristic turns down) goes through add_bias instead.
  if (g.bias && key.align_bias >= 16) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    MESHLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    MESHLM_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
    plan.bias_epilogue = best_algo(s, plan, pref, &plan.algo);
    if (!plan.bias_epilogue) {
      const cublasLtEpilogue_t none = CUBLASLT_EPILOGUE_DEFAULT;
      const void* no_bias = nullptr;
      MESHLM_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &none, sizeof(none)));
      MESHLM_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &no_bias, sizeof(no_bias)));
    }
  }
  const bool found = plan.bias_epilogue || best_algo(s, plan, pref, &plan.algo);
  MESHLM_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  if (!found)
    throw InternalError(cat("cuBLASLt has no algorithm for D[", g.m, ",", g.n, "] = op", g.ta ? "T" : "N", "(A[ld ",
                            g.lda, "])·op", g.tb ? "T" : "N", "(B[ld ", g.ldb, "]), k ", g.k, ", ",
                            precision_name(key.precision), " operands, alignments A ", key.align_a, " B ",
                            key.align_b, " D ", key.align_d));
  return plan;
}

// Queues one product on the compute stream. The caller holds s.mu.
void run(State& s, Precision p, const Product& g) {
  const Key key{g.m,
                g.n,
                g.k,
                g.lda,
                g.ldb,
                g.ldd,
                alignment(g.A),
                alignment(g.B),
                alignment(g.D),
                g.bias ? alignment(g.bias) : 0u,
                p,
                g.ta,
                g.tb,
                g.accumulate};
  auto it = s.plans.find(key);
  if (it == s.plans.end()) it = s.plans.emplace(key, make_plan(s, key, g)).first;
  const Plan& plan = it->second;
  if (plan.bias_epilogue)  // same alignment as the pointer the plan was made with (it's in the key)
    MESHLM_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;  // C = D: beta 1 accumulates in place
  MESHLM_CUBLAS_CHECK(cublasLtMatmul(s.handle, plan.desc, &alpha, g.A, plan.a, g.B, plan.b, &beta, g.D, plan.d, g.D,
                                     plan.d, &plan.algo, s.workspace, kWorkspaceBytes, compute_stream()));
  if (g.bias && !plan.bias_epilogue) {
    // D is column-major m×n with ld m: the row-major [n, m] output, bias over its columns.
    MESHLM_ASSERT(g.ldd == g.m, "bias on a strided output");
    add_bias(g.D, g.bias, g.n, g.m, compute_stream());
  }
}

// A slot of at least `bytes`. Growing waits for the queued work that may still read the old
// buffer; it happens in the first steps only.
void* scratch(State& s, Slot slot, size_t bytes) {
  Scratch& sc = s.scratch[slot];
  if (sc.bytes < bytes) {
    const size_t grown = (bytes + kScratchGranule - 1) / kScratchGranule * kScratchGranule;
    if (sc.ptr) {
      synchronize();
      MESHLM_CUDA_CHECK(cudaFree(sc.ptr));
      sc = {};
    }
    MESHLM_CUDA_CHECK(cudaMalloc(&sc.ptr, grown));
    sc.bytes = grown;
  }
  return sc.ptr;
}

// The operand as the product takes it: x itself for fp32, else its bf16/f16 rounding in `slot`.
const void* operand(State& s, Precision p, Slot slot, const float* x, int64_t count) {
  if (p == Precision::fp32) return x;
  void* low = scratch(s, slot, size_t(count) * 2);
  convert_operand(p, low, x, count, compute_stream());
  return low;
}

}  // namespace

template <Precision P>
void linear_forward(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t IC,
                    int64_t OC, WeightLayout layout) {
  if (N == 0 || OC == 0) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (IC == 0) {  // an empty sum: out = bias (or 0)
    MESHLM_CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(N * OC) * sizeof(float), compute_stream()));
    if (bias) add_bias(out, bias, N, OC, compute_stream());
    return;
  }
  Product g;  // outᵀ[OC,N] = op(W)·inpᵀ
  g.m = OC;
  g.n = N;
  g.k = IC;
  g.ta = layout == WeightLayout::out_in;
  g.A = operand(s, P, kOtherSlot, w, IC * OC);
  g.lda = layout == WeightLayout::in_out ? OC : IC;
  g.B = operand(s, P, kRowsSlot, inp, N * IC);
  g.ldb = IC;
  g.D = out;
  g.ldd = OC;
  g.bias = bias;
  run(s, P, g);
}

template <Precision P>
void linear_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                     int64_t N, int64_t IC, int64_t OC, WeightLayout layout) {
  if (N == 0) return;  // dinp is empty, and dW, dbias gain nothing
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (dinp && IC > 0 && OC == 0)  // an empty sum
    MESHLM_CUDA_CHECK(cudaMemsetAsync(dinp, 0, size_t(N * IC) * sizeof(float), compute_stream()));
  const bool want_dinp = dinp && IC > 0 && OC > 0;
  const bool want_dw = dw && IC > 0 && OC > 0;
  // dout is rounded once for both products.
  const void* dout_op = want_dinp || want_dw ? operand(s, P, kRowsSlot, dout, N * OC) : nullptr;
  if (want_dinp) {  // dinpᵀ[IC,N] = op(W)·doutᵀ
    Product g;
    g.m = IC;
    g.n = N;
    g.k = OC;
    g.ta = layout == WeightLayout::in_out;
    g.A = operand(s, P, kOtherSlot, w, IC * OC);
    g.lda = layout == WeightLayout::in_out ? OC : IC;
    g.B = dout_op;
    g.ldb = OC;
    g.D = dinp;
    g.ldd = IC;
    run(s, P, g);
  }
  if (want_dw) {
    // Stream order: this rounding of inp into kOtherSlot runs after the dinp product read W there.
    const void* inp_op = operand(s, P, kOtherSlot, inp, N * IC);
    Product g;
    g.k = N;
    g.tb = true;
    g.D = dw;
    g.accumulate = true;
    if (layout == WeightLayout::in_out) {  // dWᵀ[OC,IC] += doutᵀ·inp
      g.m = OC;
      g.n = IC;
      g.A = dout_op;
      g.lda = OC;
      g.B = inp_op;
      g.ldb = IC;
      g.ldd = OC;
    } else {  // dWᵀ[IC,OC] += inpᵀ·dout
      g.m = IC;
      g.n = OC;
      g.A = inp_op;
      g.lda = IC;
      g.B = dout_op;
      g.ldb = OC;
      g.ldd = IC;
    }
    run(s, P, g);
  }
  if (dbias && OC > 0) {
    const int64_t partial_floats = bias_grad_partial_floats(N, OC);
    float* partial =
        partial_floats > 0 ? static_cast<float*>(scratch(s, kBiasSlot, size_t(partial_floats) * sizeof(float)))
                           : nullptr;
    bias_grad(dbias, partial, dout, N, OC, compute_stream());
  }
}

#define MESHLM_INSTANTIATE(P)                                                                              \
  template void linear_forward<P>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,  \
                                  WeightLayout);                                                                \
  template void linear_backward<P>(float*, float*, float*, const float*, const float*, const float*, int64_t,  \
                                   int64_t, int64_t, WeightLayout);
MESHLM_INSTANTIATE(Precision::fp32)
MESHLM_INSTANTIATE(Precision::bf16)
MESHLM_INSTANTIATE(Precision::fp16)
#undef MESHLM_INSTANTIATE

}  // namespace meshlm::gpu
