// Profiling is a property of a table: profiled(table, profile) is a copy that counts every call
// and its time into that profile, and nothing else. The plain table and other profiles are
// untouched, and the profiled copy computes exactly what the plain one does.
#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/kernels.hpp"
#include "meshlm/kernels/profile.hpp"

#include "random_inputs.hpp"

namespace meshlm {
namespace {

using testing_kernels::randn;
using testing_kernels::Vec;

const OpTime& op(const KernelProfile& p, std::string_view name) {
  for (const OpTime& o : p.ops())
    if (o.op == name) return o;
  ADD_FAILURE() << "no op " << name << " in the profile";
  static const OpTime none{};
  return none;
}

void expect_untouched(const KernelProfile& p, const char* what) {
  for (const OpTime& o : p.ops()) {
    EXPECT_EQ(o.calls, 0) << what << ": " << o.op;
    EXPECT_EQ(o.seconds, 0.0) << what << ": " << o.op;
  }
}

TEST(KernelProfile, ListsEveryEntryInTableOrder) {
  const KernelProfile p;
  std::vector<std::string_view> names;
  for_each_entry(kernels_for(Device::cpu), [&](std::string_view name, const auto&) { names.push_back(name); });
  ASSERT_EQ(p.ops().size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(p.ops()[i].op, names[i]);
  expect_untouched(p, "a new profile");
}

TEST(KernelProfile, ProfiledTableCountsIntoItsOwnProfileOnly) {
  const KernelTable& plain = kernels_for(Device::cpu);
  KernelProfile mine, other;
  const KernelTable timed = profiled(plain, mine);
  const KernelTable other_timed = profiled(plain, other);
  for_each_entry(timed, [&](std::string_view name, const auto& entry) {
    EXPECT_NE(entry.counter(), nullptr) << name;
  });

  const size_t count = size_t(1) << 16;
  const int64_t n = int64_t(count);
  const Vec x = randn(count, 1), y = randn(count, 2);
  Vec timed_out(count), plain_out(count), sum(count);
  for (int i = 0; i < 3; ++i) timed.gelu_forward(timed_out.data(), x.data(), n);
  timed.residual_forward(sum.data(), x.data(), y.data(), n);
  plain.gelu_forward(plain_out.data(), x.data(), n);
  EXPECT_EQ(timed_out, plain_out);

  EXPECT_EQ(op(mine, "gelu_forward").calls, 3);
  EXPECT_GT(op(mine, "gelu_forward").seconds, 0.0);
  EXPECT_EQ(op(mine, "residual_forward").calls, 1);
  EXPECT_GT(op(mine, "residual_forward").seconds, 0.0);
  for (const OpTime& o : mine.ops()) {
    if (o.op != "gelu_forward" && o.op != "residual_forward") {
      EXPECT_EQ(o.calls, 0) << o.op;
    }
  }
  expect_untouched(other, "another table's profile");
  for_each_entry(plain, [&](std::string_view name, const auto& entry) { EXPECT_EQ(entry.counter(), nullptr) << name; });
  (void)other_timed;

  mine.reset();
  expect_untouched(mine, "a reset profile");
  timed.gelu_forward(timed_out.data(), x.data(), n);
  EXPECT_EQ(op(mine, "gelu_forward").calls, 1);
}

TEST(KernelProfile, ProfilingAProfiledTableMovesItsCounts) {
  KernelProfile first, second;
  const KernelTable once = profiled(kernels_for(Device::cpu), first);
  const KernelTable again = profiled(once, second);
  const Vec x = randn(64, 3);
  Vec out(64);
  again.gelu_forward(out.data(), x.data(), 64);
  EXPECT_EQ(op(second, "gelu_forward").calls, 1);
  expect_untouched(first, "the first profile");
}

TEST(KernelProfile, EntryReturnsTheValueOfATimedCall) {
  KernelEntry<double(const float*, int64_t)> entry = cpu::sum_squares;
  const Vec g = randn(1000, 4);
  const double plain = entry(g.data(), int64_t(g.size()));
  OpTime total{"sum_squares"};
  entry.count_into(&total);
  EXPECT_EQ(entry(g.data(), int64_t(g.size())), plain);
  EXPECT_EQ(total.calls, 1);
  EXPECT_GE(total.seconds, 0.0);
}

}  // namespace
}  // namespace meshlm
