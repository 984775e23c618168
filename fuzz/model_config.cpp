// A model's config.json (Hugging Face's GPT2Config fields), as eval, generate and
// train --init-from read it, then the memory check that runs before anything is allocated.
#include "fuzz/fuzz_support.hpp"
#include "meshlm/model/memory_estimate.hpp"
#include "meshlm/model/model_io.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const auto dir = fuzz::scratch_dir() / "model_config";
  std::filesystem::create_directories(dir);
  fuzz::put_file(dir, kModelConfigFile, fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] {
    const GPTConfig cfg = load_model_config(dir);
    (void)estimate_model_memory(cfg, {.training = true, .batch = 8});
    check_model_fits_memory(cfg, {}, Device::cpu, "the fuzzed model");
  });
}
