#pragma once
// Megatron's communication pairs for tensor-parallel layers, each a forward with its backward.
// A replicated activation is [N, C] on every rank; a sharded one is this rank's column block
// [N, Cl] of the whole [N, Cl·tp] (rank r holds columns [r·Cl, (r+1)·Cl)). With one process
// (tp == nullptr) every op is the identity or a plain copy.
//
//   copy_to_tp       forward: identity            backward: all-reduce (sum) of the gradient
//   reduce_from_tp   forward: all-reduce (sum)    backward: identity
//   gather_from_tp   forward: all-gather columns  backward: keep this rank's columns (scatter)
//   scatter_to_tp    forward: keep own columns    backward: all-gather the gradient's columns
#include <cstdint>

#include "meshlm/core/device.hpp"
#include "meshlm/model/tensor_parallel.hpp"

namespace meshlm {

// Before a column-parallel layer: x[n] enters every rank's shard of the layer.
inline void copy_to_tp_forward(TpCollectives*, float*, int64_t) {}
void copy_to_tp_backward(TpCollectives* tp, float* dx, int64_t n);

// After a row-parallel layer: the ranks' partial sums y[n] become the whole output.
void reduce_from_tp_forward(TpCollectives* tp, float* y, int64_t n);
inline void reduce_from_tp_backward(TpCollectives*, float*, int64_t) {}

// local[N, Cl] on each rank -> whole[N, Cl·tp] on every rank (both in the memory of `device`),
// and back.
void gather_from_tp_forward(TpCollectives* tp, const float* local, float* whole, int64_t N, int64_t Cl,
                            Device device);
void gather_from_tp_backward(TpCollectives* tp, const float* dwhole, float* dlocal, int64_t N, int64_t Cl,
                             Device device);
void scatter_to_tp_forward(TpCollectives* tp, const float* whole, float* local, int64_t N, int64_t Cl,
                           Device device);
void scatter_to_tp_backward(TpCollectives* tp, const float* dlocal, float* dwhole, int64_t N, int64_t Cl,
                            Device device);

}  // namespace meshlm
