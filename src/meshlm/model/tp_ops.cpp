#include "meshlm/model/tp_ops.hpp"

#include <algorithm>
#include <vector>

namespace meshlm {

void copy_to_tp_backward(TpCollectives* tp, float* dx, int64_t n) {
  if (tp && tp->size() > 1) tp->all_reduce_sum(dx, n);
}

void reduce_from_tp_forward(TpCollectives* tp, float* y, int64_t n) {
  if (tp && tp->size() > 1) tp->all_reduce_sum(y, n);
}

void gather_from_tp_forward(TpCollectives* tp, const float* local, float* whole, int64_t N, int64_t Cl) {
  const int64_t ranks = tp ? tp->size() : 1;
  if (ranks == 1) {
    std::copy_n(local, N * Cl, whole);
    return;
  }
  // The collective concatenates whole [N, Cl] blocks rank after rank; rows interleave them.
  std::vector<float> blocks(size_t(ranks * N * Cl));
  tp->all_gather(local, blocks.data(), N * Cl);
  for (int64_t r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < N; ++i)
      std::copy_n(blocks.data() + (r * N + i) * Cl, Cl, whole + i * ranks * Cl + r * Cl);
}

void scatter_to_tp_forward(TpCollectives* tp, const float* whole, float* local, int64_t N, int64_t Cl) {
  const int64_t ranks = tp ? tp->size() : 1, r = tp ? tp->rank() : 0;
  for (int64_t i = 0; i < N; ++i) std::copy_n(whole + i * ranks * Cl + r * Cl, Cl, local + i * Cl);
}

void gather_from_tp_backward(TpCollectives* tp, const float* dwhole, float* dlocal, int64_t N, int64_t Cl) {
  scatter_to_tp_forward(tp, dwhole, dlocal, N, Cl);
}

void scatter_to_tp_backward(TpCollectives* tp, const float* dlocal, float* dwhole, int64_t N, int64_t Cl) {
  gather_from_tp_forward(tp, dlocal, dwhole, N, Cl);
}

}  // namespace meshlm
