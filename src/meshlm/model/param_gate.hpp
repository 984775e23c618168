#pragma once
// Fully sharded parameters (ZeRO-3): the model tells a gate which ranges of its flat parameter
// buffer it is about to read and when it is done with them, section by section (the
// embeddings, each block, ln_f and the tied head), in the forward and again in the backward
// pass. The gate makes a range present (gathers it from the ranks holding its shards) before
// acquire() returns and may drop it after release(). Without a gate every parameter is always
// present.
#include <cstddef>

namespace meshlm {

struct FlatRange {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
};

class ParamGate {
 public:
  virtual ~ParamGate() = default;
  virtual void acquire(FlatRange r) = 0;
  virtual void release(FlatRange r) = 0;
};

}  // namespace meshlm
