#include "meshlm/comm/reduce_ops.hpp"

#include <algorithm>

#include "meshlm/core/error.hpp"

namespace meshlm {

bool reducible(DType dtype) {
  return dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16 || dtype == DType::i32;
}

void widen_to_f32(const void* src, float* dst, int64_t n, DType src_type) {
  const auto* h = static_cast<const uint16_t*>(src);
  if (src_type == DType::bf16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
  } else {
    MESHLM_ASSERT(src_type == DType::f16, dtype_name(src_type));
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h[i]);
  }
}

void narrow_from_f32(const float* src, void* dst, int64_t n, DType dst_type) {
  auto* h = static_cast<uint16_t*>(dst);
  if (dst_type == DType::bf16) {
    for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
  } else {
    MESHLM_ASSERT(dst_type == DType::f16, dtype_name(dst_type));
    for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(src[i]);
  }
}

template <class T>
static void reduce_into_impl(T* __restrict dst, const T* __restrict src, int64_t n, ReduceOp op) {
  if (op == ReduceOp::max) {
    for (int64_t i = 0; i < n; ++i) dst[i] = std::max(dst[i], src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
  }
}

void reduce_into(float* dst, const float* src, int64_t n, ReduceOp op) { reduce_into_impl(dst, src, n, op); }
void reduce_into(int32_t* dst, const int32_t* src, int64_t n, ReduceOp op) { reduce_into_impl(dst, src, n, op); }

void finish_avg(float* data, int64_t n, int size) {
  const float s = float(size);
  for (int64_t i = 0; i < n; ++i) data[i] /= s;
}

void finish_avg(int32_t* data, int64_t n, int size) {
  for (int64_t i = 0; i < n; ++i) data[i] /= size;
}

}  // namespace meshlm
