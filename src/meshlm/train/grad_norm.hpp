#pragma once
// The global gradient norm of a run laid out over a device mesh, from each rank's part of the
// gradients (SyncStrategy::norm_part). Squared norms are added in a fixed order (data-parallel
// ranks, then tensor-parallel ranks, then pipeline stages), so every rank gets the same norm
// bit for bit. Tensors replicated over the tensor-parallel ranks are counted once, and the tied
// embedding, which the first and last stage both hold, on the first stage only.
#include "meshlm/model/param_spec.hpp"
#include "meshlm/parallel/device_mesh.hpp"
#include "meshlm/parallel/sync_strategy.hpp"

namespace meshlm {

// `layout`: this rank's parameters (its tensor-parallel shard of `stage`). Collective over the
// mesh.
double global_gradient_norm(const GradPart& part, const ParamLayout& layout, const StageSpec& stage,
                            DeviceMesh& mesh);

}  // namespace meshlm
