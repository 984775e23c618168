// A run's TOML config (train --config), applied over the defaults and validated as a run does.
#include "fuzz/fuzz_support.hpp"
#include "meshlm/train/run_config.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const std::string text(fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] {
    RunConfig cfg;
    apply_toml_text(cfg, text, "fuzz.toml");
    cfg.validate();
    // What a checkpoint stores of the config must read back.
    (void)config_from_json(config_to_json(cfg), "fuzz round trip");
  });
}
