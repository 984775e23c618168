#pragma once
// Where a buffer lives and where kernels run. Only the kernel dispatch and the buffer
// allocator look at it; model and parallel code pass it through.
#include <cstdint>
#include <string_view>

namespace meshlm {

enum class Device : uint8_t { cpu, cuda };

std::string_view device_name(Device d);
// Parses "cpu" / "cuda"; throws UserError for an unknown name or a device this build lacks.
Device parse_device(std::string_view name);
bool device_available(Device d);

}  // namespace meshlm
