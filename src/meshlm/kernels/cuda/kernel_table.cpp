// The GPU's tables, filled entry by entry by name from the lists (kernel_list.def,
// update_kernel_list.def), so an implementation can only land in its own entry.
#include "meshlm/kernels/cuda/ops.hpp"
#include "meshlm/kernels/kernels.hpp"

namespace meshlm::gpu {

namespace {
template <Precision P>
KernelTable make_table() {
  KernelTable t;
#define MESHLM_KERNEL(name, params) t.name = gpu::name;
#define MESHLM_KERNEL_P(name, params) t.name = gpu::name<P>;
#define MESHLM_KERNEL_CPU(name, params)  // left empty: the CPU-only entries
#include "meshlm/kernels/kernel_list.def"
  return t;
}
}  // namespace

const KernelTable& kernel_table(Precision precision) {
  static const KernelTable fp32 = make_table<Precision::fp32>(), bf16 = make_table<Precision::bf16>(),
                           fp16 = make_table<Precision::fp16>();
  switch (precision) {
    case Precision::fp32: return fp32;
    case Precision::bf16: return bf16;
    case Precision::fp16: return fp16;
  }
  return fp32;
}

const UpdateTable& update_table() {
  static const UpdateTable table = [] {
    UpdateTable t;
#define MESHLM_UPDATE_KERNEL(return_type, name, params) t.name = gpu::name;
#include "meshlm/kernels/update_kernel_list.def"
    return t;
  }();
  return table;
}

}  // namespace meshlm::gpu
