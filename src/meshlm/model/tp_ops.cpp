#include "meshlm/model/tp_ops.hpp"

#include <algorithm>
#include <vector>

#include "meshlm/core/buffer.hpp"

namespace meshlm {

void copy_to_tp_backward(TpCollectives* tp, float* dx, int64_t n) {
  if (tp && tp->size() > 1) tp->all_reduce_sum(dx, n);
}

void reduce_from_tp_forward(TpCollectives* tp, float* y, int64_t n) {
  if (tp && tp->size() > 1) tp->all_reduce_sum(y, n);
}

void gather_from_tp_forward(TpCollectives* tp, const float* local, float* whole, int64_t N, int64_t Cl,
                            Device device) {
  const int64_t ranks = tp ? tp->size() : 1;
  if (ranks == 1) {
    copy_bytes(whole, device, local, device, size_t(N * Cl) * sizeof(float));
    return;
  }
  // The collective concatenates whole [N, Cl] blocks rank after rank; rows interleave them.
  Buffer blocks(device, DType::f32, size_t(ranks * N * Cl));
  tp->all_gather(local, blocks.data<float>(), N * Cl);
  for (int64_t r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < N; ++i)
      copy_bytes(whole + i * ranks * Cl + r * Cl, device, blocks.data<float>() + (r * N + i) * Cl, device,
                 size_t(Cl) * sizeof(float));
}

void scatter_to_tp_forward(TpCollectives* tp, const float* whole, float* local, int64_t N, int64_t Cl,
                           Device device) {
  const int64_t ranks = tp ? tp->size() : 1, r = tp ? tp->rank() : 0;
  for (int64_t i = 0; i < N; ++i)
    copy_bytes(local + i * Cl, device, whole + i * ranks * Cl + r * Cl, device, size_t(Cl) * sizeof(float));
}

void gather_from_tp_backward(TpCollectives* tp, const float* dwhole, float* dlocal, int64_t N, int64_t Cl,
                             Device device) {
  scatter_to_tp_forward(tp, dwhole, dlocal, N, Cl, device);
}

void scatter_to_tp_backward(TpCollectives* tp, const float* dlocal, float* dwhole, int64_t N, int64_t Cl,
                            Device device) {
  gather_from_tp_forward(tp, dlocal, dwhole, N, Cl, device);
}

}  // namespace meshlm
