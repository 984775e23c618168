#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/kernels.hpp"

namespace meshlm {

const KernelTable& kernels_for(Device device) {
  static const KernelTable cpu_table{
      cpu::embedding_forward, cpu::embedding_backward, cpu::layernorm_forward,     cpu::layernorm_backward,
      cpu::linear_forward,    cpu::linear_backward,    cpu::attention_forward,     cpu::attention_backward,
      cpu::gelu_forward,      cpu::gelu_backward,      cpu::residual_forward,      cpu::cross_entropy_forward,
      cpu::cross_entropy_backward, cpu::attention_cached_forward,
  };
  switch (device) {
    case Device::cpu: return cpu_table;
    case Device::cuda: break;
  }
  throw UserError(cat("no kernels for device '", device_name(device), "' in this build"));
}

}  // namespace meshlm
