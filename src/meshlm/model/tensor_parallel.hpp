#pragma once
// What the model needs from its tensor-parallel group. The model layer sits below the
// communication layer, so it states its needs as this interface; parallel/ implements it over
// a Communicator. With tp = 1 (no group) the model runs as one process.
//
// Megatron's conjugate pairs appear in GPT's forward/backward as plain calls:
//   copy-to-tp      forward identity, backward all_reduce_sum (before a column-parallel linear)
//   reduce-from-tp  forward all_reduce_sum, backward identity (after a row-parallel linear)
//   gather          all_gather of the vocabulary-parallel logits (generation only)
#include <cstdint>

namespace meshlm {

class TpCollectives {
 public:
  virtual ~TpCollectives() = default;
  virtual int size() const = 0;
  virtual int rank() const = 0;
  // In place over the group's ranks; identical results on every rank.
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  virtual void all_reduce_max(float* data, int64_t count) = 0;
  // recv[size()·count] receives every rank's send[count], rank r's at r·count.
  virtual void all_gather(const float* send, float* recv, int64_t count) = 0;
};

}  // namespace meshlm
