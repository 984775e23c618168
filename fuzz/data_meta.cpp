// A data directory's meta.json (from `meshlm prepare`), opened with valid shards and a byte
// tokenizer beside it, as train and eval open --data; a few tokens of each split are read.
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "meshlm/data/token_shard.hpp"
#include "meshlm/data/token_source.hpp"
#include "meshlm/data/tokenizer.hpp"

namespace {

// train.bin and val.bin of 300 and 40 byte ids, and the byte tokenizer's manifest.
const std::filesystem::path& data_dir() {
  static const std::filesystem::path dir = [] {
    using namespace meshlm;
    const auto d = fuzz::fresh_dir("data");
    for (auto [name, n] : {std::pair{"train.bin", 300}, std::pair{"val.bin", 40}}) {
      TokenShardWriter w(d / name, 256);
      for (int i = 0; i < n; ++i) w.append(int32_t(i * 7 % 256));
      w.finish();
    }
    make_byte_tokenizer()->save(d);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const auto& dir = data_dir();
  fuzz::put_file(dir, "meta.json", fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] {
    const auto source = open_token_source(dir, 0.1);
    (void)source->description();
    for (Split s : {Split::train, Split::val}) {
      std::vector<int32_t> ids(size_t(std::min<int64_t>(source->size(s), 16)));
      if (!ids.empty()) source->read(s, 0, int64_t(ids.size()), ids.data());
    }
  });
}
