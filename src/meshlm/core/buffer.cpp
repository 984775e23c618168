#include "meshlm/core/buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#if MESHLM_HAVE_CUDA
#include "meshlm/core/cuda/device_memory.hpp"
#endif

namespace meshlm {

Buffer::Buffer(Device device, DType dtype, size_t count) : device_(device), dtype_(dtype), count_(count) {
  size_t bytes = count * dtype_size(dtype);
  if (device == Device::cuda) {
#if MESHLM_HAVE_CUDA
    data_ = gpu::device_alloc(bytes);
    return;
#else
    throw UserError("device 'cuda' is not available: this build has no CUDA backend");
#endif
  }
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  data_ = std::aligned_alloc(64, rounded);
  if (!data_) throw UserError(cat("out of memory allocating ", bytes, " bytes"));
  std::memset(data_, 0, rounded);
}

Buffer Buffer::paged(Device device, DType dtype, size_t count) {
  // GPU memory is not demand-paged: ZeRO-3's full-size views need the host's lazy pages.
  if (device != Device::cpu) throw UserError("ZeRO-3 (paged parameter buffers) runs on the CPU only for now");
  Buffer b;
  b.device_ = device;
  b.dtype_ = dtype;
  b.count_ = count;
  const size_t bytes = std::max<size_t>(1, count * dtype_size(dtype));
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw UserError(cat("out of memory reserving ", bytes, " bytes"));
  b.data_ = p;
  b.paged_ = true;
  return b;
}

size_t Buffer::discard(size_t begin, size_t end) {
  if (!paged_ || begin >= end) return 0;
  const size_t page = size_t(::sysconf(_SC_PAGESIZE)), es = dtype_size(dtype_);
  const auto base = reinterpret_cast<uintptr_t>(data_);
  const uintptr_t lo = (base + begin * es + page - 1) / page * page, hi = (base + end * es) / page * page;
  if (lo >= hi) return 0;
  // MADV_DONTNEED on private anonymous memory frees the pages; the next touch maps zeros.
  MESHLM_ASSERT(::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED) == 0, "madvise failed");
  return hi - lo;
}

Buffer::~Buffer() {
  if (device_ == Device::cuda) {
#if MESHLM_HAVE_CUDA
    gpu::device_free(data_);
#endif
    return;
  }
  if (paged_) ::munmap(data_, std::max<size_t>(1, count_ * dtype_size(dtype_)));
  else std::free(data_);
}

void Buffer::swap(Buffer& o) noexcept {
  std::swap(device_, o.device_);
  std::swap(dtype_, o.dtype_);
  std::swap(count_, o.count_);
  std::swap(data_, o.data_);
  std::swap(paged_, o.paged_);
}

void Buffer::zero() {
  if (device_ == Device::cuda) {
#if MESHLM_HAVE_CUDA
    gpu::device_zero(data_, bytes());
#endif
    return;
  }
  if (paged_) {
    // Whole pages come back as zeros without being touched; the mapping starts on a page, so
    // only the tail of the last page needs clearing.
    const size_t freed = discard(0, count_);
    std::memset(static_cast<char*>(data_) + freed, 0, bytes() - freed);
    return;
  }
  if (data_) std::memset(data_, 0, bytes());
}

}  // namespace meshlm
