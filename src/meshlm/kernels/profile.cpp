#include "meshlm/kernels/profile.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

KernelProfile::KernelProfile() {
  const KernelTable names_only{};
  for_each_entry(names_only, [&](std::string_view name, const auto&) { ops_.push_back({name}); });
}

void KernelProfile::reset() {
  for (OpTime& o : ops_) o.seconds = 0, o.calls = 0;
}

KernelTable profiled(const KernelTable& base, KernelProfile& profile) {
  KernelTable table = base;
  size_t i = 0;
  for_each_entry(table, [&](std::string_view name, auto& entry) {
    OpTime& total = profile.ops_[i++];
    MESHLM_ASSERT(total.op == name, "profile entry ", total.op, " for kernel ", name);
    entry.count_into(&total);
  });
  return table;
}

}  // namespace meshlm
