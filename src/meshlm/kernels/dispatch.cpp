#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/kernels.hpp"
#include "meshlm/kernels/profile.hpp"

#include <array>

#if MESHLM_HAVE_CUDA
#include "meshlm/kernels/cuda/ops.hpp"
#endif

namespace meshlm {

namespace {
template <Precision P>
const KernelTable& cpu_table() {
  static const KernelTable table{
      cpu::embedding_forward,    cpu::embedding_backward,    cpu::layernorm_forward,     cpu::layernorm_backward,
      cpu::linear_forward<P>,    cpu::linear_backward<P>,    cpu::attention_forward,     cpu::attention_backward,
      cpu::gelu_forward,         cpu::gelu_backward,         cpu::residual_forward,      cpu::cross_entropy_forward,
      cpu::cross_entropy_backward, cpu::attention_cached_forward, cpu::add_bias, cpu::embedding_rows_forward,
      cpu::embedding_rows_backward, cpu::positions_forward, cpu::positions_backward, cpu::vocab_ce_max,
      cpu::vocab_ce_sums, cpu::vocab_ce_finish, cpu::vocab_ce_backward,
  };
  return table;
}

// Profiling: every entry of a timed table calls the same entry of the plain table between two
// clock reads. One wrapper per (precision, entry), generated from the entry's own type.
#define MESHLM_KERNEL_ENTRIES(X)                                                                            \
  X(embedding_forward) X(embedding_backward) X(layernorm_forward) X(layernorm_backward) X(linear_forward) \
  X(linear_backward) X(attention_forward) X(attention_backward) X(gelu_forward) X(gelu_backward)          \
  X(residual_forward) X(cross_entropy_forward) X(cross_entropy_backward) X(attention_cached_forward)         \
  X(add_bias) X(embedding_rows_forward) X(embedding_rows_backward) X(positions_forward) X(positions_backward) \
  X(vocab_ce_max) X(vocab_ce_sums) X(vocab_ce_finish) X(vocab_ce_backward)

enum OpIndex : size_t {
#define MESHLM_INDEX(name) op_##name,
  MESHLM_KERNEL_ENTRIES(MESHLM_INDEX)
#undef MESHLM_INDEX
  op_count
};
constexpr std::array<std::string_view, op_count> kOpNames = {
#define MESHLM_NAME(name) #name,
    MESHLM_KERNEL_ENTRIES(MESHLM_NAME)
#undef MESHLM_NAME
};

bool g_profiling = false;
std::array<double, op_count> g_seconds{};
std::array<int64_t, op_count> g_calls{};

template <Precision P, size_t I, auto Entry, class F>
struct Timed;
template <Precision P, size_t I, auto Entry, class... A>
struct Timed<P, I, Entry, void (*)(A...)> {
  static void call(A... args) {
    const Timer t;
    (cpu_table<P>().*Entry)(args...);
    g_seconds[I] += t.seconds();
    ++g_calls[I];
  }
};

template <Precision P>
const KernelTable& timed_table() {
#define MESHLM_TIMED(name) \
  Timed<P, op_##name, &KernelTable::name, decltype(KernelTable::name)>::call,
  static const KernelTable table{MESHLM_KERNEL_ENTRIES(MESHLM_TIMED)};
#undef MESHLM_TIMED
  return table;
}

template <Precision P>
const KernelTable& cpu_kernels() {
  return g_profiling ? timed_table<P>() : cpu_table<P>();
}
}  // namespace

void set_kernel_profiling(bool on) { g_profiling = on; }

std::vector<OpTime> kernel_profile() {
  std::vector<OpTime> out;
  for (size_t i = 0; i < op_count; ++i) out.push_back({kOpNames[i], g_seconds[i], g_calls[i]});
  return out;
}

void reset_kernel_profile() {
  g_seconds.fill(0);
  g_calls.fill(0);
}

const KernelTable& kernels_for(Device device, Precision precision) {
  switch (device) {
    case Device::cpu:
      switch (precision) {
        case Precision::fp32: return cpu_kernels<Precision::fp32>();
        case Precision::bf16: return cpu_kernels<Precision::bf16>();
        case Precision::fp16: return cpu_kernels<Precision::fp16>();
      }
      break;
    case Device::cuda:
#if MESHLM_HAVE_CUDA
      // The per-op profile times host calls; GPU kernels are asynchronous, so it covers the CPU only.
      if (device_available(Device::cuda)) return gpu::kernel_table(precision);
#endif
      break;
  }
  throw UserError(cat("no kernels for device '", device_name(device), "' in this build"));
}

const UpdateTable& update_kernels_for(Device device) {
  static const UpdateTable cpu_updates{cpu::adam_update, cpu::sum_squares, cpu::scale};
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
