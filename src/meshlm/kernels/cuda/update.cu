// The GPU's UpdateTable entries: the Adam step, the squared norm for clipping, scaling.
//
// nvcc contracts a*b + c into fused multiply-adds by default; the Adam step must round each
// product on its own where the CPU (and PyTorch) does, so every operation is written with an
// explicitly rounded intrinsic: __fmaf_rn where the CPU fuses, __fmul_rn / __fadd_rn /
// __fdiv_rn / __fsqrt_rn elsewhere. The result is bit-identical to the CPU update.
#include <vector>

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cuda/ops.hpp"

namespace meshlm::gpu {

namespace {

constexpr int kThreads = 256;
// The CPU's block of the norm (kernels/cpu/update.cpp): one CUDA block per block of elements.
constexpr int64_t kNormBlock = int64_t(1) << 14;

int64_t grid_for(int64_t n) { return (n + kThreads - 1) / kThreads; }

__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, int64_t n, AdamScalars s) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float pi = __fmul_rn(p[i], s.param_scale);
  float gi = g[i];
  if (s.l2 != 0.0f) gi = __fmaf_rn(pi, s.l2, gi);
  const float mi = __fmaf_rn(gi, s.one_minus_b1, __fmul_rn(m[i], s.b1));
  const float vi = __fmaf_rn(__fmul_rn(s.one_minus_b2, gi), gi, __fmul_rn(v[i], s.b2));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bias_correction2_sqrt), s.eps);
  m[i] = mi;
  v[i] = vi;
  p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(s.neg_step_size, mi), denom));
}

// One block per kNormBlock elements: each thread sums a strided subset in double, then a
// fixed tree over the block's threads. The order depends only on n, never on timing.
__global__ void sum_squares_kernel(double* __restrict__ block_sums, const float* __restrict__ g, int64_t n) {
  __shared__ double partial[kThreads];
  const int64_t begin = int64_t(blockIdx.x) * kNormBlock;
  const int64_t end = begin + kNormBlock < n ? begin + kNormBlock : n;
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) sum += double(g[i]) * double(g[i]);
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) block_sums[blockIdx.x] = partial[0];
}

__global__ void scale_kernel(float* __restrict__ g, int64_t n, float s) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) g[i] = __fmul_rn(g[i], s);
}

// The block sums of the norm: allocated when it must grow, kept for the process.
double* block_sum_scratch(int64_t count) {
  static double* scratch = nullptr;
  static int64_t capacity = 0;
  if (count > capacity) {
    if (scratch) {
      synchronize();
      MESHLM_CUDA_CHECK(cudaFree(scratch));
    }
    MESHLM_CUDA_CHECK(cudaMalloc(&scratch, size_t(count) * sizeof(double)));
    capacity = count;
  }
  return scratch;
}

}  // namespace

void adam_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamScalars& s) {
  if (n <= 0) return;
  adam_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(p, g, m, v, n, s);
  MESHLM_CUDA_CHECK_LAUNCH();
}

double sum_squares(const float* g, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t blocks = (n + kNormBlock - 1) / kNormBlock;
  double* sums = block_sum_scratch(blocks);
  sum_squares_kernel<<<blocks, kThreads, 0, compute_stream()>>>(sums, g, n);
  MESHLM_CUDA_CHECK_LAUNCH();
  std::vector<double> host(static_cast<size_t>(blocks));
  MESHLM_CUDA_CHECK(cudaMemcpyAsync(host.data(), sums, size_t(blocks) * sizeof(double), cudaMemcpyDeviceToHost,
                                    compute_stream()));
  synchronize();
  double total = 0.0;
  for (double b : host) total += b;  // block order, as on the CPU
  return total;
}

void scale(float* g, int64_t n, float s) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(g, n, s);
  MESHLM_CUDA_CHECK_LAUNCH();
}

}  // namespace meshlm::gpu
