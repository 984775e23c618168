#pragma once
// Our all-reduce, built on a Communicator's isend/irecv: a reduce-scatter ring (n−1 steps)
// then an all-gather ring (n−1 steps) over n near-equal segments, each segment moving in
// chunks so that receiving the next chunk overlaps reducing the current one. Sums run in f32
// (bf16/f16 buffers are widened once and narrowed once) or as integers for i32, and the
// all-gather copies each segment's owner's bytes, so every rank ends with identical results.
#include <cstdint>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

// Tags the ring uses on the communicator it runs on; user messages must not use them.
inline constexpr int kRingReduceScatterTag = 32760;
inline constexpr int kRingAllGatherTag = 32761;
// Bytes per message: large enough to run at full bandwidth, small enough to pipeline.
inline constexpr int64_t kRingChunkBytes = int64_t(1) << 20;

// Collective over `comm`: data[count] becomes the op-reduction over ranks. n = 1 is a no-op.
void ring_all_reduce(Communicator& comm, void* data, int64_t count, DType dtype, ReduceOp op,
                     int64_t chunk_bytes = kRingChunkBytes);

}  // namespace meshlm
