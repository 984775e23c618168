#include "meshlm/parallel/gradient_compressor.hpp"

#include "meshlm/parallel/int8_compressor.hpp"
#include "meshlm/parallel/powersgd_compressor.hpp"
#include "meshlm/parallel/sync_strategy.hpp"
#include "meshlm/parallel/topk_compressor.hpp"

namespace meshlm {

void GradientCompressor::count_all_reduce(const Communicator& comm, int64_t bytes) {
  sent_bytes_ += ring_all_reduce_bytes(bytes, comm.size());
}

std::unique_ptr<GradientCompressor> make_gradient_compressor(const ParallelConfig& parallel,
                                                             const ParamLayout& layout) {
  switch (parallel.compress) {
    case Compression::none: return nullptr;
    case Compression::topk: return std::make_unique<TopKCompressor>(layout.total(), parallel.compress_ratio);
    case Compression::int8: return std::make_unique<Int8Compressor>(layout.total());
    case Compression::powersgd: return std::make_unique<PowerSgdCompressor>(layout, parallel.compress_rank);
  }
  return nullptr;
}

}  // namespace meshlm
