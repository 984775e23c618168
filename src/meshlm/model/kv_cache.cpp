#include "meshlm/model/kv_cache.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

KVCache::KVCache(const GPTConfig& cfg, int64_t B, int64_t max_T, Device device)
    : cfg_(cfg), B_(B), max_T_(max_T == 0 ? cfg.n_positions : max_T) {
  cfg_.validate();
  if (B <= 0) throw UserError(cat("KV cache batch size must be positive, got ", B));
  if (max_T_ <= 0 || max_T_ > cfg_.n_positions)
    throw UserError(cat("KV cache length ", max_T_, " must be in [1, model.n_positions = ", cfg_.n_positions, "]"));
  kv_ = Buffer(device, DType::f32, size_t(cfg_.n_layer * 2 * B_ * max_T_ * cfg_.n_embd));
  scratch_ = Buffer(device, DType::f32, 0);
}

float* KVCache::k(int64_t layer) {
  MESHLM_ASSERT(layer >= 0 && layer < cfg_.n_layer);
  return kv_.data<float>() + size_t(2 * layer * B_ * max_T_ * cfg_.n_embd);
}

float* KVCache::v(int64_t layer) {
  MESHLM_ASSERT(layer >= 0 && layer < cfg_.n_layer);
  return kv_.data<float>() + size_t((2 * layer + 1) * B_ * max_T_ * cfg_.n_embd);
}

void KVCache::advance(int64_t n) {
  MESHLM_ASSERT(n >= 0 && size_ + n <= max_T_, "advancing a KV cache of ", size_, "/", max_T_, " by ", n);
  size_ += n;
}

float* KVCache::scratch(size_t floats) {
  if (scratch_.size() < floats) scratch_ = Buffer(scratch_.device(), DType::f32, floats);
  return scratch_.data<float>();
}

}  // namespace meshlm
