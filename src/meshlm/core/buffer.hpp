#pragma once
// A typed, 64-byte aligned, zero-initialised block of device memory that owns itself (RAII,
// move-only, destructor never throws). Each kind of memory — parameters, gradients,
// optimizer moments, activations — is one Buffer split into named views.
#include <cstddef>
#include <span>

#include "meshlm/core/device.hpp"
#include "meshlm/core/dtype.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

class Buffer {
 public:
  Buffer() = default;
  Buffer(Device device, DType dtype, size_t count);
  // A buffer whose memory is taken from the OS page by page as it is first written (reads of
  // untouched memory give zeros), and whose pages can be given back with discard(): the
  // full-size parameter and gradient buffers of ZeRO-3, of which only the parts in use are
  // resident.
  static Buffer paged(Device device, DType dtype, size_t count);
  ~Buffer();
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * dtype_size(dtype_); }
  void* raw() { return data_; }
  const void* raw() const { return data_; }

  template <class T>
  T* data() {
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }
  std::span<float> f32() {
    MESHLM_ASSERT(dtype_ == DType::f32);
    return {data<float>(), count_};
  }
  std::span<const float> f32() const {
    MESHLM_ASSERT(dtype_ == DType::f32);
    return {data<float>(), count_};
  }
  void zero();
  // Paged buffers: returns the whole pages inside elements [begin, end) to the OS; they read
  // as zeros afterwards. Elements sharing a page with the outside of the range are kept.
  // Returns the bytes given back. A no-op (0) on a buffer that is not paged.
  size_t discard(size_t begin, size_t end);
  bool is_paged() const { return paged_; }

 private:
  void swap(Buffer& o) noexcept;
  Device device_ = Device::cpu;
  DType dtype_ = DType::f32;
  size_t count_ = 0;
  void* data_ = nullptr;
  bool paged_ = false;
};

}  // namespace meshlm
