#pragma once
// The device mesh: world = dp × pp × tp ranks, laid out with tp varying fastest, then pp, then
// dp: world rank = (dp_index · pp + pp_index) · tp + tp_index. Tensor-parallel peers are
// therefore consecutive ranks (on a cluster, launched by node, inside one node), which is
// where their per-layer all-reduces belong. The communicator of each axis is created once
// here and handed to whoever needs it; nothing reads them from globals.
#include <cstdint>
#include <memory>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/model/tensor_parallel.hpp"

namespace meshlm {

struct MeshShape {
  int dp = 1, pp = 1, tp = 1;
  int size() const { return dp * pp * tp; }
};

struct MeshCoords {
  int dp = 0, pp = 0, tp = 0;
};

// The coordinates of world rank `rank` (0 ≤ rank < shape.size()).
MeshCoords mesh_coords(const MeshShape& shape, int rank);
// The world rank at `c`.
int mesh_rank(const MeshShape& shape, const MeshCoords& c);

class DeviceMesh {
 public:
  // Collective over `world`. UserError unless shape.size() == world.size().
  DeviceMesh(Communicator& world, MeshShape shape);

  const MeshShape& shape() const { return shape_; }
  const MeshCoords& coords() const { return coords_; }
  Communicator& world() { return world_; }
  Communicator& dp() { return *dp_; }  // the ranks with my (pp, tp) coordinates
  Communicator& pp() { return *pp_; }  // the ranks with my (dp, tp) coordinates
  Communicator& tp() { return *tp_; }  // the ranks with my (dp, pp) coordinates
  // The first and last pipeline stage's ranks with my (dp, tp) coordinates, which both hold
  // the tied token embedding (a one-rank group on middle stages, and when pp = 1).
  Communicator& embedding() { return *embedding_; }

 private:
  Communicator& world_;
  MeshShape shape_;
  MeshCoords coords_;
  std::unique_ptr<Communicator> dp_, pp_, tp_, embedding_;
};

// The model's tensor-parallel collectives over a communicator, on activations in the memory of
// `device` (the model's), counting the bytes each rank hands to all-reduces (for the
// benchmark's comparison with the 4·b·s·h-per-layer formula).
class TpGroup final : public TpCollectives {
 public:
  TpGroup(Communicator& comm, Device device) : comm_(comm), device_(device) {}
  int size() const override { return comm_.size(); }
  int rank() const override { return comm_.rank(); }
  void all_reduce_sum(float* data, int64_t count) override;
  void all_reduce_max(float* data, int64_t count) override;
  void all_gather(const float* send, float* recv, int64_t count) override;

  int64_t all_reduce_bytes() const { return all_reduce_bytes_; }
  int64_t all_reduces() const { return all_reduces_; }
  void reset_counters() { all_reduce_bytes_ = all_reduces_ = 0; }

 private:
  Communicator& comm_;
  Device device_;
  int64_t all_reduce_bytes_ = 0, all_reduces_ = 0;
};

}  // namespace meshlm
