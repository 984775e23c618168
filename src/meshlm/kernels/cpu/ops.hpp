#pragma once
// The CPU implementations behind KernelTable and UpdateTable, declared from the lists that hold
// their parameters and contracts (kernel_list.def, update_kernel_list.def). The linear layers'
// matrix products come in each Precision (instantiated for all three in linear.cpp).
#include <cstdint>

#include "meshlm/core/precision.hpp"
#include "meshlm/kernels/kernel_args.hpp"

namespace meshlm::cpu {

#define MESHLM_KERNEL(name, params) void name params;
#define MESHLM_KERNEL_P(name, params) template <Precision P> void name params;
#include "meshlm/kernels/kernel_list.def"

#define MESHLM_UPDATE_KERNEL(return_type, name, params) return_type name params;
#include "meshlm/kernels/update_kernel_list.def"

}  // namespace meshlm::cpu
