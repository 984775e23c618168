#pragma once
// Gradient-norm clipping (torch.nn.utils.clip_grad_norm_ with the L2 norm).
//
// Norms are summed in double over fixed blocks of elements, and the block sums are added in
// block order, so a norm is the same bit for bit whatever the thread count. With sharded
// gradients each rank computes grad_norm_squared() of its shard; the global norm is the
// square root of their sum, and every rank then scales its shard by clip_scale().
#include <cstddef>
#include <span>

#include "meshlm/core/device_span.hpp"

namespace meshlm {

// Sum of squares of g, accumulated in double (on g's device).
double grad_norm_squared(DeviceSpan<const float> g);

// The L2 norm of g.
double global_grad_norm(DeviceSpan<const float> g);
// The L2 norm of a gradient split into shards, from the shards' squared norms (added in order).
double global_grad_norm(std::span<const double> shard_norms_squared);

// PyTorch's clip coefficient min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0 (no
// clipping) or when the norm is not finite (the caller should skip such a step).
float clip_scale(double norm, float max_norm);

// g[i] *= scale.
void scale_grads(DeviceSpan<float> g, float scale);

// Scales g by clip_scale(norm, max_norm) and returns the norm before clipping.
float clip_grad_norm(DeviceSpan<float> g, float max_norm);

}  // namespace meshlm
