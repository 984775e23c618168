#pragma once
// Elements in one device's memory: pointer, count and the device they are on. Code handed a
// DeviceSpan dispatches on its device instead of asking the CUDA driver where a pointer lives.
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/core/device.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

template <class T>
struct DeviceSpan {
  T* data = nullptr;
  size_t size = 0;
  Device device = Device::cpu;

  DeviceSpan subspan(size_t offset, size_t count) const {
    MESHLM_ASSERT(offset + count <= size, "subspan [", offset, ", ", offset + count, ") of ", size);
    return {data + offset, count, device};
  }
  operator DeviceSpan<const T>() const { return {data, size, device}; }
};

// Untyped memory and its device: what the communication layer reads and writes. A plain
// pointer converts to host memory; GPU memory is passed with its device (DevicePtr{p,
// Device::cuda}, or device_ptr(buffer)), so that no backend asks the driver where it lives.
struct DevicePtr {
  void* ptr = nullptr;
  Device device = Device::cpu;
  DevicePtr(void* p) : ptr(p) {}  // host memory
  DevicePtr(void* p, Device d) : ptr(p), device(d) {}
  bool on_gpu() const { return device == Device::cuda; }
};
struct ConstDevicePtr {
  const void* ptr = nullptr;
  Device device = Device::cpu;
  ConstDevicePtr(const void* p) : ptr(p) {}  // host memory
  ConstDevicePtr(const void* p, Device d) : ptr(p), device(d) {}
  ConstDevicePtr(DevicePtr p) : ptr(p.ptr), device(p.device) {}
  bool on_gpu() const { return device == Device::cuda; }
};

// Element `offset` of a buffer (of its dtype), on the buffer's device.
inline DevicePtr device_ptr(Buffer& b, size_t offset = 0) {
  MESHLM_ASSERT(offset <= b.size(), "offset ", offset, " of ", b.size());
  return {static_cast<char*>(b.raw()) + offset * dtype_size(b.dtype()), b.device()};
}
inline ConstDevicePtr device_ptr(const Buffer& b, size_t offset = 0) {
  MESHLM_ASSERT(offset <= b.size(), "offset ", offset, " of ", b.size());
  return {static_cast<const char*>(b.raw()) + offset * dtype_size(b.dtype()), b.device()};
}
template <class T>
DevicePtr device_ptr(DeviceSpan<T> s) requires(!std::is_const_v<T>) {
  return {s.data, s.device};
}

// Host memory (a vector, an array) as a DeviceSpan.
template <class T>
DeviceSpan<T> host_span(std::span<T> s) {
  return {s.data(), s.size(), Device::cpu};
}
template <class T>
DeviceSpan<T> host_span(std::vector<T>& v) {
  return {v.data(), v.size(), Device::cpu};
}

// The f32 elements [offset, offset + count) of a buffer, on the buffer's device.
inline DeviceSpan<float> f32_span(Buffer& b, size_t offset, size_t count) {
  MESHLM_ASSERT(b.dtype() == DType::f32 && offset + count <= b.size());
  return {b.data<float>() + offset, count, b.device()};
}
inline DeviceSpan<const float> f32_span(const Buffer& b, size_t offset, size_t count) {
  MESHLM_ASSERT(b.dtype() == DType::f32 && offset + count <= b.size());
  return {b.data<float>() + offset, count, b.device()};
}

}  // namespace meshlm
