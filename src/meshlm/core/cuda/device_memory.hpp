#pragma once
// Device memory for Buffer and cross-device copies, without CUDA headers (the callers are
// plain C++ that only switches on Device). Allocations are plain cudaMalloc, never managed
// memory; Buffers are allocated once per kind (parameters, gradients, optimizer state,
// activations) and live for the run.
#include <cstddef>

namespace meshlm::gpu {

void* device_alloc(size_t bytes);  // zero-filled; UserError when the GPU is out of memory
void device_free(void* p) noexcept;
void device_zero(void* p, size_t bytes);
// Copies between host and GPU memory (either direction, or GPU to GPU) in stream order on
// the compute stream, then waits for it: the data is in place on return.
void copy(void* dst, bool dst_on_gpu, const void* src, bool src_on_gpu, size_t bytes);

}  // namespace meshlm::gpu
