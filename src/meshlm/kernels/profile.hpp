#pragma once
// Per-op time of a kernel table, for `meshlm bench --profile`. A KernelProfile holds one
// total per KernelTable entry; profiled(table, profile) is a copy of the table whose every
// entry times its call (a steady-clock read on each side, ~50 ns) and adds it to that
// profile. The plain tables stay untimed, so only the model built with the copy is measured.
// A table's kernels are called from one thread (its model's), so the totals need no locking.
#include <vector>

#include "meshlm/kernels/kernels.hpp"

namespace meshlm {

class KernelProfile {
 public:
  KernelProfile();  // every entry, at zero
  // Tables point at the totals: a profile stays where it is.
  KernelProfile(const KernelProfile&) = delete;
  KernelProfile& operator=(const KernelProfile&) = delete;

  // Totals since construction or the last reset, in KernelTable order (ops never called
  // included, with 0).
  const std::vector<OpTime>& ops() const { return ops_; }
  void reset();

 private:
  friend KernelTable profiled(const KernelTable& base, KernelProfile& profile);
  std::vector<OpTime> ops_;  // never resized: entries point into it
};

// A copy of `base` whose entries count into `profile` (which must outlive the copy's use).
KernelTable profiled(const KernelTable& base, KernelProfile& profile);

}  // namespace meshlm
