// A token shard (train.bin, val.bin of a data directory): header, width, vocabulary, size;
// every id is then scanned as training does before it reads a shard.
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "meshlm/data/token_shard.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const auto path = fuzz::put_file("train.bin", fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] {
    const TokenShard shard(path);
    shard.check_ids(shard.vocab_size());
    std::vector<int32_t> ids(size_t(std::min<int64_t>(shard.size(), 64)));
    if (!ids.empty()) shard.read(shard.size() - int64_t(ids.size()), int64_t(ids.size()), ids.data());
  });
}
