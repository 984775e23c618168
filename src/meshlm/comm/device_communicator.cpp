#include "meshlm/comm/device_communicator.hpp"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#if MESHLM_HAVE_CUDA
#include "meshlm/comm/cuda/nccl_communicator.hpp"
#include "meshlm/core/cuda/context.hpp"
#endif

namespace meshlm {

namespace {
// This rank's GPU as (host hash, device index): equal pairs on two ranks mean a shared GPU.
std::pair<int32_t, int32_t> gpu_identity([[maybe_unused]] Device device) {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  const auto h = int32_t(std::hash<std::string>{}(host) & 0x7fffffff);
#if MESHLM_HAVE_CUDA
  if (device == Device::cuda) return {h, int32_t(gpu::current_device())};
#endif
  return {h, -1};
}
}  // namespace

std::unique_ptr<Communicator> make_device_communicator(Communicator& bootstrap, Device device) {
  if (device == Device::cpu || bootstrap.size() == 1 || !built_with_cuda()) return nullptr;
  const auto [host, gpu] = gpu_identity(device);
  const int32_t mine[2] = {host, gpu};
  std::vector<int32_t> all(size_t(2 * bootstrap.size()));
  const std::vector<int64_t> counts(size_t(bootstrap.size()), 2);
  bootstrap.all_gather(mine, all.data(), counts, DType::i32);
  std::vector<std::pair<int32_t, int32_t>> ids;
  for (size_t r = 0; r < all.size(); r += 2) ids.emplace_back(all[r], all[r + 1]);
  std::sort(ids.begin(), ids.end());
  const bool shared = std::adjacent_find(ids.begin(), ids.end()) != ids.end();
  if (shared) return nullptr;
#if MESHLM_HAVE_CUDA
  return make_nccl_communicator(bootstrap);
#else
  return nullptr;
#endif
}

}  // namespace meshlm
