#include "meshlm/parallel/device_mesh.hpp"

#include <vector>

#include "meshlm/core/error.hpp"

namespace meshlm {

MeshCoords mesh_coords(const MeshShape& shape, int rank) {
  MESHLM_ASSERT(rank >= 0 && rank < shape.size(), "rank ", rank, " outside a mesh of ", shape.size());
  return {rank / (shape.tp * shape.pp), (rank / shape.tp) % shape.pp, rank % shape.tp};
}

int mesh_rank(const MeshShape& shape, const MeshCoords& c) { return (c.dp * shape.pp + c.pp) * shape.tp + c.tp; }

DeviceMesh::DeviceMesh(Communicator& world, MeshShape shape) : world_(world), shape_(shape) {
  if (shape.dp < 1 || shape.pp < 1 || shape.tp < 1 || shape.size() != world.size())
    throw UserError(cat("the mesh dp ", shape.dp, " x pp ", shape.pp, " x tp ", shape.tp, " = ", shape.size(),
                        " ranks does not match the ", world.size(),
                        world.size() == 1 ? " process launched" : " processes launched",
                        " (start dp x pp x tp processes: mpirun -np N, or meshlm train --nproc N)"));
  coords_ = mesh_coords(shape, world.rank());
  // Every rank calls split three times in the same order; color = the coordinates it shares
  // with the group, key = its index along the axis.
  tp_ = world.split(coords_.dp * shape.pp + coords_.pp, coords_.tp);
  pp_ = world.split(coords_.dp * shape.tp + coords_.tp, coords_.pp);
  dp_ = world.split(coords_.pp * shape.tp + coords_.tp, coords_.dp);
  const bool holds_embedding = coords_.pp == 0 || coords_.pp == shape.pp - 1;
  const int dp_tp = coords_.dp * shape.tp + coords_.tp;
  embedding_ = world.split(holds_embedding && shape.pp > 1 ? dp_tp : shape.dp * shape.tp + world.rank(), coords_.pp);
  MESHLM_ASSERT(tp_->size() == shape.tp && pp_->size() == shape.pp && dp_->size() == shape.dp);
  tp_->set_label("tp");
  pp_->set_label("pp");
  dp_->set_label("dp");
  embedding_->set_label("embedding");
}

void TpGroup::all_reduce_sum(float* data, int64_t count) {
  all_reduce_bytes_ += count * int64_t(sizeof(float));
  ++all_reduces_;
  comm_.all_reduce({data, device_}, count, DType::f32, ReduceOp::sum);
}

void TpGroup::all_reduce_max(float* data, int64_t count) {
  all_reduce_bytes_ += count * int64_t(sizeof(float));
  ++all_reduces_;
  comm_.all_reduce({data, device_}, count, DType::f32, ReduceOp::max);
}

void TpGroup::all_gather(const float* send, float* recv, int64_t count) {
  const std::vector<int64_t> counts(size_t(comm_.size()), count);
  comm_.all_gather({send, device_}, {recv, device_}, counts, DType::f32);
}

}  // namespace meshlm
