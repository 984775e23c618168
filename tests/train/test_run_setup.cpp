// What a run starts from: the model's vocabulary from the data, the decay horizon (kept on
// resume), settings without effect, and the files of an earlier run in --out.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "meshlm/core/error.hpp"
#include "meshlm/train/ineffective_settings.hpp"
#include "meshlm/train/launch_layout.hpp"
#include "meshlm/train/run_directory.hpp"
#include "meshlm/train/run_setup.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_support::ScratchDir;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

TEST(VocabFromData, UnsetTakesTheDatasVocabulary) {
  RunConfig cfg;
  EXPECT_EQ(cfg.model.vocab_size, kVocabFromData);
  EXPECT_NO_THROW(cfg.validate());  // the data fills it in later
  settle_vocab_size(cfg.model, 4096);
  EXPECT_EQ(cfg.model.vocab_size, 4096);

  apply_override(cfg, "model.vocab_size", "8192");  // larger: kept (the header says so)
  settle_vocab_size(cfg.model, 4096);
  EXPECT_EQ(cfg.model.vocab_size, 8192);

  apply_override(cfg, "model.vocab_size", "1000");
  EXPECT_EQ(error_of([&] { settle_vocab_size(cfg.model, 4096); }),
            "model.vocab_size (1000) is smaller than the data's tokenizer vocabulary (4096): leave model.vocab_size "
            "unset (or 0) to take the data's");
}

TEST(VocabFromData, ReadRunSetupGivesATextFileTheByteVocabulary) {
  const ScratchDir dir;
  write(dir.path() / "text.txt", std::string(4096, 'a'));
  RunRequest request;
  request.data = (dir.path() / "text.txt").string();
  request.overrides = {{"model.n_layer", "1"}, {"model.n_embd", "16"}, {"model.n_head", "2"}};
  const RunSetup setup = read_run_setup(request);
  EXPECT_EQ(setup.cfg.model.vocab_size, 256);
  EXPECT_EQ(setup.data_fingerprint.rfind("text:4096:", 0), 0u) << setup.data_fingerprint;

  request.overrides.emplace_back("model.vocab_size", "100");
  EXPECT_NE(error_of([&] { read_run_setup(request); }).find("(100) is smaller than the data's tokenizer vocabulary (256)"),
            std::string::npos);
}

TEST(VocabFromData, ATrainerWithoutItIsAnError) {
  RunConfig cfg;
  struct NoData final : TokenSource {
    int64_t size(Split) const override { return 1000; }
    int64_t vocab_size() const override { return 16; }
    void read(Split, int64_t, int64_t, int32_t*) const override {}
    const Tokenizer& tokenizer() const override { throw std::logic_error("unused"); }
    std::string description() const override { return "none"; }
  } data;
  EXPECT_NE(error_of([&] { Trainer t(cfg, data); }).find("model.vocab_size is not set"), std::string::npos);
}

TEST(DecayHorizon, DefaultsToTrainStepsAndIsTheSchedulesEnd) {
  RunConfig cfg;
  cfg.train.steps = 100;
  cfg.train.lr = 1.0;
  cfg.train.min_lr_ratio = 0.1;
  EXPECT_EQ(cfg.schedule().total_steps, 100);
  apply_override(cfg, "train.decay_steps", "40");
  EXPECT_EQ(cfg.schedule().total_steps, 40);
  EXPECT_GT(lr_at(cfg.schedule(), 1.0f, 39), 0.1f);
  for (int64_t step : {40, 41, 99}) EXPECT_FLOAT_EQ(lr_at(cfg.schedule(), 1.0f, step), 0.1f) << step;
  apply_override(cfg, "train.decay_steps", "-1");
  EXPECT_EQ(error_of([&] { cfg.validate(); }), "train.decay_steps must not be negative, got -1");
}

