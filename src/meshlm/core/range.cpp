#include "meshlm/core/range.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

Range even_part(size_t total, int parts, int index) {
  MESHLM_ASSERT(parts > 0 && index >= 0 && index < parts, "part ", index, " of ", parts);
  const size_t p = size_t(parts), i = size_t(index);
  const size_t base = total / p, extra = total % p;
  return {i * base + std::min(i, extra), base + (i < extra ? 1 : 0)};
}

}  // namespace meshlm
