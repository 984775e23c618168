#pragma once
// The arithmetic precision of a model's forward and backward passes (mixed precision).
//   fp32  everything in f32
//   bf16  matrix products take bf16 operands and accumulate in f32
//   fp16  matrix products take f16 operands (range ±65504: fp16 training needs loss scaling)
// Parameters (master weights), optimizer state, LayerNorm, softmax, GELU, the residual stream
// and the loss stay f32 in every precision.
#include <cstdint>
#include <string_view>

#include "meshlm/core/enum_names.hpp"

namespace meshlm {

enum class Precision : uint8_t { fp32, bf16, fp16 };
inline constexpr EnumNames<Precision, 3> kPrecisionNames{
    {{Precision::fp32, "fp32"}, {Precision::bf16, "bf16"}, {Precision::fp16, "fp16"}}};

std::string_view precision_name(Precision p);
// "fp32" | "bf16" | "fp16"; UserError naming `what` otherwise.
Precision parse_precision(std::string_view name, std::string_view what = "precision");

}  // namespace meshlm
