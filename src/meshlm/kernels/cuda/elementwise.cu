// Token + position embedding, GELU (tanh approximation) and the residual add on the GPU.
// The same formulas as cpu/embedding.cpp and cpu/elementwise.cpp, including the CPU's exp and
// tanh approximations (cpu/vec_math.hpp), so both agree to float rounding:
//   embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]
//              dwte[tokens[b,t],:] += dout[b,t,:];  dwpe[t,:] += Σ_b dout[b,t,:]
//   gelu(x) = ½x(1 + tanh(u)),  u = √(2/π)(x + 0.044715x³)
//   gelu'(x) = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)
// The embedding backward is deterministic without atomics and adds in the CPU's order (rows
// in increasing b·T + t), so its results are bit-identical to the CPU's.
#include <algorithm>
#include <cstdint>

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/kernels/cuda/ops.hpp"
#include "meshlm/kernels/cuda/vec_math.cuh"

namespace meshlm::gpu {

namespace {

constexpr int kThreads = 256;
// Grids are capped and the kernels loop (grid-stride), so any size launches.
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

unsigned blocks_for(int64_t n) { return unsigned(std::min((n + kThreads - 1) / kThreads, kMaxBlocks)); }

// tanh(x) = 1 − 2/(e^{2x} + 1), as cpu/vec_math.hpp's tanh_fast; saturates at both ends.
__device__ __forceinline__ float tanh_fast(float x) { return 1.0f - 2.0f / (exp_fast(2.0f * x) + 1.0f); }

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

struct GeluForward {
  __device__ float operator()(float x) const {
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    return 0.5f * x * (1.0f + tanh_fast(u));
  }
};

// (x, dout) → dinp
struct GeluBackward {
  __device__ float operator()(float x, float d) const {
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    const float t = tanh_fast(u);
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    return d * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
  }
};

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// out[i] = f(a[i]). kVec4: every pointer is 16-byte aligned, so whole float4s are loaded and
// stored, and the n % 4 last elements are done one by one. Each element is read and written
// by the same thread, so out may alias a.
template <bool kVec4, class F>
__global__ void map1_kernel(float* out, const float* a, int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (kVec4) {
    const int64_t n4 = n / 4;
    const float4* a4 = reinterpret_cast<const float4*>(a);
    float4* out4 = reinterpret_cast<float4*>(out);
    for (int64_t i = start; i < n4; i += stride) {
      const float4 x = a4[i];
      out4[i] = make_float4(f(x.x), f(x.y), f(x.z), f(x.w));
    }
    done = n4 * 4;
  }
  for (int64_t i = done + start; i < n; i += stride) out[i] = f(a[i]);
}

// out[i] = f(a[i], b[i]); as map1_kernel.
template <bool kVec4, class F>
__global__ void map2_kernel(float* out, const float* a, const float* b, int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (kVec4) {
    const int64_t n4 = n / 4;
    const float4* a4 = reinterpret_cast<const float4*>(a);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    float4* out4 = reinterpret_cast<float4*>(out);
    for (int64_t i = start; i < n4; i += stride) {
      const float4 x = a4[i], y = b4[i];
      out4[i] = make_float4(f(x.x, y.x), f(x.y, y.y), f(x.z, y.z), f(x.w, y.w));
    }
    done = n4 * 4;
  }
  for (int64_t i = done + start; i < n; i += stride) out[i] = f(a[i], b[i]);
}

template <class F>
void map1(float* out, const float* a, int64_t n, F f) {
  if (n <= 0) return;
  if (aligned16(out) && aligned16(a))
    map1_kernel<true><<<blocks_for((n + 3) / 4), kThreads, 0, compute_stream()>>>(out, a, n, f);
  else
    map1_kernel<false><<<blocks_for(n), kThreads, 0, compute_stream()>>>(out, a, n, f);
  MESHLM_CUDA_CHECK_LAUNCH();
}

template <class F>
void map2(float* out, const float* a, const float* b, int64_t n, F f) {
  if (n <= 0) return;
  if (aligned16(out) && aligned16(a) && aligned16(b))
    map2_kernel<true><<<blocks_for((n + 3) / 4), kThreads, 0, compute_stream()>>>(out, a, b, n, f);
  else
    map2_kernel<false><<<blocks_for(n), kThreads, 0, compute_stream()>>>(out, a, b, n, f);
  MESHLM_CUDA_CHECK_LAUNCH();
}

// Block (bt, y) writes channels [y·kThreads, (y+1)·kThreads) of row bt.
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                                         int64_t BT, int64_t T, int64_t C) {
  const int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (int64_t bt = blockIdx.x; bt < BT; bt += gridDim.x)
    out[bt * C + c] = wte[int64_t(tokens[bt]) * C + c] + wpe[(bt % T) * C + c];
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T,
                       int64_t C) {
  const int64_t BT = B * T;
  if (BT <= 0 || C <= 0) return;
  const dim3 grid(unsigned(std::min(BT, kMaxBlocks)), unsigned((C + kThreads - 1) / kThreads));
  embedding_forward_kernel<<<grid, kThreads, 0, compute_stream()>>>(out, tokens, wte, wpe, BT, T, C);
  MESHLM_CUDA_CHECK_LAUNCH();
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B, int64_t T,
                        int64_t C) {
  const int64_t BT = B * T;
  if (BT <= 0 || C <= 0) return;
  positions_backward(dwpe, dout, B, T, C);  // tensor_parallel.cu: b in increasing order, as the CPU
  // Every token is a row of dwte: the vocabulary-slice scatter (tensor_parallel.cu) with the
  // whole vocabulary as the slice (deterministic, no atomics, the CPU's order of additions).
  embedding_rows_backward(dwte, dout, tokens, 0, INT64_MAX, BT, C);
}

void gelu_forward(float* out, const float* inp, int64_t N) { map1(out, inp, N, GeluForward{}); }

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t N) {
  map2(dinp, inp, dout, N, GeluBackward{});
}

void residual_forward(float* out, const float* a, const float* b, int64_t N) { map2(out, a, b, N, Add{}); }

}  // namespace meshlm::gpu
