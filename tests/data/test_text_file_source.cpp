#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/data/token_source.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_support::ScratchDir;

// This process's resident memory now (VmRSS of /proc/self/status), in bytes.
int64_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      int64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

std::vector<int32_t> read_all(const TokenSource& src, Split s) {
  std::vector<int32_t> out(size_t(src.size(s)));
  src.read(s, 0, src.size(s), out.data());
  return out;
}

// The tokens of a text file are its bytes, split at the same place as always: the first
// bytes - floor(bytes * val_fraction) train, the rest validate.
TEST(TextFileSource, TokensAreTheFilesBytes) {
  ScratchDir dir;
  std::string text;
  for (int i = 0; i < 500; ++i) text += "line " + std::to_string(i) + ": naïve café — ünïcödé bytes, ASCII too.\n";
  std::ofstream(dir.path() / "t.txt", std::ios::binary) << text;
  const auto src = open_token_source(dir.path() / "t.txt", 0.1);
  const int64_t n = int64_t(text.size());
  const int64_t n_train = n - int64_t(double(n) * 0.1);
  ASSERT_EQ(src->size(Split::train), n_train);
  ASSERT_EQ(src->size(Split::val), n - n_train);
  EXPECT_EQ(src->vocab_size(), 256);
  std::vector<int32_t> expected(text.size());
  for (size_t i = 0; i < text.size(); ++i) expected[i] = int32_t(static_cast<unsigned char>(text[i]));
  EXPECT_EQ(read_all(*src, Split::train), std::vector<int32_t>(expected.begin(), expected.begin() + n_train));
  EXPECT_EQ(read_all(*src, Split::val), std::vector<int32_t>(expected.begin() + n_train, expected.end()));
  std::vector<int32_t> window(7);
  src->read(Split::val, 3, 7, window.data());
  EXPECT_EQ(window, std::vector<int32_t>(expected.begin() + n_train + 3, expected.begin() + n_train + 10));
}

// Opening a text is not reading it whole: a 64 MiB file leaves the resident memory (nearly)
// where it was, so a text larger than memory can be trained on.
TEST(TextFileSource, OpeningDoesNotLoadTheFile) {
  ScratchDir dir;
  constexpr int64_t kBytes = 64 << 20;
  const std::string line = "the quick brown fox jumps over the lazy dog, again and again.\n";
  {
    std::ofstream f(dir.path() / "big.txt", std::ios::binary);
    for (int64_t written = 0; written < kBytes; written += int64_t(line.size())) f << line;
  }
  const int64_t before = resident_bytes();
  const auto src = open_token_source(dir.path() / "big.txt", 0.05);
  const int64_t grown = resident_bytes() - before;
  EXPECT_LT(grown, kBytes / 8) << "opening the text made " << grown << " bytes resident";
  const int64_t at = src->size(Split::train) - 4;
  std::vector<int32_t> window(4);
  src->read(Split::train, at, 4, window.data());
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(window[size_t(i)], line[size_t((at + i) % int64_t(line.size()))]);
}

TEST(TextFileSource, EmptyFileIsRefused) {
  ScratchDir dir;
  std::ofstream(dir.path() / "empty.txt");
  EXPECT_THROW(open_token_source(dir.path() / "empty.txt", 0.1), UserError);
}

}  // namespace
}  // namespace meshlm
