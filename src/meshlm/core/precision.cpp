#include "meshlm/core/precision.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "?";
}

Precision parse_precision(std::string_view name, std::string_view what) {
  for (Precision p : {Precision::fp32, Precision::bf16, Precision::fp16})
    if (precision_name(p) == name) return p;
  throw UserError(cat(what, ": unknown precision '", name, "' (expected fp32, bf16 or fp16)"));
}

}  // namespace meshlm
