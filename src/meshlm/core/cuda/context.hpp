#pragma once
// The process's GPU and its compute stream. Each process uses one GPU: the launcher's local
// rank modulo the GPUs it sees (several ranks may share one GPU, as the single-GPU tests do).
// Kernels and copies run on compute_stream(), a non-blocking stream (never the legacy default
// stream); communication runs on the NCCL communicators' own streams, which wait for compute
// through events (comm/cuda/nccl_communicator.hpp).
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace meshlm::gpu {

// GPUs visible to this process (0 without a driver or device; never throws).
int device_count();
// The GPU this process uses; selects it (cudaSetDevice) on first call. InternalError if none.
int current_device();
cudaStream_t compute_stream();
// Waits for all work queued on compute_stream().
void synchronize();
// The GPU's marketing name and memory, e.g. "NVIDIA H100 80GB HBM3 (79.1 GiB)".
std::string device_description();
// Bytes of the GPU's memory in use (all processes: total − free, from cudaMemGetInfo).
int64_t memory_in_use();

}  // namespace meshlm::gpu
