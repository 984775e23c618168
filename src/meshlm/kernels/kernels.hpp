#pragma once
// The kernel tables: every op the model runs (KernelTable) and the elementwise updates of the
// optimizer and clipping (UpdateTable), one member per entry of kernel_list.def and
// update_kernel_list.def, where each entry's parameters and contract are written once.
// `kernels_for(device, precision)` and `update_kernels_for(device)` are the one place that
// switches on the device; model code calls through a table (`k.linear_forward(...)`) and
// carries no device conditionals.
#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "meshlm/core/device.hpp"
#include "meshlm/core/precision.hpp"
#include "meshlm/kernels/kernel_args.hpp"
#include "meshlm/kernels/kernel_entry.hpp"

namespace meshlm {

struct KernelTable {
#define MESHLM_KERNEL(name, params) KernelEntry<void params> name;
#include "meshlm/kernels/kernel_list.def"
};

struct UpdateTable {
#define MESHLM_UPDATE_KERNEL(return_type, name, params) KernelEntry<return_type params> name;
#include "meshlm/kernels/update_kernel_list.def"
};

// Calls f(name, entry) for every entry of `table`, in list order (const tables give const entries).
template <class Table, class F>
  requires std::same_as<std::remove_const_t<Table>, KernelTable>
void for_each_entry(Table& table, F&& f) {
#define MESHLM_KERNEL(name, params) f(std::string_view(#name), table.name);
#include "meshlm/kernels/kernel_list.def"
}
template <class Table, class F>
  requires std::same_as<std::remove_const_t<Table>, UpdateTable>
void for_each_entry(Table& table, F&& f) {
#define MESHLM_UPDATE_KERNEL(return_type, name, params) f(std::string_view(#name), table.name);
#include "meshlm/kernels/update_kernel_list.def"
}

// The kernels of a device in a precision (the matrix products of the linear layers take that
// precision's operands; attention and every other kernel are f32 throughout); throws UserError if
// this build has no backend for the device. To profile, run a copy (profile.hpp: profiled()).
const KernelTable& kernels_for(Device device, Precision precision = Precision::fp32);

const UpdateTable& update_kernels_for(Device device);

}  // namespace meshlm
