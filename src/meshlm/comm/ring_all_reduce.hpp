#pragma once
// Our all-reduce, built on a Communicator's isend/irecv: a reduce-scatter ring (n−1 steps)
// then an all-gather ring (n−1 steps) over n near-equal segments, each segment moving in
// chunks so that receiving the next chunk overlaps reducing the current one. Sums run in f32
// (bf16/f16 buffers are widened once and narrowed once) or as integers for i32, and the
// all-gather copies each segment's owner's bytes, so every rank ends with identical results.
//
// The compressed variants reduce f32 buffers while sending half-precision (bf16/f16) messages
// in both phases, halving the bytes on the wire: partial sums are rounded to the wire type at
// every hop and accumulated in f32 by the receiver; each finished element is rounded once more
// by its owner, who keeps that rounded value too, so every rank still ends bit-identical. See
// docs/comm.md ("Compressed ring") for the error bound.
#include <cstdint>
#include <span>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

// Tags the ring uses on the communicator it runs on; user messages must not use them.
inline constexpr int kRingReduceScatterTag = 32760;
inline constexpr int kRingAllGatherTag = 32761;
// Bytes per message: large enough to run at full bandwidth, small enough to pipeline.
inline constexpr int64_t kRingChunkBytes = int64_t(1) << 20;

// Collective over `comm`: data[count] becomes the op-reduction over ranks. n = 1 is a no-op.
void ring_all_reduce(Communicator& comm, DevicePtr data, int64_t count, DType dtype, ReduceOp op,
                     int64_t chunk_bytes = kRingChunkBytes);

// Collective over `comm`: data[count] (f32; on the host or staged there from the GPU) becomes the op-reduction over ranks, with every
// message in `wire` (bf16 or f16; chunks of chunk_bytes of it). The result is a value of
// `wire`, widened, and identical on every rank. n = 1 is a no-op (nothing travels, nothing is
// rounded). With f16 on the wire, partial sums beyond ±65504 become ±inf.
void ring_all_reduce_compressed(Communicator& comm, DevicePtr data, int64_t count, DType wire, ReduceOp op,
                                int64_t chunk_bytes = kRingChunkBytes);

// The reduce-scatter phase alone, with the same wire scheme and the layout of
// Communicator::reduce_scatter: send holds sum(counts) f32 elements, and recv
// (counts[rank()] elements; any count may be 0) receives this rank's part of the reduction,
// rounded once to `wire` and widened. recv may be this rank's part of send (in place) or
// disjoint from it. With n = 1 recv is a copy.
void ring_reduce_scatter_compressed(Communicator& comm, ConstDevicePtr send, DevicePtr recv,
                                    std::span<const int64_t> counts, DType wire, ReduceOp op,
                                    int64_t chunk_bytes = kRingChunkBytes);

}  // namespace meshlm
