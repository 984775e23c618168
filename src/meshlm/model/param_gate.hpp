#pragma once
// Fully sharded parameters (ZeRO-3): the model tells a gate which ranges of its flat parameter
// buffer it is about to read and when it is done with them, section by section (the
// embeddings, each block, ln_f and the tied head), in the forward and again in the backward
// pass. The gate makes a range present (gathers it from the ranks holding its shards) before
// acquire() returns and may drop it after release(). Without a gate every parameter is always
// present.
#include <cstddef>

#include "meshlm/core/range.hpp"

namespace meshlm {

class ParamGate {
 public:
  virtual ~ParamGate() = default;
  virtual void acquire(Range r) = 0;
  virtual void release(Range r) = 0;
};

}  // namespace meshlm
