#pragma once
// Which backend moves a run's GPU buffers. NCCL needs a GPU of its own per rank; when every
// rank of the job has one, the trainer's collectives go through NCCL, otherwise (several ranks
// sharing a GPU, as in the one-GPU tests, or a build without CUDA) through the bootstrap group
// itself, whose MPI backend moves GPU buffers through host memory.
#include <memory>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/device.hpp"

namespace meshlm {

// A collective over `bootstrap`: every rank gets the same answer. nullptr means "use
// bootstrap"; otherwise an NCCL group of the same ranks in the same order.
std::unique_ptr<Communicator> make_device_communicator(Communicator& bootstrap, Device device);

}  // namespace meshlm
