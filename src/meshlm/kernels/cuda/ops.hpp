#pragma once
// The CUDA implementations behind KernelTable: the same contracts as the CPU ones
// (kernels/kernels.hpp), on GPU memory, queued on gpu::compute_stream() (core/cuda/context.hpp).
// Plain C++ declarations, so the table can be built without CUDA headers.
#include <cstdint>

#include "meshlm/core/precision.hpp"
#include "meshlm/kernels/kernels.hpp"

namespace meshlm::gpu {

// elementwise.cu (embedding, GELU, residual), layernorm.cu, cross_entropy.cu
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T,
                       int64_t C);
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B, int64_t T,
                        int64_t C);
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                       int64_t N, int64_t C, float eps);
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int64_t N, int64_t C);
void gelu_forward(float* out, const float* inp, int64_t N);
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t N);
void residual_forward(float* out, const float* a, const float* b, int64_t N);
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V, int64_t Vp);
void cross_entropy_backward(float* logits, const float* lse, const int32_t* targets, float dloss, int64_t N,
                            int64_t V, int64_t Vp);

// linear.cpp (cuBLASLt)
template <Precision P>
void linear_forward(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t IC,
                    int64_t OC, WeightLayout layout);
template <Precision P>
void linear_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                     int64_t N, int64_t IC, int64_t OC, WeightLayout layout);

// attention.cu
void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t H);
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse, int64_t B,
                        int64_t T, int64_t C, int64_t H);
void attention_cached_forward(float* out, float* kcache, float* vcache, const float* qkv, int64_t B, int64_t Tn,
                              int64_t pos, int64_t max_T, int64_t C, int64_t H);

// The table of the functions above for a precision (kernel_table.cpp).
const KernelTable& kernel_table(Precision precision);


// tensor_parallel.cu: the tensor-parallel entries
void add_bias(float* out, const float* bias, int64_t N, int64_t OC);
void embedding_rows_forward(float* out, const int32_t* tokens, const float* wte, int64_t first, int64_t rows, int64_t N,
                            int64_t C);
void embedding_rows_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t first, int64_t rows,
                             int64_t N, int64_t C);
void positions_forward(float* out, const float* wpe, int64_t B, int64_t T, int64_t C);
void positions_backward(float* dwpe, const float* dout, int64_t B, int64_t T, int64_t C);
void vocab_ce_max(float* rowmax, const float* logits, int64_t N, int64_t Vl, int64_t valid);
void vocab_ce_sums(float* sums, const float* logits, const float* rowmax, const int32_t* targets, int64_t first,
                   int64_t N, int64_t Vl, int64_t valid);
void vocab_ce_finish(float* losses, float* lse, const float* rowmax, const float* sums, const int32_t* targets,
                     int64_t N);
void vocab_ce_backward(float* logits, const float* lse, const int32_t* targets, float dloss, int64_t first, int64_t N,
                       int64_t Vl, int64_t valid);

// update.cu: the UpdateTable entries
void adam_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamScalars& s);
double sum_squares(const float* g, int64_t n);
void scale(float* g, int64_t n, float s);
const UpdateTable& update_table();

}  // namespace meshlm::gpu
