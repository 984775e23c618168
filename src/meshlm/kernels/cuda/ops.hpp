#pragma once
// The CUDA implementations behind KernelTable and UpdateTable: the same contracts as the CPU
// ones (kernel_list.def, update_kernel_list.def), on GPU memory, queued on
// gpu::compute_stream() (core/cuda/context.hpp). Declared from the same lists; plain C++, so
// the tables can be built without CUDA headers.
#include <cstdint>

#include "meshlm/core/precision.hpp"
#include "meshlm/kernels/kernel_args.hpp"

namespace meshlm {
struct KernelTable;
struct UpdateTable;
}  // namespace meshlm

namespace meshlm::gpu {

// elementwise.cu (embedding, GELU, residual), layernorm.cu, cross_entropy.cu, attention.cu,
// linear.cpp (cuBLASLt), tensor_parallel.cu
#define MESHLM_KERNEL(name, params) void name params;
#define MESHLM_KERNEL_P(name, params) template <Precision P> void name params;
#define MESHLM_KERNEL_CPU(name, params)  // dropout: not on the GPU yet (the model refuses it there)
#include "meshlm/kernels/kernel_list.def"

// update.cu
#define MESHLM_UPDATE_KERNEL(return_type, name, params) return_type name params;
#include "meshlm/kernels/update_kernel_list.def"

// The tables of the functions above (kernel_table.cpp).
const KernelTable& kernel_table(Precision precision);
const UpdateTable& update_table();

}  // namespace meshlm::gpu
