#pragma once
// Element conversions for low-precision matrix products.
#include <cstdint>

namespace meshlm::cpu {

// out[i] = in[i] rounded to bf16 (nearest even; NaN stays NaN), as raw bf16 bits.
void to_bf16(const float* in, uint16_t* out, int64_t n);
// out[i] = in[i] rounded to bf16 and widened back (exactly), kept in f32 storage.
void round_through_bf16(const float* in, float* out, int64_t n);
// out[i] = in[i] rounded to f16 and widened back: f16's precision and range (|x| beyond
// 65504 becomes ±inf, tiny values go subnormal or to zero), kept in f32 storage.
void round_through_f16(const float* in, float* out, int64_t n);

}  // namespace meshlm::cpu
