#include "meshlm/core/device.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

std::string_view device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

bool device_available(Device d) { return d == Device::cpu; }

Device parse_device(std::string_view name) {
  Device d;
  if (name == "cpu") d = Device::cpu;
  else if (name == "cuda") d = Device::cuda;
  else throw UserError(cat("unknown device '", name, "' (expected cpu or cuda)"));
  if (!device_available(d)) throw UserError(cat("device '", name, "' is not available in this build"));
  return d;
}

}  // namespace meshlm
