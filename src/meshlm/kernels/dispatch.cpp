#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/kernels.hpp"

#if MESHLM_HAVE_CUDA
#include "meshlm/kernels/cuda/ops.hpp"
#endif

namespace meshlm {

namespace {
// The CPU's tables, filled entry by entry by name from the lists (kernel_list.def,
// update_kernel_list.def), so an implementation can only land in its own entry.
template <Precision P>
KernelTable make_cpu_table() {
  KernelTable t;
#define MESHLM_KERNEL(name, params) t.name = cpu::name;
#define MESHLM_KERNEL_P(name, params) t.name = cpu::name<P>;
#include "meshlm/kernels/kernel_list.def"
  return t;
}

UpdateTable make_cpu_update_table() {
  UpdateTable t;
#define MESHLM_UPDATE_KERNEL(return_type, name, params) t.name = cpu::name;
#include "meshlm/kernels/update_kernel_list.def"
  return t;
}
}  // namespace

const KernelTable& kernels_for(Device device, Precision precision) {
  static const KernelTable fp32 = make_cpu_table<Precision::fp32>(), bf16 = make_cpu_table<Precision::bf16>(),
                           fp16 = make_cpu_table<Precision::fp16>();
  switch (device) {
    case Device::cpu:
      switch (precision) {
        case Precision::fp32: return fp32;
        case Precision::bf16: return bf16;
        case Precision::fp16: return fp16;
      }
      break;
    case Device::cuda:
#if MESHLM_HAVE_CUDA
      if (device_available(Device::cuda)) return gpu::kernel_table(precision);
#endif
      break;
  }
  throw UserError(cat("no kernels for device '", device_name(device), "' in this build"));
}

const UpdateTable& update_kernels_for(Device device) {
  static const UpdateTable cpu_updates = make_cpu_update_table();
  switch (device) {
    case Device::cpu: return cpu_updates;
    case Device::cuda:
#if MESHLM_HAVE_CUDA
      if (device_available(Device::cuda)) return gpu::update_table();
#endif
      break;
  }
  throw UserError(cat("no kernels for device '", device_name(device), "' in this build"));
}

}  // namespace meshlm
