// A checkpoint's trainer_state.json (step, early stopping, data position, the run's config),
// as --resume reads it.
#include "fuzz/fuzz_support.hpp"
#include "meshlm/train/checkpoint.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const auto dir = fuzz::scratch_dir() / "step_000001";
  std::filesystem::create_directories(dir);
  fuzz::put_file(dir, "trainer_state.json", fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] { (void)read_checkpoint_info(dir); });
}
