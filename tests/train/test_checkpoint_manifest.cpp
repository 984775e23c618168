// Checkpoint manifests (train/checkpoint_manifest.hpp): the format round-trips, the parser refuses
// every malformed manifest with a UserError, verification names what is wrong with a file; and
// the checkpoint listing and clean-up see through each state an interrupted re-save can leave.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/checkpoint_manifest.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_support::ScratchDir;
using Status = Verification::Status;

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::string hash_of(const fs::path& p) {
  uint64_t bytes = 0;
  return xxh3_of_file(p, bytes);
}

// A checkpoint-like directory of three files and its manifest.
fs::path make_checkpoint(const fs::path& dir) {
  fs::create_directories(dir);
  write(dir / "config.json", "{\"n_layer\": 1}\n");
  write(dir / "model.safetensors", std::string(100000, 'w'));
  write(dir / "trainer_state.json", "{\"step\": 3}\n");
  write_checkpoint_manifest(dir);
  return dir;
}

TEST(CheckpointManifest, RoundTripsThroughJson) {
  CheckpointManifest m;
  m.files = {{"a.json", 12, std::string(32, '0')}, {"b.safetensors", 1ull << 40, "0123456789abcdef0123456789abcdef"}};
  const CheckpointManifest back = parse_checkpoint_manifest(manifest_to_json(m));
  ASSERT_EQ(back.files.size(), 2u);
  EXPECT_EQ(back.files[1].name, "b.safetensors");
  EXPECT_EQ(back.files[1].bytes, 1ull << 40);
  EXPECT_EQ(back.files[1].xxh3, "0123456789abcdef0123456789abcdef");
}

TEST(CheckpointManifest, XXH3OfFilesMatchesTheOneShotHash) {
  ScratchDir tmp;
  write(tmp.path() / "empty", "");
  // XXH3-128 of the empty input (seed 0), high then low half: xxHash's published value.
  EXPECT_EQ(hash_of(tmp.path() / "empty"), "99aa06d3014798d86001c324468d497f");
  // A file longer than the read chunk hashes as the whole buffer at once.
  std::string big(9 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char((i * 2654435761u) >> 13);
  write(tmp.path() / "big", big);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(big.data(), big.size()));
  std::string expected;
  for (unsigned char b : c.digest) expected += cat(std::hex, b >> 4, b & 15);
  uint64_t bytes = 0;
  EXPECT_EQ(xxh3_of_file(tmp.path() / "big", bytes), expected);
  EXPECT_EQ(bytes, big.size());
}

TEST(CheckpointManifest, ParserRefusesMalformedManifests) {
  const std::string head = R"({"format": "meshlm-checkpoint-manifest", "version": 1, "hash": "xxh3-128", "files": )";
  const std::string good_hash = std::string(32, 'a');
  auto with_files = [&](const std::string& files) { return head + files + "}"; };
  EXPECT_NO_THROW(parse_checkpoint_manifest(with_files("[]")));
  for (const std::string& bad : {
           std::string(""), std::string("{"), std::string("[]"), std::string("null"), std::string("\xff\xfe"),
           std::string(R"({"format": "other", "version": 1, "hash": "xxh3-128", "files": []})"),
           std::string(R"({"format": "meshlm-checkpoint-manifest", "version": 2, "hash": "xxh3-128", "files": []})"),
           std::string(R"({"format": "meshlm-checkpoint-manifest", "version": -1, "hash": "xxh3-128", "files": []})"),
           std::string(R"({"format": "meshlm-checkpoint-manifest", "version": 1, "hash": "sha256", "files": []})"),
           std::string(R"({"format": "meshlm-checkpoint-manifest", "version": 1, "hash": "xxh3-128"})"),
           with_files("{}"), with_files("[1]"), with_files(R"([{"name": "a"}])"),
           with_files(R"([{"name": "a", "bytes": -1, "xxh3": ")" + good_hash + "\"}]"),
           with_files(R"([{"name": "a", "bytes": 1.5, "xxh3": ")" + good_hash + "\"}]"),
           with_files(R"([{"name": "a", "bytes": 1, "xxh3": "abc"}])"),
           with_files(R"([{"name": "a", "bytes": 1, "xxh3": ")" + std::string(32, 'A') + "\"}]"),
           with_files(R"([{"name": "../a", "bytes": 1, "xxh3": ")" + good_hash + "\"}]"),
           with_files(R"([{"name": "..", "bytes": 1, "xxh3": ")" + good_hash + "\"}]"),
           with_files(R"([{"name": "", "bytes": 1, "xxh3": ")" + good_hash + "\"}]"),
           with_files(R"([{"name": "manifest.json", "bytes": 1, "xxh3": ")" + good_hash + "\"}]"),
           with_files(R"([{"name": "a", "bytes": 1, "xxh3": ")" + good_hash + R"("}, {"name": "a", "bytes": 2, "xxh3": ")" +
                      good_hash + "\"}]"),
       })
    EXPECT_THROW(parse_checkpoint_manifest(bad), UserError) << bad;
}

TEST(CheckpointManifest, ListsEveryFileWithItsSizeAndChecksum) {
  ScratchDir tmp;
  const fs::path dir = make_checkpoint(tmp.path() / "step_000003");
  const CheckpointManifest m = parse_checkpoint_manifest(read_file(dir / kManifestFile, "manifest"));
  ASSERT_EQ(m.files.size(), 3u);
  EXPECT_EQ(m.files[0].name, "config.json");
  EXPECT_EQ(m.files[1].name, "model.safetensors");
  EXPECT_EQ(m.files[1].bytes, 100000u);
  EXPECT_EQ(m.files[1].xxh3, hash_of(dir / "model.safetensors"));
  const Verification v = verify_checkpoint_dir(dir);
  EXPECT_EQ(v.status, Status::verified) << v.problem;
  EXPECT_EQ(v.files, 3);
}

