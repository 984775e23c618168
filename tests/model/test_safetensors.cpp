#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/dtype.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/model/safetensors.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_support::ScratchDir;

void write_bytes(const fs::path& path, const std::string& bytes) {
  // Unlink first: ext4 flushes a truncated-and-rewritten file on close, which makes the
  // thousands of rewrites in the fuzz test crawl.
  fs::remove(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good());
}

std::string read_bytes(const fs::path& path) { return read_file(path, "test file"); }

// A file with an arbitrary header text and data section, for feeding the reader bad input.
std::string raw_file(const std::string& header, const std::string& data = "", uint64_t header_size = UINT64_MAX) {
  if (header_size == UINT64_MAX) header_size = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &header_size, 8);
  return out + header + data;
}

// Runs `fn`, which must throw a UserError whose message names `path` and contains `needle`.
void expect_user_error(const std::function<void()>& fn, const fs::path& path, const std::string& needle,
                       const std::string& label) {
  try {
    fn();
    ADD_FAILURE() << label << ": no exception";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << label << ": message does not name the file: " << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << label << ": message lacks '" << needle << "': " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << label << ": message is not one line: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": wrong exception type: " << e.what();
  }
}

template <class T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(Safetensors, RoundTripIsBitExactInOrderWithMetadata) {
  ScratchDir dir;
  const fs::path path = dir / "t.safetensors";
  // Values whose bits must survive: signed zero, a NaN payload, a subnormal, infinities.
  uint32_t nan_bits = 0x7fc01234u;
  float nan_with_payload;
  std::memcpy(&nan_with_payload, &nan_bits, 4);
  const std::vector<float> f32 = {1.5f, -0.0f, nan_with_payload, 1e-45f, std::numeric_limits<float>::infinity(), -3.25f};
  const std::vector<uint16_t> f16 = {f32_to_f16(1.0f), f32_to_f16(-2.5f), 0x7c00u};
  const std::vector<uint16_t> bf16 = {f32_to_bf16(3.0f), f32_to_bf16(-0.125f)};
  const std::vector<int32_t> i32 = {1, -2, 1 << 30};
  const std::vector<uint16_t> u16 = {65535, 0, 7};
  const float scalar = 42.0f;
  const std::vector<TensorRef> tensors = {
      {"zeta.f32", DType::f32, {2, 3}, f32.data()},  // names deliberately not sorted
      {"alpha.f16", DType::f16, {3}, f16.data()},
      {"empty", DType::f32, {0, 5}, nullptr},
      {"mid.bf16", DType::bf16, {1, 2}, bf16.data()},
      {"ids", DType::i32, {3}, i32.data()},
      {"tokens", DType::u16, {3, 1}, u16.data()},
      {"scalar", SafetensorsDType::F32, {}, &scalar},
  };
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "héllo \"quoted\""}});

  const SafetensorsFile file(path);
  EXPECT_EQ(file.names(),
            (std::vector<std::string>{"zeta.f32", "alpha.f16", "empty", "mid.bf16", "ids", "tokens", "scalar"}));
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "héllo \"quoted\""}}));
  EXPECT_EQ(file.dtype("zeta.f32"), SafetensorsDType::F32);
  EXPECT_EQ(file.dtype("alpha.f16"), SafetensorsDType::F16);
  EXPECT_EQ(file.dtype("mid.bf16"), SafetensorsDType::BF16);
  EXPECT_EQ(file.dtype("ids"), SafetensorsDType::I32);
  EXPECT_EQ(file.dtype("tokens"), SafetensorsDType::U16);
  EXPECT_EQ(file.shape("zeta.f32"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(file.shape("empty"), (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(file.shape("scalar"), (std::vector<int64_t>{}));
  EXPECT_EQ(file.shape("tokens"), (std::vector<int64_t>{3, 1}));
  auto same_bytes = [&](const std::string& name, const void* expected, size_t n) {
    auto b = file.bytes(name);
    ASSERT_EQ(b.size(), n) << name;
    if (n) {
      EXPECT_EQ(std::memcmp(b.data(), expected, n), 0) << name;
    }
  };
  same_bytes("zeta.f32", f32.data(), 24);
  same_bytes("alpha.f16", f16.data(), 6);
  same_bytes("empty", nullptr, 0);
  same_bytes("mid.bf16", bf16.data(), 4);
  same_bytes("ids", i32.data(), 12);
  same_bytes("tokens", u16.data(), 6);
  same_bytes("scalar", &scalar, 4);
  EXPECT_TRUE(file.has("ids"));
  EXPECT_FALSE(file.has("nope"));

  // The layout on disk is the format's: u64 header size, space-padded JSON to a multiple
  // of 8, then the tensors back to back in the order given.
  const std::string disk = read_bytes(path);
  uint64_t n;
  std::memcpy(&n, disk.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(disk.size(), 8 + n + 24 + 6 + 0 + 4 + 12 + 6 + 4);
  const auto header = nlohmann::json::parse(disk.substr(8, n));
  EXPECT_EQ(header["zeta.f32"]["data_offsets"], nlohmann::json::array({0, 24}));
  EXPECT_EQ(header["alpha.f16"]["data_offsets"], nlohmann::json::array({24, 30}));
  EXPECT_EQ(header["scalar"]["data_offsets"], nlohmann::json::array({52, 56}));
  EXPECT_EQ(header["mid.bf16"]["dtype"], "BF16");
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  EXPECT_EQ(std::memcmp(disk.data() + 8 + n, f32.data(), 24), 0);
}

TEST(Safetensors, ReadAsF32ConvertsHalfPrecisionAndChecksCount) {
  ScratchDir dir;
  const fs::path path = dir / "h.safetensors";
  const std::vector<float> values = {0.0f, 1.0f, -2.5f, 0.333333f, 65504.0f, 1e-6f, -7.75f};
  std::vector<uint16_t> f16, bf16;
  for (float v : values) {
    f16.push_back(f32_to_f16(v));
    bf16.push_back(f32_to_bf16(v));
  }
  const std::vector<int32_t> ints = {1, 2};
  write_safetensors(path, {{"f16", DType::f16, {7}, f16.data()},
                           {"bf16", DType::bf16, {7}, bf16.data()},
                           {"f32", DType::f32, {7}, values.data()},
                           {"ints", DType::i32, {2}, ints.data()}});
  const SafetensorsFile file(path);
  std::vector<float> out(7);
  file.read_as_f32("f16", out);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(out[i], f16_to_f32(f16[i])) << i;
  file.read_as_f32("bf16", out);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(out[i], bf16_to_f32(bf16[i])) << i;
  file.read_as_f32("f32", out);
  EXPECT_EQ(out, values);
  EXPECT_EQ(out[3], 0.333333f);

  std::vector<float> wrong(6);
  expect_user_error([&] { file.read_as_f32("f32", wrong); }, path, "6 were expected", "element count");
  std::vector<float> two(2);
  expect_user_error([&] { file.read_as_f32("ints", two); }, path, "I32", "integer dtype");
  expect_user_error([&] { file.read_as_f32("missing", out); }, path, "missing", "unknown name");
  expect_user_error([&] { (void)file.shape("missing"); }, path, "no tensor", "unknown name");
}

TEST(Safetensors, ReadsUnalignedDataAndZeroSizedTensors) {
  ScratchDir dir;
  const fs::path path = dir / "u.safetensors";
  // A 5-byte-odd header puts the data at an address no float is aligned to.
  const std::vector<float> v = {1.0f, 2.0f, 3.0f};
  const std::string header = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"z":{"dtype":"F16","shape":[4,0],"data_offsets":[12,12]}})";
  write_bytes(path, raw_file(header, bytes_of(v)));
  const SafetensorsFile file(path);
  std::vector<float> out(3);
  file.read_as_f32("a", out);
  EXPECT_EQ(out, v);
  std::vector<float> none;
  file.read_as_f32("z", none);
  EXPECT_TRUE(file.metadata().empty());
}

TEST(Safetensors, MoveKeepsTheMapping) {
  ScratchDir dir;
  const fs::path path = dir / "m.safetensors";
  const std::vector<float> v = {4.0f, 5.0f};
  write_safetensors(path, {{"v", DType::f32, {2}, v.data()}});
  SafetensorsFile a(path);
  SafetensorsFile b(std::move(a));
  SafetensorsFile c(path);
  c = std::move(b);
  std::vector<float> out(2);
  c.read_as_f32("v", out);
  EXPECT_EQ(out, v);
  EXPECT_EQ(c.path(), path);
}

TEST(Safetensors, RejectsEveryKindOfBadHeaderNamingTheFile) {
  ScratchDir dir;
  const fs::path path = dir / "bad.safetensors";
  const std::string ok_entry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  const std::string eight(8, 'x');
  struct Case {
    std::string label, bytes, needle;
  };
  const std::vector<Case> cases = {
      {"empty file", "", "truncated"},
      {"shorter than 8 bytes", "abcde", "truncated"},
      {"header larger than file", raw_file("{}", "", 100), "exceeds"},
      {"absurd header size", raw_file("{}", "", uint64_t(1) << 40), "absurd"},
      {"absurd header size just over 100 MB", raw_file("{}", "", 100'000'001), "absurd"},
      {"not JSON", raw_file("{\"a\": nope}"), "not valid JSON"},
      {"empty header", raw_file(""), "not valid JSON"},
      {"JSON array", raw_file("[1, 2]"), "not a JSON object"},
      {"JSON string", raw_file("\"F32\""), "not a JSON object"},
      {"entry not an object", raw_file(R"({"a": 5})"), "not described by a JSON object"},
      {"missing dtype", raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", eight), "no \"dtype\" field"},
      {"missing shape", raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", eight), "no \"shape\" field"},
      {"missing data_offsets", raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", eight), "no \"data_offsets\" field"},
      {"dtype not a string", raw_file(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", eight), "dtype that is not a string"},
      {"unknown dtype", raw_file(R"({"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", eight), "unknown dtype \"F31\""},
      {"lowercase dtype", raw_file(R"({"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", eight), "unknown dtype"},
      {"shape not an array", raw_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", eight), "not a JSON array"},
      {"negative dimension", raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight), "negative dimension"},
      {"fractional dimension", raw_file(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight), "not an integer"},
      {"string dimension", raw_file(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", eight), "not an integer"},
      {"dimension beyond int64", raw_file(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", eight), "too large"},
      {"overflowing element count", raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight), "overflows"},
      {"overflowing byte count", raw_file(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", eight), "overflows"},
      {"offsets not a pair", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", eight), "not a pair"},
      {"negative offset", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", eight), "not a pair"},
      {"offsets not integers", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", eight), "not a pair"},
      {"end before begin", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight), "end before they begin"},
      {"byte length mismatch", raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), "need 12"},
      {"offsets beyond data", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", eight), "beyond the 8-byte data section"},
      {"truncated data", raw_file("{" + std::string("\"a\":{") + ok_entry + "}}", "1234"), "beyond the 4-byte data section"},
      {"overlapping tensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                eight + "yyyy"),
       "overlap"},
      {"same bytes twice",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", eight),
       "overlap"},
      {"duplicate names", raw_file("{\"a\":{" + ok_entry + "},\"a\":{" + ok_entry + "}}", eight), "\"a\" appears twice"},
      {"deeply nested array", raw_file(std::string(1'000'000, '[') + std::string(1'000'000, ']')), "not a JSON object"},
      {"deeply nested entry", raw_file("{\"a\":" + std::string(1'000'000, '[') + std::string(1'000'000, ']') + "}"),
       "not described by a JSON object"},
      {"metadata not an object", raw_file(R"({"__metadata__":[1]})"), "__metadata__ is not a JSON object"},
      {"metadata value not a string", raw_file(R"({"__metadata__":{"format":1}})"), "\"format\" is not a string"},
  };
  for (const auto& c : cases) {
    write_bytes(path, c.bytes);
    expect_user_error([&] { SafetensorsFile f(path); }, path, c.needle, c.label);
  }

  expect_user_error([&] { SafetensorsFile f(dir / "absent.safetensors"); }, dir / "absent.safetensors", "not found",
                    "missing file");
  fs::create_directories(dir / "sub.safetensors");
  expect_user_error([&] { SafetensorsFile f(dir / "sub.safetensors"); }, dir / "sub.safetensors", "directory",
                    "directory");

  // A hostile name is quoted, escaped and cut short in the message, which stays one line.
  const std::string long_name(1000, 'n');
  write_bytes(path, raw_file("{\"\\n" + long_name + "\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}"));
  try {
    SafetensorsFile f(path);
    ADD_FAILURE() << "no exception";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_LT(msg.size(), 400u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"\\nnnn"), std::string::npos) << msg;
  }
}

// Opens a file and touches every tensor the way a loader would.
void open_and_read_everything(const fs::path& path) {
  const SafetensorsFile file(path);
  for (const auto& e : file.entries()) {
    auto b = file.bytes(e.name);
    volatile unsigned sum = 0;
    for (std::byte x : b) sum = sum + unsigned(x);
    if (e.dtype == SafetensorsDType::F32 || e.dtype == SafetensorsDType::F16 || e.dtype == SafetensorsDType::BF16) {
      std::vector<float> out(e.numel);
      file.read_as_f32(e.name, out);
    }
  }
}

TEST(Safetensors, TruncationsAndCorruptionsLoadOrThrowUserErrorNeverAnythingElse) {
  ScratchDir dir;
  const fs::path valid = dir / "valid.safetensors";
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<uint16_t> b = {f32_to_f16(1.0f), f32_to_f16(2.0f), f32_to_f16(3.0f)};
  const std::vector<uint16_t> c = {f32_to_bf16(-1.0f), f32_to_bf16(0.5f)};
  const std::vector<int32_t> d = {7};
  write_safetensors(valid,
                    {{"h.0.attn.c_attn.weight", DType::f32, {2, 3}, a.data()},
                     {"b", DType::f16, {3}, b.data()},
                     {"c", DType::bf16, {1, 2}, c.data()},
                     {"d", DType::i32, {1}, d.data()}},
                    {{"format", "pt"}});
  const std::string good = read_bytes(valid);
  uint64_t header_size;
  std::memcpy(&header_size, good.data(), 8);

  const fs::path path = dir / "fuzz.safetensors";
  int loaded = 0, rejected = 0;
  auto check = [&](const std::string& bytes, const std::string& label) {
    write_bytes(path, bytes);
    try {
      open_and_read_everything(path);
      ++loaded;
    } catch (const UserError&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << label << ": threw something other than UserError: " << e.what();
    }
  };

  for (size_t len = 0; len < good.size(); ++len) check(good.substr(0, len), cat("truncated to ", len));
  EXPECT_EQ(loaded, 0) << "every truncation loses data, so none may load";

  // Random byte corruptions, aimed mostly at the header (where the parser is), with bytes
  // that JSON cares about as often as arbitrary ones.
  std::mt19937_64 rng(1234);
  const std::string json_chars = "{}[],:\"0123456789-+.eE \\ntfu";
  for (int iter = 0; iter < 4000; ++iter) {
    std::string bytes = good;
    const int edits = 1 + int(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      size_t pos;
      switch (rng() % 4) {
        case 0: pos = rng() % bytes.size(); break;                  // anywhere
        case 1: pos = rng() % 8; break;                             // the header size
        default: pos = 8 + rng() % header_size; break;              // the JSON
      }
      bytes[pos] = (rng() % 2) ? json_chars[rng() % json_chars.size()] : char(rng() % 256);
    }
    if (rng() % 8 == 0) bytes.resize(rng() % bytes.size());  // and sometimes cut short too
    check(bytes, cat("corruption ", iter));
  }
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rejected, 0);
}

// A hostile header with many entries: each is a valid zero-sized tensor, so only the count
// can refuse it. The reader stops at the cap (in a first pass that builds nothing), both at
// the absolute cap and at a caller's smaller one, and reads a header within its cap whole.
std::string many_empty_tensors_header(size_t n) {
  std::string header = "{";
  for (size_t i = 0; i < n; ++i) header += cat(i ? "," : "", "\"t", i, "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}");
  return header + "}";
}

TEST(Safetensors, RefusesHeadersWithMoreTensorsThanTheCap) {
  ScratchDir dir("st_cap");
  const fs::path path = dir.path() / "many.safetensors";
  write_bytes(path, raw_file(many_empty_tensors_header(200'000)));
  expect_user_error([&] { SafetensorsFile f(path); }, path,
                    cat("describes more than ", kMaxSafetensorsTensors, " tensors"), "absolute cap");
  expect_user_error([&] { SafetensorsFile f(path, 150); }, path, "describes more than 150 tensors, the most this file may hold for this model",
                    "caller's cap");

  write_bytes(path, raw_file(many_empty_tensors_header(150)));
  EXPECT_EQ(SafetensorsFile(path, 150).entries().size(), 150u);
  expect_user_error([&] { SafetensorsFile f(path, 149); }, path, "describes more than 149 tensors", "one over");
  // __metadata__ is not a tensor: it does not count against the cap.
  const std::string with_meta = "{\"__metadata__\":{\"format\":\"pt\"}," + many_empty_tensors_header(3).substr(1);
  write_bytes(path, raw_file(with_meta));
  EXPECT_EQ(SafetensorsFile(path, 3).entries().size(), 3u);
}

TEST(Safetensors, FailedWriteLeavesNoPartialFile) {
  ScratchDir dir;
  const std::vector<float> v = {1.0f};
  // The target's name is taken by a directory, so the final rename must fail.
  fs::create_directories(dir / "taken.safetensors");
  EXPECT_THROW(write_safetensors(dir / "taken.safetensors", {{"v", DType::f32, {1}, v.data()}}), UserError);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path())) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"taken.safetensors"});
  EXPECT_TRUE(fs::is_empty(dir / "taken.safetensors"));

  // A directory that does not exist: nothing is created.
  EXPECT_THROW(write_safetensors(dir / "nodir" / "x.safetensors", {{"v", DType::f32, {1}, v.data()}}), UserError);
  EXPECT_FALSE(fs::exists(dir / "nodir"));

  // A name that is not UTF-8 cannot go into the JSON header.
  EXPECT_THROW(write_safetensors(dir / "x.safetensors", {{"\xff\xfe", DType::f32, {1}, v.data()}}), UserError);
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
}

TEST(Safetensors, RewriteReplacesTheFileWhole) {
  ScratchDir dir;
  const fs::path path = dir / "r.safetensors";
  const std::vector<float> first = {1, 2, 3, 4}, second = {9};
  write_safetensors(path, {{"a", DType::f32, {4}, first.data()}});
  write_safetensors(path, {{"b", DType::f32, {1}, second.data()}});
  const SafetensorsFile file(path);
  EXPECT_EQ(file.names(), std::vector<std::string>{"b"});
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path())) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"r.safetensors"});
}

TEST(Safetensors, DTypeNamesRoundTrip) {
  for (auto t : {SafetensorsDType::BOOL, SafetensorsDType::U8, SafetensorsDType::I8, SafetensorsDType::F8_E4M3,
                 SafetensorsDType::F8_E5M2, SafetensorsDType::I16, SafetensorsDType::U16, SafetensorsDType::F16,
                 SafetensorsDType::BF16, SafetensorsDType::I32, SafetensorsDType::U32, SafetensorsDType::F32,
                 SafetensorsDType::I64, SafetensorsDType::U64, SafetensorsDType::F64})
    EXPECT_EQ(parse_safetensors_dtype(safetensors_dtype_name(t)), t);
  EXPECT_EQ(safetensors_dtype_size(SafetensorsDType::I64), 8u);
  EXPECT_EQ(safetensors_dtype_size(SafetensorsDType::BF16), 2u);
  EXPECT_EQ(safetensors_dtype_size(SafetensorsDType::BOOL), 1u);
  EXPECT_FALSE(parse_safetensors_dtype("F128").has_value());
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::u16})
    EXPECT_EQ(safetensors_dtype_size(to_safetensors_dtype(t)), dtype_size(t));
  EXPECT_EQ(format_shape(std::vector<int64_t>{768, 2304}), "[768, 2304]");
  EXPECT_EQ(format_shape(std::vector<int64_t>{}), "[]");
}

}  // namespace
}  // namespace meshlm
