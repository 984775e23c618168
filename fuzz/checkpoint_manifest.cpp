// A checkpoint's manifest.json (every file's size and XXH3-128), as resume and `meshlm verify`
// read it: the text is parsed, and a manifest that parses is round-tripped through its writer.
#include "fuzz/fuzz_support.hpp"
#include "meshlm/train/checkpoint_manifest.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  return fuzz::expect_only_user_errors([&] {
    const CheckpointManifest m = parse_checkpoint_manifest(fuzz::as_text(data, size));
    // What the writer makes of a parsed manifest must parse back to the same entries.
    const CheckpointManifest again = parse_checkpoint_manifest(manifest_to_json(m));
    MESHLM_ASSERT(again.files.size() == m.files.size(), "manifest round trip lost entries");
  });
}
