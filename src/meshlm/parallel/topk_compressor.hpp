#pragma once
// parallel.compress = topk: each rank sends, per bucket of L elements, the k = max(1,
// round(ratio · L)) entries of largest magnitude of its gradient plus residual, as (index,
// value) pairs of two 32-bit words; the rest becomes its residual. The pairs of all ranks are
// all-gathered and every rank adds them up in rank order, so every rank gets the same sum.
#include "meshlm/parallel/gradient_compressor.hpp"

namespace meshlm {

class TopKCompressor final : public GradientCompressor {
 public:
  TopKCompressor(size_t n, double ratio);
  void reduce(Communicator& comm, float* grads, Range range) override;
  std::string describe() const override;
  // The entries a bucket of `len` elements sends.
  size_t kept(size_t len) const;

 private:
  double ratio_;
};

}  // namespace meshlm
