#pragma once
// What every fuzz target shares. A target feeds one input to one parser of outside input and
// accepts exactly one outcome besides success: a meshlm::UserError (the clear message a user
// gets for a bad file). Anything else escapes the target and is a finding: a crash, a sanitizer
// report, an InternalError (a broken invariant) or any other exception, a hang or running out
// of memory (libFuzzer's -timeout and -rss_limit_mb).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "meshlm/core/error.hpp"

namespace meshlm::fuzz {

// This process's scratch directory (created on first use, removed at exit): parsers that
// take a path read the input from a file in it.
const std::filesystem::path& scratch_dir();
// Replaces `name` in the scratch directory (or in `dir`) with `bytes`; returns its path.
std::filesystem::path put_file(const std::string& name, std::string_view bytes);
std::filesystem::path put_file(const std::filesystem::path& dir, const std::string& name, std::string_view bytes);
// An empty subdirectory of the scratch directory (emptied if it exists).
std::filesystem::path fresh_dir(const std::string& name);

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits an input into two files' contents at the first "\n==\n" (the seed corpus uses it;
// without one, the second part is empty), so that one input can exercise a pair of files.
std::pair<std::string_view, std::string_view> split_pair(std::string_view input);

// With MESHLM_FUZZ_VERBOSE set, prints each input's outcome (to see what a corpus reaches).
void report_outcome(const char* what);

// Runs `parse`; a UserError is an accepted answer to a bad input, anything else escapes.
template <class F>
int expect_only_user_errors(F&& parse) {
  try {
    parse();
    report_outcome("accepted");
  } catch (const UserError& e) {
    report_outcome(e.what());
  }
  return 0;
}

}  // namespace meshlm::fuzz

// The entry point libFuzzer calls; the replay build (fuzz/replay_main.cpp) renames it per
// target, so that one executable holds them all.
#ifndef MESHLM_FUZZ_ENTRY
#define MESHLM_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif
extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size);
