#pragma once
// Lossy gradient reduction for synchronous data parallelism (parallel.compress): each rank
// sends a compressed form of its gradients, and every rank combines what all ranks sent into
// the same approximation of their sum. What a rank leaves out of a step is not lost: it is
// kept as the rank's residual and added to its next gradient (error feedback), so that after
// any number of steps
//   Σ (what this rank contributed) = Σ (this rank's gradients) − residual.
// Implementations: TopKCompressor, Int8Compressor, PowerSgdCompressor. All run on the CPU.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/range.hpp"
#include "meshlm/model/param_spec.hpp"
#include "meshlm/parallel/parallel_config.hpp"

namespace meshlm {

class GradientCompressor {
 public:
  virtual ~GradientCompressor() = default;
  GradientCompressor(const GradientCompressor&) = delete;
  GradientCompressor& operator=(const GradientCompressor&) = delete;

  // Replaces grads[range] (host memory) with the combined approximation of its sum over the
  // ranks of `comm`, the same bytes on every rank; every rank calls it with the same range.
  virtual void reduce(Communicator& comm, float* grads, Range range) = 0;
  // Whether reduce() needs the whole buffer in one call (it then runs after the backward pass).
  virtual bool whole_buffer() const { return false; }
  // One phrase for the run's header, e.g. "top-k (ratio 0.01)".
  virtual std::string describe() const = 0;

  // This rank's error-feedback residual, one float per gradient element.
  const std::vector<float>& residual() const { return residual_; }
  std::vector<float>& residual() { return residual_; }
  // State besides the residual that a resume needs, the same on every rank, packed into one
  // buffer laid out as the gradients (n floats): PowerSGD's warm-started Q, each matrix's in
  // the first elements of the matrix's own range. False if the method has none.
  virtual bool has_shared_state() const { return false; }
  virtual void save_shared_state(float* out) const { (void)out; }
  virtual void load_shared_state(const float* in) { (void)in; }
  // Forgets the residual: the step it came from was dropped (an fp16 overflow leaves it
  // non-finite, and carrying it on would spoil every later step).
  void clear_residual() { std::fill(residual_.begin(), residual_.end(), 0.0f); }

  // Bytes this rank sent to the other ranks since reset_sent_bytes().
  int64_t sent_bytes() const { return sent_bytes_; }
  void reset_sent_bytes() { sent_bytes_ = 0; }

 protected:
  explicit GradientCompressor(size_t n) : residual_(n, 0.0f) {}
  // Counting what is sent through the communicator: an all-gather delivers every rank's
  // payload to the N − 1 others; as a ring each rank forwards N − 1 payloads, all of them as
  // large as its own here (every rank sends the same size). An all-reduce is counted as the
  // uncompressed path counts it (ring_all_reduce_bytes).
  void count_all_gather(const Communicator& comm, int64_t payload_bytes) {
    sent_bytes_ += int64_t(comm.size() - 1) * payload_bytes;
  }
  void count_all_reduce(const Communicator& comm, int64_t bytes);

  std::vector<float> residual_;

 private:
  int64_t sent_bytes_ = 0;
};

// The compressor parallel.compress asks for over the gradients laid out as `layout`; null for
// `none`. A PowerSGD rank that no matrix of the layout can take is a UserError.
std::unique_ptr<GradientCompressor> make_gradient_compressor(const ParallelConfig& parallel, const ParamLayout& layout);

}  // namespace meshlm
