#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "meshlm/core/dtype.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {
namespace {

TEST(DType, HalfConversionsRoundTripRepresentableValues) {
  for (float v : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.333251953125f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v) << v;
  for (float v : {0.0f, 1.0f, -3.0f, std::ldexp(1.5f, 100), 0.0078125f}) EXPECT_EQ(bf16_to_f32(f32_to_bf16(v)), v) << v;
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DType, HalfRoundsToNearestEven) {
  // f16 spacing at 1 is 2^-10: 1 + 2^-11 is halfway and rounds down to even, 1 + 3·2^-11 up to even.
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 1.0f / 2048)), 1.0f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 3.0f / 2048)), 1.0f + 1.0f / 512);
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 1.0f / 1536)), 1.0f + 1.0f / 1024);  // past halfway: rounds up
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
}

TEST(DType, ParseNamesAndRejectUnknown) {
  EXPECT_EQ(parse_dtype("bf16", "x"), DType::bf16);
  EXPECT_THROW(parse_dtype("f64", "x"), UserError);
}

}  // namespace
}  // namespace meshlm
