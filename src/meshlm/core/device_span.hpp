#pragma once
// Elements in one device's memory: pointer, count and the device they are on. Code handed a
// DeviceSpan dispatches on its device instead of asking the CUDA driver where a pointer lives.
#include <cstddef>
#include <span>
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
