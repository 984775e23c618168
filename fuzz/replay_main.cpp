// Replays a fuzz target's corpus without libFuzzer: `meshlm_fuzz_replay TARGET DIR|FILE...`
// feeds every file to the target, in name order, and fails on the first input that escapes
// it (anything but a UserError: an InternalError, another exception, a crash), naming it.
// `meshlm_fuzz_replay all CORPUS_ROOT` replays every target's CORPUS_ROOT/<target> in one
// process (the unit test fuzz.replay: one process start instead of one per target).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct FuzzTarget {
  std::string_view name;
  int (*run)(const uint8_t*, size_t);
};

#include "fuzz_targets.inc"

std::vector<std::filesystem::path> inputs_of(const std::filesystem::path& arg) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(arg)) {
    for (const auto& e : std::filesystem::directory_iterator(arg))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(arg);
  }
  return files;
}

}  // namespace

namespace {

// Feeds every input to `target`; false (after naming the input) at the first that escapes it.
bool replay(const FuzzTarget& target, const std::vector<std::filesystem::path>& args, size_t& count) {
  for (const auto& arg : args) {
    for (const auto& file : inputs_of(arg)) {
      std::ifstream in(file, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      try {
        target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%.*s: input %s escaped the target: %s\n", int(target.name.size()), target.name.data(),
                     file.c_str(), e.what());
        return false;
      }
      ++count;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view which = argc > 1 ? argv[1] : "";
  std::vector<const FuzzTarget*> targets;
  for (const auto& t : kFuzzTargets)
    if (which == "all" || t.name == which) targets.push_back(&t);
  if (targets.empty() || argc < 3 || (which == "all" && argc != 3)) {
    std::fprintf(stderr, "usage: meshlm_fuzz_replay TARGET DIR|FILE... | all CORPUS_ROOT; targets:");
    for (const auto& t : kFuzzTargets) std::fprintf(stderr, " %.*s", int(t.name.size()), t.name.data());
    std::fprintf(stderr, "\n");
    return 2;
  }
  for (const FuzzTarget* t : targets) {
    std::vector<std::filesystem::path> args;
    if (which == "all") args.push_back(std::filesystem::path(argv[2]) / t->name);
    else args.assign(argv + 2, argv + argc);
    size_t count = 0;
    if (!replay(*t, args, count)) return 1;
    if (count == 0) {
      std::fprintf(stderr, "%.*s: no inputs\n", int(t->name.size()), t->name.data());
      return 1;
    }
    std::printf("%.*s: %zu inputs replayed, each accepted or refused with a UserError\n", int(t->name.size()),
                t->name.data(), count);
  }
  return 0;
}
