#pragma once
// parallel.compress = powersgd: rank-r PowerSGD (Vogels et al., 2019) with error feedback.
// Every 2-D tensor of the layout whose both dimensions are at least r (an n×m matrix M: its
// gradient plus this rank's residual) is sent as two thin factors:
//   P = M·Q            (n×r; Q: m×r, the same on every rank)   all-reduced (sum)
//   P̂ = P with orthonormal columns (Gram–Schmidt, in a fixed order: the same on every rank)
//   Qᵢ = Mᵀ·P̂          (m×r, this rank's)                       all-reduced (sum) into Q
//   result = P̂·Qᵀ = Σᵢ P̂·Qᵢᵀ, this rank's contribution P̂·Qᵢᵀ, its residual M − P̂·Qᵢᵀ.
// The result projects the sum of the ranks' matrices onto P̂'s columns: a sum, like the
// uncompressed path's, with no division by the ranks. The summed Q is the next step's start
// (warm start); the first comes from a fixed seed, so every rank draws the same.
// Tensors of one dimension and matrices smaller than r in a dimension (a rank-r form would not
// be smaller) are all-reduced as they are, together with the P factors. A layout with no
// matrix that takes rank r is a UserError. Needs whole tensors: runs on the whole buffer, after
// the backward pass.
#include <vector>

#include "meshlm/parallel/gradient_compressor.hpp"

namespace meshlm {

class PowerSgdCompressor final : public GradientCompressor {
 public:
  PowerSgdCompressor(const ParamLayout& layout, int64_t rank);
  void reduce(Communicator& comm, float* grads, Range range) override;
  bool whole_buffer() const override { return true; }
  std::string describe() const override;
  bool has_shared_state() const override { return true; }
  void save_shared_state(float* out) const override;
  void load_shared_state(const float* in) override;

  // A compressed matrix: rows × cols elements at `offset` of the flat buffer.
  struct Matrix {
    size_t offset, rows, cols;
    size_t p_at, q_at;  // where its factors start in the P and Q buffers
  };
  const std::vector<Matrix>& matrices() const { return matrices_; }
  // The elements all-reduced uncompressed (all but the matrices'), in order.
  const std::vector<Range>& dense() const { return dense_; }

 private:
  size_t n_, rank_;
  std::vector<Matrix> matrices_;
  std::vector<Range> dense_;
  size_t p_elems_ = 0, q_elems_ = 0, dense_elems_ = 0;
  std::vector<float> q_;  // every matrix's Q (m×r, row-major), carried over steps
};

// Makes the columns of p (rows×r, row-major) orthonormal in place, by modified Gram–Schmidt
// from the first column to the last (in double). A column that is (to rounding) a combination
// of the ones before it becomes zero; non-finite values stay non-finite.
void orthonormalise_columns(float* p, size_t rows, size_t r);

}  // namespace meshlm
