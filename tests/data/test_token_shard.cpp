#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/data/token_shard.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_support::ScratchDir;

class TokenShardTest : public ::testing::Test {
 protected:
  fs::path write_shard(const std::string& name, int64_t vocab, const std::vector<int32_t>& ids) {
    fs::path p = dir_ / name;
    TokenShardWriter w(p, vocab);
    w.append(ids);
    w.finish();
    return p;
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void spit(const fs::path& p, const std::string& s) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << s;
  }
  // Copies `src` into a new file with `bytes` written at `offset`, and returns its path.
  fs::path patched(const fs::path& src, const std::string& name, size_t offset, const void* bytes, size_t n) {
    std::string s = slurp(src);
    std::memcpy(s.data() + offset, bytes, n);
    fs::path p = dir_ / name;
    spit(p, s);
    return p;
  }
  // Expects opening `p` to fail with a UserError that names the file and contains `what`.
  static void expect_rejected(const fs::path& p, const std::string& what) {
    try {
      TokenShard s(p);
      ADD_FAILURE() << p << " was accepted, expected an error mentioning '" << what << "'";
    } catch (const UserError& e) {
      EXPECT_THAT(e.what(), HasSubstr(p.filename().string()));
      EXPECT_THAT(e.what(), HasSubstr(what));
    }
  }

  const ScratchDir scratch_;
  const fs::path dir_ = scratch_.path();
};

std::vector<int32_t> pattern(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = int32_t((i * 7919 + i / 3) % vocab);
  return ids;
}

TEST_F(TokenShardTest, RoundTripU16AcrossWriteBuffers) {
  const int64_t vocab = 50257;
  std::vector<int32_t> ids = pattern(1'300'000, vocab);  // 2.6 MB: several 1 MiB write buffers
  ids.back() = int32_t(vocab - 1);
  fs::path p = dir_ / "train.bin";
  {
    TokenShardWriter w(p, vocab);
    EXPECT_EQ(w.token_bytes(), 2);
    // Appends of uneven sizes, including empty ones and single ids.
    size_t i = 0, step = 1;
    while (i < ids.size()) {
      size_t n = std::min(step, ids.size() - i);
      if (n == 1)
        w.append(ids[i]);
      else
        w.append(std::span<const int32_t>(ids.data() + i, n));
      w.append(std::span<const int32_t>());
      i += n;
      step = step * 3 + 1;
    }
    EXPECT_FALSE(fs::exists(p)) << "the shard must not appear before finish()";
    w.finish();
  }
  EXPECT_EQ(fs::file_size(p), uintmax_t(64 + 2 * ids.size()));
  TokenShard s(p);
  EXPECT_EQ(s.size(), int64_t(ids.size()));
  EXPECT_EQ(s.vocab_size(), vocab);
  EXPECT_EQ(s.token_bytes(), 2);
  std::vector<int32_t> back(ids.size());
  s.read(0, s.size(), back.data());
  EXPECT_EQ(back, ids);
  int32_t mid[5];
  s.read(1000, 5, mid);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(mid[k], ids[1000 + size_t(k)]);
  EXPECT_EQ(s.at(s.size() - 1), vocab - 1);
  s.check_ids(vocab);
  s.check_ids(vocab + 10);
}

