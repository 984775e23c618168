#pragma once
// Element types of buffers and files. Compute is f32 today; bf16/f16 arrive with mixed
// precision, and the conversions below already serve checkpoints stored in half precision.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace meshlm {

enum class DType : uint8_t { f32, bf16, f16, i32, u16 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: case DType::u16: return 2;
  }
  return 0;
}

std::string_view dtype_name(DType t);
// Parses "f32", "bf16", ...; throws UserError naming `what` for an unknown name.
DType parse_dtype(std::string_view name, std::string_view what);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace meshlm
