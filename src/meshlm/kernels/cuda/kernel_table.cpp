#include "meshlm/kernels/cuda/ops.hpp"

namespace meshlm::gpu {

namespace {
template <Precision P>
const KernelTable& table() {
  static const KernelTable t{
      embedding_forward,    embedding_backward,    layernorm_forward,     layernorm_backward,
      linear_forward<P>,    linear_backward<P>,    attention_forward,     attention_backward,
      gelu_forward,         gelu_backward,         residual_forward,      cross_entropy_forward,
      cross_entropy_backward, attention_cached_forward, add_bias,          embedding_rows_forward,
      embedding_rows_backward, positions_forward,  positions_backward,    vocab_ce_max,
      vocab_ce_sums,        vocab_ce_finish,       vocab_ce_backward,
  };
  return t;
}
}  // namespace

const KernelTable& kernel_table(Precision precision) {
  switch (precision) {
    case Precision::fp32: return table<Precision::fp32>();
    case Precision::bf16: return table<Precision::bf16>();
    case Precision::fp16: return table<Precision::fp16>();
  }
  return table<Precision::fp32>();
}

}  // namespace meshlm::gpu
