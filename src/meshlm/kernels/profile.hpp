#pragma once
// Per-op time of the kernel tables, for `meshlm bench --profile`. While profiling is on,
// kernels_for() hands out tables whose every entry times its call (a steady-clock read on
// each side, ~50 ns) and adds it to the op's total; a model built then keeps the timed table.
// Kernels are called from one thread (the model's), so the totals need no locking.
#include <cstdint>
#include <string_view>
#include <vector>

namespace meshlm {

struct OpTime {
  std::string_view op;  // the KernelTable entry, e.g. "linear_forward"
  double seconds = 0;
  int64_t calls = 0;
};

void set_kernel_profiling(bool on);
// Totals since the last reset, in KernelTable order (ops never called included, with 0).
std::vector<OpTime> kernel_profile();
void reset_kernel_profile();

}  // namespace meshlm
