#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/checkpoint_manifest.hpp"
#include "meshlm/train/checkpoint_writer.hpp"
#include "meshlm/train/trainer.hpp"
#include "training_data.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_data::kjv_text;
using testing_data::temp_dir;
using testing_data::tiny_config;

RunConfig small_config() {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 1;
  cfg.train.micro_batch = 2;
  return cfg;
}

std::vector<std::string> file_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A snapshot holds the state of its step: written in the background while the trainer trains
// on, its files equal byte for byte those of a synchronous save at that step.
TEST(CheckpointWriter, BackgroundWriteOfASnapshotEqualsASynchronousSaveByteForByte) {
  const RunConfig cfg = small_config();
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  const fs::path async_run = temp_dir() / "writer_async", sync_run = temp_dir() / "writer_sync";
  fs::remove_all(async_run);
  fs::remove_all(sync_run);

  Trainer reference(cfg, *data);
  for (int i = 0; i < 3; ++i) reference.step();
  const fs::path sync_dir = save_checkpoint(sync_run, reference, data->tokenizer(), data->description(), false);

  Trainer t(cfg, *data);
  for (int i = 0; i < 3; ++i) t.step();
  CheckpointWriter writer(/*background=*/true);
  writer.start(snapshot_checkpoint(async_run, t, data->tokenizer(), data->description(), false), 0.0);
  for (int i = 0; i < 3; ++i) t.step();  // trains on while the snapshot is written
  const std::optional<CheckpointOutcome> out = writer.wait();
  ASSERT_TRUE(out.has_value());
  ASSERT_EQ(out->error, "");
  EXPECT_EQ(out->name, "step_000003");
  EXPECT_EQ(out->dir, async_run / "checkpoints" / "step_000003");
  EXPECT_GT(out->bytes, 0);
  EXPECT_FALSE(writer.pending());
  EXPECT_FALSE(writer.wait().has_value());

  ASSERT_EQ(file_names(out->dir), file_names(sync_dir));
  int64_t bytes = 0;
  for (const std::string& name : file_names(sync_dir)) {
    const std::string a = read_file(out->dir / name, "async"), b = read_file(sync_dir / name, "sync");
    EXPECT_TRUE(a == b) << name << " differs";
    bytes += int64_t(b.size());
  }
  EXPECT_EQ(out->bytes, bytes);
  EXPECT_EQ(verify_checkpoint_dir(out->dir).status, Verification::Status::verified);
  EXPECT_EQ(read_file(async_run / "checkpoints" / "latest", "latest"), "step_000003\n");
}

// poll() never blocks: it hands the outcome once the write has finished, and only once.
TEST(CheckpointWriter, PollHandsTheOutcomeOnceTheWriteIsDone) {
  const RunConfig cfg = small_config();
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  const fs::path run = temp_dir() / "writer_poll";
  fs::remove_all(run);
  Trainer t(cfg, *data);
  t.step();
  CheckpointWriter writer(/*background=*/true);
  writer.start(snapshot_checkpoint(run, t, data->tokenizer(), data->description(), true), 0.25);
  std::optional<CheckpointOutcome> out;
  for (int i = 0; i < 2000 && !out; ++i) {
    out = writer.poll();
    if (!out) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->error, "");
  EXPECT_TRUE(out->best);
  EXPECT_EQ(out->snapshot_seconds, 0.25);
  EXPECT_GE(out->write_seconds, 0.0);
  EXPECT_FALSE(writer.poll().has_value());
  EXPECT_EQ(read_file(run / "checkpoints" / "best", "best"), "step_000001\n");
}

// The memory prepared in the background is what the first snapshot reuses; a written snapshot
// is handed back for the next one, and preparing reports no outcome.
TEST(CheckpointWriter, PreparedAndWrittenSnapshotsLendTheirMemory) {
  CheckpointWriter writer(/*background=*/true);
  writer.prepare(1000, {"exp_avg", "exp_avg_sq"});
  EXPECT_FALSE(writer.wait().has_value());
  CheckpointSnapshot lent = writer.reclaim();
  EXPECT_EQ(lent.params.size(), 1000u);
  ASSERT_EQ(lent.optimizer_state.size(), 2u);
  EXPECT_EQ(lent.optimizer_state[1].first, "exp_avg_sq");
  EXPECT_EQ(lent.optimizer_state[1].second.size(), 1000u);
  EXPECT_TRUE(writer.reclaim().params.empty());

  const RunConfig cfg = small_config();
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  const fs::path run = temp_dir() / "writer_reuse";
  fs::remove_all(run);
  Trainer t(cfg, *data);
  t.step();
  ASSERT_TRUE(snapshot_is_a_copy(t));
  CheckpointSnapshot first = snapshot_checkpoint(run, t, data->tokenizer(), data->description(), false);
  const float* memory = first.params.data();
  writer.start(std::move(first), 0.0);
  ASSERT_TRUE(writer.wait().has_value());
  t.step();
  CheckpointSnapshot second =
      snapshot_checkpoint(run, t, data->tokenizer(), data->description(), false, "", writer.reclaim());
  EXPECT_EQ(second.params.data(), memory);
  EXPECT_EQ(second.name, "step_000002");
  EXPECT_TRUE(std::equal(second.params.begin(), second.params.end(), t.params().begin()));
}

// A write that fails is one line naming the checkpoint and the cause, never an exception on
// the writing thread; nothing of it stays on disk.
TEST(CheckpointWriter, AFailedWriteIsOneLineNamingTheCheckpointAndTheCause) {
  const RunConfig cfg = small_config();
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  const fs::path run = temp_dir() / "writer_error";
  fs::remove_all(run);
  fs::create_directories(run);
  write_text_atomic(run / "checkpoints", "a file where the checkpoints folder belongs\n");
  Trainer t(cfg, *data);
  t.step();
  CheckpointWriter writer(/*background=*/true);
  writer.start(snapshot_checkpoint(run, t, data->tokenizer(), data->description(), false), 0.0);
  const std::optional<CheckpointOutcome> out = writer.wait();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->error.rfind("cannot write checkpoint step_000001 in " + run.string() + ": ", 0), 0u) << out->error;
  EXPECT_EQ(out->error.find('\n'), std::string::npos);
  EXPECT_EQ(file_names(run), (std::vector<std::string>{"checkpoints"}));
  EXPECT_EQ(read_file(run / "checkpoints", "file"), "a file where the checkpoints folder belongs\n");
}

}  // namespace
}  // namespace meshlm
