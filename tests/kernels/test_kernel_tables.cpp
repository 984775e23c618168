// The kernel tables are generated from kernel_list.def and update_kernel_list.def: every entry
// of every table (the CPU's in each precision; the GPU's where there is one) holds a function,
// is visited once by for_each_entry under its own name, and the precision-templated entries
// hold their own precision's instantiation.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "meshlm/core/device.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/kernels.hpp"

namespace meshlm {
namespace {

// The entries for_each_entry visits: their names, whether each holds a function, and where
// each lies inside the table.
struct Visit {
  std::vector<std::string> names;
  std::vector<const void*> addresses;
  size_t bytes = 0;
  int null_entries = 0;
};
template <class Table>
Visit visit(const Table& table) {
  Visit v;
  for_each_entry(table, [&](std::string_view name, const auto& entry) {
    v.names.emplace_back(name);
    v.addresses.push_back(&entry);
    v.bytes += sizeof(entry);
    if (!entry) ++v.null_entries;
  });
  return v;
}

// The entries only the CPU implements (MESHLM_KERNEL_CPU in kernel_list.def).
std::set<std::string> cpu_only_entries() {
  std::set<std::string> names;
#define MESHLM_KERNEL(name, params)
#define MESHLM_KERNEL_CPU(name, params) names.insert(#name);
#include "meshlm/kernels/kernel_list.def"
  return names;
}

// Each member of the table visited exactly once, each with a distinct, non-empty name and a
// function (except the `may_be_empty` entries, which may hold none).
template <class Table>
void expect_complete(const Table& table, const std::string& what, const std::set<std::string>& may_be_empty = {}) {
  const Visit v = visit(table);
  int unexpected_nulls = 0;
  for_each_entry(table, [&](std::string_view name, const auto& entry) {
    if (!entry && !may_be_empty.count(std::string(name))) ++unexpected_nulls;
  });
  EXPECT_EQ(unexpected_nulls, 0) << what;
  if (may_be_empty.empty()) EXPECT_EQ(v.null_entries, 0) << what;
  EXPECT_EQ(v.bytes, sizeof(Table)) << what << ": for_each_entry misses members or visits one twice";
  const std::set<const void*> distinct(v.addresses.begin(), v.addresses.end());
  EXPECT_EQ(distinct.size(), v.addresses.size()) << what;
  for (const void* a : v.addresses) {
    EXPECT_GE(static_cast<const char*>(a), reinterpret_cast<const char*>(&table)) << what;
    EXPECT_LT(static_cast<const char*>(a), reinterpret_cast<const char*>(&table) + sizeof(Table)) << what;
  }
  const std::set<std::string> names(v.names.begin(), v.names.end());
  EXPECT_EQ(names.size(), v.names.size()) << what << ": two entries share a name";
  EXPECT_EQ(names.count(""), 0u) << what;
}

constexpr Precision kPrecisions[] = {Precision::fp32, Precision::bf16, Precision::fp16};

TEST(KernelTables, CpuTablesAreCompleteInEveryPrecision) {
  for (Precision p : kPrecisions) expect_complete(kernels_for(Device::cpu, p), std::string(precision_name(p)));
  expect_complete(update_kernels_for(Device::cpu), "updates");
}

TEST(KernelTables, EntriesAreVisitedUnderTheirOwnNames) {
  const KernelTable& k = kernels_for(Device::cpu);
  const Visit v = visit(k);
  auto address_of = [&](std::string_view name) -> const void* {
    for (size_t i = 0; i < v.names.size(); ++i)
      if (v.names[i] == name) return v.addresses[i];
    return nullptr;
  };
  EXPECT_EQ(address_of("embedding_forward"), &k.embedding_forward);
  EXPECT_EQ(address_of("linear_forward"), &k.linear_forward);
  EXPECT_EQ(address_of("linear_backward"), &k.linear_backward);
  EXPECT_EQ(address_of("attention_cached_forward"), &k.attention_cached_forward);
  EXPECT_EQ(address_of("vocab_ce_backward"), &k.vocab_ce_backward);
  const UpdateTable& u = update_kernels_for(Device::cpu);
  const Visit uv = visit(u);
  ASSERT_EQ(uv.names, (std::vector<std::string>{"adam_update", "sum_squares", "scale"}));
  EXPECT_EQ(uv.addresses[1], &u.sum_squares);
}

TEST(KernelTables, CpuEntriesHoldTheirOwnImplementation) {
  const KernelTable& k = kernels_for(Device::cpu);
  // Entries of the same signature, which a positional table could swap without a compile
  // error, each hold the function of their own name.
  EXPECT_EQ(k.positions_forward.function(), &cpu::positions_forward);
  EXPECT_EQ(k.positions_backward.function(), &cpu::positions_backward);
  EXPECT_EQ(k.gelu_backward.function(), &cpu::gelu_backward);
  EXPECT_EQ(k.residual_forward.function(), &cpu::residual_forward);
  const UpdateTable& u = update_kernels_for(Device::cpu);
  EXPECT_EQ(u.adam_update.function(), &cpu::adam_update);
  EXPECT_EQ(u.sum_squares.function(), &cpu::sum_squares);
  EXPECT_EQ(u.scale.function(), &cpu::scale);
  // The precision-templated entries hold the table's own precision.
  EXPECT_EQ(kernels_for(Device::cpu, Precision::fp32).linear_forward.function(),
            &cpu::linear_forward<Precision::fp32>);
  EXPECT_EQ(kernels_for(Device::cpu, Precision::bf16).linear_forward.function(),
            &cpu::linear_forward<Precision::bf16>);
  EXPECT_EQ(kernels_for(Device::cpu, Precision::fp16).linear_backward.function(),
            &cpu::linear_backward<Precision::fp16>);
}

TEST(KernelTables, TheDropoutKernelsAreTheCpuOnlyEntries) {
  EXPECT_EQ(cpu_only_entries(),
            (std::set<std::string>{"attention_dropout_forward", "attention_dropout_backward", "dropout_apply"}));
}

TEST(KernelTables, PlainTablesCountNothing) {
  for (Precision p : kPrecisions)
    for_each_entry(kernels_for(Device::cpu, p),
                   [&](std::string_view name, const auto& entry) { EXPECT_EQ(entry.counter(), nullptr) << name; });
}

TEST(KernelTables, CudaTablesAreCompleteInEveryPrecision) {
  if (!device_available(Device::cuda))
    GTEST_SKIP() << (built_with_cuda() ? "no CUDA GPU on this machine" : "this build has no CUDA backend");
  for (Precision p : kPrecisions) {
    const KernelTable& gpu = kernels_for(Device::cuda, p);
    expect_complete(gpu, std::string("cuda ") + std::string(precision_name(p)), cpu_only_entries());
    EXPECT_NE(gpu.linear_forward.function(), kernels_for(Device::cpu, p).linear_forward.function());
  }
  expect_complete(update_kernels_for(Device::cuda), "cuda updates");
  EXPECT_EQ(visit(kernels_for(Device::cuda)).names, visit(kernels_for(Device::cpu)).names);
}

}  // namespace
}  // namespace meshlm
