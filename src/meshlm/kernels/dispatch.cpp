#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/kernels.hpp"

namespace meshlm {

namespace {
template <Precision P>
const KernelTable& cpu_table() {
  static const KernelTable table{
      cpu::embedding_forward,    cpu::embedding_backward,    cpu::layernorm_forward,     cpu::layernorm_backward,
      cpu::linear_forward<P>,    cpu::linear_backward<P>,    cpu::attention_forward<P>,  cpu::attention_backward<P>,
      cpu::gelu_forward,         cpu::gelu_backward,         cpu::residual_forward,      cpu::cross_entropy_forward,
      cpu::cross_entropy_backward, cpu::attention_cached_forward,
  };
  return table;
}
}  // namespace

const KernelTable& kernels_for(Device device, Precision precision) {
  switch (device) {
    case Device::cpu:
      switch (precision) {
        case Precision::fp32: return cpu_table<Precision::fp32>();
        case Precision::bf16: return cpu_table<Precision::bf16>();
        case Precision::fp16: return cpu_table<Precision::fp16>();
      }
      break;
    case Device::cuda: break;
  }
  throw UserError(cat("no kernels for device '", device_name(device), "' in this build"));
}

}  // namespace meshlm
