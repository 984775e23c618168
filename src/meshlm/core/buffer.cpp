#include "meshlm/core/buffer.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace meshlm {

Buffer::Buffer(Device device, DType dtype, size_t count) : device_(device), dtype_(dtype), count_(count) {
  if (device != Device::cpu) throw UserError(cat("device '", device_name(device), "' is not available in this build"));
  size_t bytes = count * dtype_size(dtype);
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  data_ = std::aligned_alloc(64, rounded);
  if (!data_) throw UserError(cat("out of memory allocating ", bytes, " bytes"));
  std::memset(data_, 0, rounded);
}

Buffer::~Buffer() { std::free(data_); }

void Buffer::swap(Buffer& o) noexcept {
  std::swap(device_, o.device_);
  std::swap(dtype_, o.dtype_);
  std::swap(count_, o.count_);
  std::swap(data_, o.data_);
}

void Buffer::zero() {
  if (data_) std::memset(data_, 0, bytes());
}

}  // namespace meshlm
