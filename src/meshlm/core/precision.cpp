#include "meshlm/core/precision.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

std::string_view precision_name(Precision p) { return enum_to_name(kPrecisionNames, p); }

Precision parse_precision(std::string_view name, std::string_view what) {
  return parse_enum(kPrecisionNames, name, what);
}

}  // namespace meshlm
