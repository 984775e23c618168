#include "meshlm/cli/tensor_parallel_inference.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

InferenceGroup make_inference_group(int64_t tp, Device device) {
  if (tp < 1) throw UserError(cat("--tp must be at least 1, got ", tp));
  InferenceGroup g;
  g.world = launched_by_mpi() ? make_mpi_world_communicator() : make_self_communicator();
  if (g.world->size() != tp)
    throw UserError(cat("--tp ", tp, " needs ", tp, " processes but ", g.world->size(),
                        g.world->size() == 1 ? " was" : " were", " launched (mpirun -np ", tp, ", or --nproc ", tp, ")"));
  if (tp > 1) g.tp = std::make_unique<TpGroup>(*g.world, device);
  return g;
}

Buffer shard_of(const GPT& gpt, const LoadedModel& m) {
  std::vector<float> shard(gpt.num_params());
  global_to_shard(gpt.layout(), m.layout, gpt.tp_size(), gpt.tp_rank(), m.params.data(), shard.data());
  Buffer params(gpt.device(), DType::f32, shard.size());
  copy_bytes(params.raw(), gpt.device(), shard.data(), Device::cpu, shard.size() * sizeof(float));
  return params;
}

Device inference_device(const std::string& name) { return parse_device(name); }

}  // namespace meshlm
