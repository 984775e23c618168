// safetensors files (model.safetensors, optimizer.safetensors): the 8-byte length, the JSON
// header and the byte ranges it names; every float tensor it accepts is read back.
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "meshlm/model/safetensors.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const auto path = fuzz::put_file("model.safetensors", fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] {
    const SafetensorsFile file(path);
    for (const auto& e : file.entries()) {
      (void)file.bytes(e.name);
      if (e.numel > (size_t(1) << 20)) continue;  // a shape's element count is checked against its bytes
      std::vector<float> out(e.numel);
      if (e.dtype == SafetensorsDType::F32 || e.dtype == SafetensorsDType::F16 || e.dtype == SafetensorsDType::BF16)
        file.read_as_f32(e.name, out);
    }
  });
}