TEST_F(TokenShardTest, RoundTripU32) {
  const int64_t vocab = 100'000;
  std::vector<int32_t> ids = pattern(400'000, vocab);
  ids[17] = int32_t(vocab - 1);
  fs::path p = write_shard("val.bin", vocab, ids);
  EXPECT_EQ(fs::file_size(p), uintmax_t(64 + 4 * ids.size()));
  TokenShard s(p);
  EXPECT_EQ(s.token_bytes(), 4);
  std::vector<int32_t> back(ids.size());
  s.read(0, s.size(), back.data());
  EXPECT_EQ(back, ids);
  s.check_ids(vocab);
}

TEST_F(TokenShardTest, WidthFollowsVocabulary) {
  EXPECT_EQ(token_bytes_for_vocab(256), 2);
  EXPECT_EQ(token_bytes_for_vocab(65536), 2);
  EXPECT_EQ(token_bytes_for_vocab(65537), 4);
  fs::path p = write_shard("a.bin", 65536, {0, 65535, 1});
  TokenShard s(p);
  EXPECT_EQ(s.token_bytes(), 2);
  EXPECT_EQ(s.at(1), 65535);
}

TEST_F(TokenShardTest, HeaderLayout) {
  fs::path p = write_shard("a.bin", 300, {1, 2, 299});
  std::string s = slurp(p);
  ASSERT_EQ(s.size(), 64u + 6u);
  EXPECT_EQ(std::memcmp(s.data(), "MESHTOK\0", 8), 0);
  uint32_t version, width;
  uint64_t count, vocab;
  std::memcpy(&version, s.data() + 8, 4);
  std::memcpy(&width, s.data() + 12, 4);
  std::memcpy(&count, s.data() + 16, 8);
  std::memcpy(&vocab, s.data() + 24, 8);
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(width, 2u);
  EXPECT_EQ(count, 3u);
  EXPECT_EQ(vocab, 300u);
  for (size_t i = 32; i < 64; ++i) EXPECT_EQ(s[i], '\0') << "padding byte " << i;
  EXPECT_EQ(static_cast<unsigned char>(s[68]), 299 & 0xFF);  // little-endian u16
  EXPECT_EQ(static_cast<unsigned char>(s[69]), 299 >> 8);
}

TEST_F(TokenShardTest, EmptyShard) {
  fs::path p = write_shard("empty.bin", 256, {});
  TokenShard s(p);
  EXPECT_EQ(s.size(), 0);
  s.read(0, 0, nullptr);
  s.check_ids(256);
}

TEST_F(TokenShardTest, MoveKeepsTheMapping) {
  fs::path p = write_shard("a.bin", 256, {5, 6, 7});
  TokenShard a(p);
  TokenShard b(std::move(a));
  EXPECT_EQ(b.at(2), 7);
  TokenShard c(write_shard("b.bin", 256, {9}));
  c = std::move(b);
  EXPECT_EQ(c.size(), 3);
  EXPECT_EQ(c.at(0), 5);
}

TEST_F(TokenShardTest, RejectsEveryHeaderCorruption) {
  fs::path good = write_shard("good.bin", 1000, pattern(500, 1000));
  const std::string bytes = slurp(good);

  expect_rejected(dir_ / "missing.bin", "not found");
  spit(dir_ / "zero.bin", "");
  expect_rejected(dir_ / "zero.bin", "too short");
  spit(dir_ / "short.bin", bytes.substr(0, 63));
  expect_rejected(dir_ / "short.bin", "too short");

  expect_rejected(patched(good, "magic.bin", 0, "MESHTOX", 7), "not a meshlm token shard");
  uint32_t u32 = 2;
  expect_rejected(patched(good, "version.bin", 8, &u32, 4), "version 2");
  u32 = 0;
  expect_rejected(patched(good, "version0.bin", 8, &u32, 4), "version 0");
  u32 = 3;
  expect_rejected(patched(good, "width3.bin", 12, &u32, 4), "3 bytes per token");
  u32 = 8;
  expect_rejected(patched(good, "width8.bin", 12, &u32, 4), "8 bytes per token");
  uint64_t u64 = 0;
  expect_rejected(patched(good, "vocab0.bin", 24, &u64, 8), "vocabulary size 0");
  u64 = 70'000;
  expect_rejected(patched(good, "vocab_wide.bin", 24, &u64, 8), "2-byte tokens");
  u64 = uint64_t(1) << 40;
  expect_rejected(patched(good, "vocab_huge.bin", 24, &u64, 8), "vocabulary size");
  char junk = 1;
  expect_rejected(patched(good, "padding.bin", 40, &junk, 1), "reserved bytes");

  // Token count disagreeing with the file size, in both directions and overflowing.
  spit(dir_ / "truncated.bin", bytes.substr(0, bytes.size() - 1));
  expect_rejected(dir_ / "truncated.bin", "is truncated: header says 500 tokens (1000 bytes) but 999 bytes follow");
  spit(dir_ / "headeronly.bin", bytes.substr(0, 64));
  expect_rejected(dir_ / "headeronly.bin", "but 0 bytes follow");
  spit(dir_ / "extra.bin", bytes + "xy");
  expect_rejected(dir_ / "extra.bin", "header says 500 tokens (1000 bytes) but 1002 bytes follow");
  u64 = 501;
  expect_rejected(patched(good, "count.bin", 16, &u64, 8), "truncated");
  u64 = ~uint64_t(0) / 2 + 1;  // count * 2 wraps to 0
  expect_rejected(patched(good, "count_wrap.bin", 16, &u64, 8), "truncated");
  u64 = ~uint64_t(0);
  expect_rejected(patched(good, "count_max.bin", 16, &u64, 8), "truncated");

  // A directory is not a shard.
  fs::create_directory(dir_ / "dir.bin");
  EXPECT_THROW(TokenShard(dir_ / "dir.bin"), UserError);
  // The original still opens.
  EXPECT_NO_THROW(TokenShard{good});
}

TEST_F(TokenShardTest, CheckIdsFindsOutOfVocabularyIds) {
  std::vector<int32_t> ids = pattern(1000, 100);
  fs::path good = write_shard("train.bin", 100, ids);
  uint16_t bad = 150;
  fs::path p = patched(good, "bad_ids.bin", 64 + 2 * 637, &bad, 2);
  TokenShard s(p);  // the header alone is fine
  try {
    s.check_ids(100);
    ADD_FAILURE() << "id 150 not detected";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad_ids.bin"));
    EXPECT_THAT(e.what(), HasSubstr("token id 150 at offset 637"));
  }
  // u32 shards too, including ids with the top bit set.
  fs::path good32 = write_shard("train32.bin", 70'000, pattern(100, 70'000));
  uint32_t bad32 = 0x80000001u;
  TokenShard s32(patched(good32, "bad32.bin", 64 + 4 * 99, &bad32, 4));
  EXPECT_THAT([&] { s32.check_ids(70'000); },
              ::testing::ThrowsMessage<UserError>(HasSubstr("token id 2147483649 at offset 99")));
  // A shard made for a larger vocabulary than the model's.
  TokenShard g(good);
  EXPECT_THAT([&] { g.check_ids(50); },
              ::testing::ThrowsMessage<UserError>(HasSubstr("vocabulary size 100 but the model's vocabulary is only 50")));
}

TEST_F(TokenShardTest, ReadOutOfBoundsIsABug) {
  TokenShard s(write_shard("a.bin", 256, {1, 2, 3}));
  int32_t out[4];
  EXPECT_THROW(s.read(1, 3, out), InternalError);
  EXPECT_THROW(s.read(-1, 1, out), InternalError);
  EXPECT_THROW(s.read(4, 0, out), InternalError);
  EXPECT_NO_THROW(s.read(3, 0, out));
}

TEST_F(TokenShardTest, WriterRejectsIdsOutsideTheVocabulary) {
  TokenShardWriter w(dir_ / "a.bin", 256);
  EXPECT_THROW(w.append(256), InternalError);
  EXPECT_THROW(w.append(-1), InternalError);
  std::vector<int32_t> ids = {1, 2, 300};
  EXPECT_THROW(w.append(ids), InternalError);
}

TEST_F(TokenShardTest, AbandonedWriterLeavesNoFile) {
  fs::path p = dir_ / "train.bin";
  {
    TokenShardWriter w(p, 256);
    w.append(pattern(2'000'000, 256));  // some of it reached the disk
    EXPECT_FALSE(fs::exists(p));
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(fs::is_empty(dir_)) << "the temporary file was left behind";
  // An exception unwinding past the writer removes it too.
  try {
    TokenShardWriter w(p, 256);
    w.append(7);
    throw UserError("boom");
  } catch (const UserError&) {
  }
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(TokenShardTest, WriterFailsCleanlyInAMissingDirectory) {
  EXPECT_THAT([&] { TokenShardWriter w(dir_ / "nope" / "train.bin", 256); },
              ::testing::ThrowsMessage<UserError>(HasSubstr("cannot create")));
}

}  // namespace
}  // namespace meshlm
