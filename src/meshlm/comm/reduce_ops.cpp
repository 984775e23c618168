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

namespace {

// Conversions as function objects, so that the bf16 loops inline (and vectorise).
struct Bf16 {
  static float widen(uint16_t h) { return bf16_to_f32(h); }
  static uint16_t narrow(float f) { return f32_to_bf16(f); }
};
struct F16 {
  static float widen(uint16_t h) { return f16_to_f32(h); }
  static uint16_t narrow(float f) { return f32_to_f16(f); }
};

float combine(float a, float b, ReduceOp op) { return op == ReduceOp::max ? std::max(a, b) : a + b; }

template <class W>
void reduce_to_wire_impl(const float* __restrict mine, const uint16_t* __restrict in, uint16_t* __restrict out,
                         int64_t n, ReduceOp op) {
  for (int64_t i = 0; i < n; ++i) out[i] = W::narrow(combine(mine[i], W::widen(in[i]), op));
}

template <class W>
void reduce_to_wire_last_impl(float* dst, const float* mine, const uint16_t* __restrict in,
                              uint16_t* __restrict out, int64_t n, ReduceOp op, int size) {
  const float s = float(size);
  for (int64_t i = 0; i < n; ++i) {
    float v = combine(mine[i], W::widen(in[i]), op);
    if (op == ReduceOp::avg) v /= s;
    out[i] = W::narrow(v);
    dst[i] = W::widen(out[i]);
  }
}

}  // namespace

void reduce_to_wire(const float* mine, const uint16_t* in, uint16_t* out, int64_t n, DType wire, ReduceOp op) {
  MESHLM_ASSERT(is_half(wire), dtype_name(wire));
  if (wire == DType::bf16)
    reduce_to_wire_impl<Bf16>(mine, in, out, n, op);
  else
    reduce_to_wire_impl<F16>(mine, in, out, n, op);
}

void reduce_to_wire_last(float* dst, const float* mine, const uint16_t* in, uint16_t* out, int64_t n, DType wire,
                         ReduceOp op, int size) {
  MESHLM_ASSERT(is_half(wire), dtype_name(wire));
  if (wire == DType::bf16)
    reduce_to_wire_last_impl<Bf16>(dst, mine, in, out, n, op, size);
  else
    reduce_to_wire_last_impl<F16>(dst, mine, in, out, n, op, size);
}

void finish_avg(float* data, int64_t n, int size) {
  const float s = float(size);
  for (int64_t i = 0; i < n; ++i) data[i] /= s;
}

void finish_avg(int32_t* data, int64_t n, int size) {
  for (int64_t i = 0; i < n; ++i) data[i] /= size;
}

}  // namespace meshlm