TEST(CheckpointManifest, VerificationNamesTheDamagedFile) {
  ScratchDir tmp;
  auto damaged = [&](const std::string& name, auto&& damage) {
    const fs::path dir = make_checkpoint(tmp.path() / name);
    damage(dir);
    return verify_checkpoint_dir(dir);
  };
  Verification v = damaged("flipped", [](const fs::path& d) {
    std::fstream f(d / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(54321);
    f.put('x');
  });
  EXPECT_EQ(v.status, Status::failed);
  EXPECT_NE(v.problem.find("model.safetensors fails its checksum"), std::string::npos) << v.problem;
  v = damaged("truncated", [](const fs::path& d) { fs::resize_file(d / "model.safetensors", 99999); });
  EXPECT_EQ(v.status, Status::failed);
  EXPECT_EQ(v.problem, "model.safetensors is truncated (99999 bytes of the 100000 bytes the manifest lists)");
  v = damaged("grown", [](const fs::path& d) { fs::resize_file(d / "trainer_state.json", 1000); });
  EXPECT_EQ(v.status, Status::failed);
  EXPECT_NE(v.problem.find("trainer_state.json has 1000 bytes, the manifest lists"), std::string::npos) << v.problem;
  v = damaged("missing", [](const fs::path& d) { fs::remove(d / "config.json"); });
  EXPECT_EQ(v.status, Status::failed);
  EXPECT_EQ(v.problem, "config.json is missing");
  v = damaged("bad_manifest", [](const fs::path& d) { write(d / kManifestFile, "{\"format\": 1"); });
  EXPECT_EQ(v.status, Status::failed);
  EXPECT_EQ(v.problem, "manifest.json: the manifest is not valid JSON");
  v = damaged("no_manifest", [](const fs::path& d) { fs::remove(d / kManifestFile); });
  EXPECT_EQ(v.status, Status::unverified);
  // A file the manifest does not list is not meshlm's: it is ignored.
  v = damaged("extra", [](const fs::path& d) { write(d / "notes.txt", "mine"); });
  EXPECT_EQ(v.status, Status::verified) << v.problem;
  EXPECT_THROW(require_verified(tmp.path() / "flipped", "--checkpoint flipped"), UserError);
  EXPECT_NO_THROW(require_verified(tmp.path() / "no_manifest", "--checkpoint no_manifest"));
}

TEST(CheckpointManifest, AFlatDirectoryOnly) {
  ScratchDir tmp;
  fs::create_directories(tmp.path() / "ckpt" / "sub");
  EXPECT_THROW(write_checkpoint_manifest(tmp.path() / "ckpt"), UserError);
}

// The states a re-save of step 6 can be stopped in (see move_into_place in checkpoint.cpp).
TEST(CheckpointReplacement, ListingAndCleanUpSeeThroughEachInterruptedRename) {
  ScratchDir tmp;
  const fs::path run = tmp.path() / "run", root = run / "checkpoints";
  make_checkpoint(root / "step_000004");
  write_text_atomic(root / "latest", "step_000006\n");
  auto names = [&] {
    std::vector<std::string> out;
    for (const CheckpointEntry& c : list_checkpoints(run)) out.push_back(c.dir.filename().string());
    return out;
  };
  // (a) the old copy is aside, the new one not yet renamed in: the aside copy stands for the step.
  make_checkpoint(root / ".tmp.step_000006.aside");
  make_checkpoint(root / ".tmp.step_000006.777");
  EXPECT_EQ(names(), (std::vector<std::string>{".tmp.step_000006.aside", "step_000004"}));
  EXPECT_EQ(latest_checkpoint(run)->filename(), ".tmp.step_000006.aside");
  fs::path resumed = root / ".tmp.step_000006.aside";
  auto notes = clean_checkpoint_leftovers(run, &resumed);
  EXPECT_EQ(notes.size(), 2u);
  EXPECT_EQ(resumed, root / "step_000006");
  EXPECT_EQ(names(), (std::vector<std::string>{"step_000006", "step_000004"}));
  EXPECT_EQ(verify_checkpoint_dir(root / "step_000006").status, Status::verified);
  EXPECT_FALSE(fs::exists(root / ".tmp.step_000006.777"));
  // (b) the new copy is in, the aside copy not yet deleted: the step itself counts, the copy goes.
  make_checkpoint(root / ".tmp.step_000006.aside");
  EXPECT_EQ(names(), (std::vector<std::string>{"step_000006", "step_000004"}));
  EXPECT_EQ(latest_checkpoint(run)->filename(), "step_000006");
  EXPECT_EQ(clean_checkpoint_leftovers(run).size(), 1u);
  EXPECT_FALSE(fs::exists(root / ".tmp.step_000006.aside"));
  // (c) the step and its aside copy both gone: `latest` is dangling, the listing offers step 4.
  fs::remove_all(root / "step_000006");
  EXPECT_THROW(latest_checkpoint(run), UserError);
  EXPECT_EQ(names(), (std::vector<std::string>{"step_000004"}));
  // Other entries are never touched.
  fs::create_directories(root / "mine");
  write(root / ".tmp.notes", "x");
  EXPECT_TRUE(clean_checkpoint_leftovers(run).empty());
  EXPECT_TRUE(fs::exists(root / "mine") && fs::exists(root / ".tmp.notes"));
}

}  // namespace
}  // namespace meshlm
