#pragma once
// A per-thread cache of word (pre-token) -> token ids for the subword tokenizers: the same
// words recur all through a corpus, so encoding each distinct word once saves most of the
// work. The ids of all cached words sit back to back in one vector. A cache belongs to one
// tokenizer at a time (its serial number): a thread that switches tokenizers starts afresh.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace meshlm {

struct WordIdCache {
  struct Hash {
    using is_transparent = void;  // look up by string_view without building a string
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  uint64_t owner = 0;  // serial number of the tokenizer the entries belong to
  // word -> (first index into ids, count)
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, Hash, std::equal_to<>> index;
  std::vector<int32_t> ids;

  void reset(uint64_t new_owner) {
    owner = new_owner;
    index.clear();
    ids.clear();
  }
};

}  // namespace meshlm