TEST(DecayHorizon, AResumedRunKeepsItsOwnUnlessToldOtherwise) {
  TrainConfig saved;
  saved.steps = 200;  // decay_steps 0: the horizon was 200
  TrainConfig now;
  now.steps = 500;
  now.decay_steps = kDecayStepsUnset;
  EXPECT_EQ(settle_decay_horizon(now, saved), std::nullopt);
  EXPECT_EQ(now.decay_horizon(), 200);  // steps 200..499 at the floor, not a stretched decay

  TrainConfig same = now;
  same.decay_steps = 200;
  EXPECT_EQ(settle_decay_horizon(same, saved), std::nullopt);

  TrainConfig longer = now;
  longer.decay_steps = 0;  // explicitly: the new train.steps
  EXPECT_EQ(settle_decay_horizon(longer, saved), std::optional<int64_t>(200));
  EXPECT_EQ(longer.decay_horizon(), 500);
  EXPECT_EQ(longer.decay_steps, 500);  // a number, so that the next resume keeps it

  TrainConfig resumed_again;
  resumed_again.steps = 600;
  resumed_again.decay_steps = kDecayStepsUnset;
  settle_decay_horizon(resumed_again, longer);
  EXPECT_EQ(resumed_again.decay_horizon(), 500);
}

TEST(IneffectiveSettings, NamesOnlyChangedSettingsWithoutEffect) {
  RunConfig cfg;
  EXPECT_TRUE(ineffective_settings(cfg, {true, true, false}).empty());
  cfg.parallel.zero = 1;
  cfg.parallel.pp_schedule = PipeSchedule::gpipe;
  cfg.optim.momentum = 0.9f;
  cfg.train.val_fraction = 0.2;
  const auto w = ineffective_settings(cfg, {true, false, false});
  ASSERT_EQ(w.size(), 4u) << (w.empty() ? "" : w[0]);
  EXPECT_EQ(w[0], "parallel.zero = 1 has no effect with one data-parallel rank (dp = 1): nothing is sharded");
  cfg.parallel.dp = 2;
  cfg.parallel.pp = 2;
  cfg.optim.name = OptimizerKind::sgd;
  EXPECT_TRUE(ineffective_settings(cfg, {true, true, false}).empty());
}

TEST(IneffectiveSettings, ParameterServerKeysWithoutServersAndWhatServersIgnore) {
  RunConfig cfg;
  cfg.parallel.ps_servers = 2;
  auto w = ineffective_settings(cfg, {true, true, false});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "parallel.ps_servers has no effect without parameter servers (parallel.sync = \"ps\")");
  // One worker and its servers: bf16 pushes and the timeout take effect, buckets do not.
  cfg.parallel.sync = SyncKind::ps;
  cfg.parallel.grad_reduce_dtype = DType::bf16;
  cfg.parallel.collective_timeout = 10;
  EXPECT_TRUE(ineffective_settings(cfg, {true, true, false}).empty());
  cfg.parallel.bucket_mb = 1;
  w = ineffective_settings(cfg, {true, true, false});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("parallel.bucket_mb has no effect with parallel.sync"), std::string::npos) << w[0];
}

TEST(IneffectiveSettings, CompressionKeysWithoutTheirMethod) {
  RunConfig cfg;
  cfg.parallel.dp = 2;
  cfg.parallel.compress_ratio = 0.1;
  cfg.parallel.compress_rank = 2;
  auto w = ineffective_settings(cfg, {true, true, false});
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "parallel.compress_ratio has no effect unless parallel.compress = \"topk\"");
  EXPECT_EQ(w[1], "parallel.compress_rank has no effect unless parallel.compress = \"powersgd\"");
  cfg.parallel.compress = Compression::topk;
  cfg.parallel.compress_rank = 4;
  EXPECT_TRUE(ineffective_settings(cfg, {true, true, false}).empty());
  cfg.parallel.dp = 1;
  w = ineffective_settings(cfg, {true, true, false});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "parallel.compress has no effect with one data-parallel rank (dp = 1): no gradients are reduced");
  // PowerSGD reduces the whole buffer at once: no buckets.
  cfg.parallel.dp = 2;
  cfg.parallel.compress = Compression::powersgd;
  cfg.parallel.compress_ratio = 0.01;
  cfg.parallel.bucket_mb = 1;
  w = ineffective_settings(cfg, {true, true, false});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("parallel.bucket_mb has no effect with parallel.compress = \"powersgd\""), std::string::npos);
}

