#pragma once
// eval and generate on a tensor-parallel group: `--tp N` under mpirun/srun with N processes
// (or `--nproc N`, which starts them). Every rank loads the whole model file and keeps its
// shard; rank 0 prints.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/buffer.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/parallel/device_mesh.hpp"

namespace meshlm {

struct InferenceGroup {
  std::unique_ptr<Communicator> world;
  std::unique_ptr<TpGroup> tp;  // null with one process
  bool root() const { return world->rank() == 0; }
  TpCollectives* collectives() const { return tp.get(); }
};

// One process, or the MPI world as one tensor-parallel group of `tp` ranks (UserError if the
// number of processes differs).
InferenceGroup make_inference_group(int64_t tp, Device device);

// This rank's shard of a whole model's parameters, for `gpt` (built with the group), in the
// memory of gpt.device().
Buffer shard_of(const GPT& gpt, const LoadedModel& m);

// `--device` of eval/generate: cpu or cuda (UserError for anything else, or cuda without a GPU).
Device inference_device(const std::string& name);

}  // namespace meshlm
