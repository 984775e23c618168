#pragma once
// Element-wise helpers shared by the backends: half-precision buffers are widened to f32,
// reduced there and narrowed once, so every backend rounds a bf16/f16 reduction the same way.
#include <cstdint>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

// Whether `dtype` can be reduced (f32, bf16, f16, i32); u16 holds token ids, never summed.
bool reducible(DType dtype);
// True for the half types reduced through an f32 copy.
inline bool is_half(DType dtype) { return dtype == DType::bf16 || dtype == DType::f16; }

void widen_to_f32(const void* src, float* dst, int64_t n, DType src_type);
void narrow_from_f32(const float* src, void* dst, int64_t n, DType dst_type);

// dst[i] = op(dst[i], src[i]); avg accumulates like sum (finish_avg divides afterwards).
void reduce_into(float* dst, const float* src, int64_t n, ReduceOp op);
void reduce_into(int32_t* dst, const int32_t* src, int64_t n, ReduceOp op);

// A hop of a reduction whose partial results travel as the half type `wire` (bf16/f16): the
// received values are widened and combined with this rank's f32 values in f32, then rounded
// once to `wire` for the next hop: out[i] = narrow(op(mine[i], widen(in[i]))).
void reduce_to_wire(const float* mine, const uint16_t* in, uint16_t* out, int64_t n, DType wire, ReduceOp op);
// The last hop: the same, divided by `size` for avg, and the rounded result also written
// widened to dst (which may be mine), so dst holds exactly what out sends.
void reduce_to_wire_last(float* dst, const float* mine, const uint16_t* in, uint16_t* out, int64_t n, DType wire,
                         ReduceOp op, int size);

// Divides by the group size: true division for f32, truncating for i32.
void finish_avg(float* data, int64_t n, int size);
void finish_avg(int32_t* data, int64_t n, int size);

}  // namespace meshlm