TEST(LaunchLayout, ParameterServersComeOffTheProcesses) {
  ParallelConfig p = unset_layout();
  p.sync = SyncKind::ps;
  p.ps_servers = 2;
  fit_layout_to_processes(p, 5);
  EXPECT_EQ(p.dp, 3);
  EXPECT_EQ(p.processes(), 5);
  ParallelConfig none = unset_layout();
  none.sync = SyncKind::ps;
  none.ps_servers = 3;
  EXPECT_THROW(fit_layout_to_processes(none, 3), UserError);
  ParallelConfig given = unset_layout();
  given.sync = SyncKind::ps;
  given.dp = 2;
  EXPECT_THROW(fit_layout_to_processes(given, 4), UserError);  // 2 workers + 1 server != 4
  fit_layout_to_processes(given, 3);
  EXPECT_EQ(given.dp, 2);
}

TEST(RunDirectory, OverwriteRemovesOnlyMeshlmsFiles) {
  const ScratchDir dir;
  const fs::path run = dir.path();
  EXPECT_TRUE(previous_run_entries(run).empty());
  write(run / "notes.txt", "mine");
  EXPECT_TRUE(previous_run_entries(run).empty());
  write(run / "metrics.jsonl", "{}\n");
  write(run / "checkpoints" / "step_000002" / "trainer_state.json", "{}");
  write(run / "checkpoints" / "latest", "step_000002\n");
  write(run / "checkpoints" / "keep_me.txt", "mine");
  write(run / "model.safetensors", "x");
  write(run / "config.json", "{}");
  write(run / "tokenizer.json", "{\"kind\": \"bpe\", \"model\": \"tokenizer.model\"}");
  write(run / "tokenizer.model", "x");
  EXPECT_EQ(join_list(previous_run_entries(run)), "metrics.jsonl, checkpoints/ (1 checkpoints) and model.safetensors");
  EXPECT_EQ(join_list(remove_previous_run(run)),
            "metrics.jsonl, checkpoints/ (1 checkpoints), model.safetensors, config.json, tokenizer.json and "
            "tokenizer.model");
  std::vector<std::string> left;
  for (const auto& e : fs::recursive_directory_iterator(run)) left.push_back(fs::relative(e.path(), run).string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"checkpoints", "checkpoints/keep_me.txt", "notes.txt"}));
}

TEST(RunDirectory, OverwriteRemovesAGpt2TokenizersHuggingFaceFiles) {
  const ScratchDir dir;
  const fs::path run = dir.path();
  write(run / "model.safetensors", "x");
  write(run / "config.json", "{}");
  write(run / "meshlm_tokenizer.json", "{\"kind\": \"gpt2\", \"encoder\": \"vocab.json\", \"vocab\": \"merges.txt\", "
                                       "\"vocab_size\": 3, \"fingerprint\": \"0123456789abcdef\"}");
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "README.md"})
    write(run / f, "x");
  EXPECT_EQ(join_list(remove_previous_run(run)),
            "model.safetensors, config.json, meshlm_tokenizer.json, vocab.json, merges.txt, tokenizer_config.json and "
            "special_tokens_map.json");
  EXPECT_TRUE(fs::exists(run / "README.md"));
}

TEST(RunDirectory, OverwriteLeavesAHuggingFaceTokenizerJsonAlone) {
  const ScratchDir dir;
  const fs::path run = dir.path();
  write(run / "model.safetensors", "x");
  write(run / "tokenizer.json", "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\"}}");
  EXPECT_EQ(join_list(remove_previous_run(run)), "model.safetensors");
  EXPECT_TRUE(fs::exists(run / "tokenizer.json"));
}

}  // namespace
}  // namespace meshlm
