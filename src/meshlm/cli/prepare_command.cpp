#include <cstdio>
#include <memory>

#include "meshlm/cli/commands.hpp"
#include "meshlm/cli/model_loading.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/prepare.hpp"

namespace meshlm {

namespace {

int run_prepare(PrepareOptions opts) {
  if (!opts.tokenizer_from.empty()) opts.tokenizer_from = tokenizer_dir_of(opts.tokenizer_from, "--tokenizer-from");
  PrepareResult r = prepare_dataset(opts);
  const double mb = double(r.input_bytes) / 1e6;
  std::printf("meshlm prepare: %s tokenizer, vocabulary %lld (%d-byte tokens), fingerprint %s\n", r.tokenizer.c_str(),
              (long long)r.vocab_size, r.token_bytes, r.tokenizer_fingerprint.c_str());
  if (!opts.tokenizer_from.empty()) std::printf("  tokenizer from %s\n", opts.tokenizer_from.c_str());
  std::printf("  read %lld file%s, %.1f MB\n", (long long)r.files, r.files == 1 ? "" : "s", mb);
  std::printf("  train: %lld tokens (%lld lines)\n", (long long)r.train_tokens, (long long)r.train_lines);
  std::printf("  val:   %lld tokens (%lld lines)\n", (long long)r.val_tokens, (long long)r.val_lines);
  std::printf("  %.2f s (tokenizer %.2f s), %.1f MB/s, peak memory %.0f MB\n", r.seconds, r.tokenizer_seconds,
              r.seconds > 0 ? mb / r.seconds : 0.0, double(r.peak_rss_bytes) / 1e6);
  std::printf("  wrote %s\n", opts.out.c_str());
  return 0;
}

}  // namespace

Command register_prepare(CLI::App& app) {
  auto opts = std::make_shared<PrepareOptions>();
  CLI::App* cmd = app.add_subcommand("prepare", "tokenize text files into a data directory (train.bin, val.bin)");
  cmd->add_option("--input", opts->inputs, "text files or directories (searched recursively, hidden files skipped)")
      ->required()
      ->expected(1, -1);
  cmd->add_option("--out", opts->out, "data directory to create (must not exist or be empty)")->required();
  cmd->add_option("--tokenizer", opts->tokenizer, "byte (any bytes), bpe (trained on the input) or gpt2")
      ->check(CLI::IsMember({"byte", "bpe", "gpt2"}))
      ->capture_default_str();
  cmd->add_option("--vocab-size", opts->vocab_size, "vocabulary size for bpe (default 8192)");
  cmd->add_option("--val-fraction", opts->val_fraction, "fraction of lines held out for validation, in (0, 1)")
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "seed of the train/val split and of bpe training")->capture_default_str();
  cmd->add_option(
      "--gpt2-dir", opts->gpt2_dir,
      "directory with GPT-2's encoder.json + vocab.bpe, vocab.json + merges.txt or tokenizer.json "
      "(default: scripts/fetch-gpt2-tokenizer.sh's)");
  cmd->add_option("--tokenizer-from", opts->tokenizer_from,
                  "encode with the tokenizer of a data directory, run directory, checkpoint or model directory "
                  "(trains none)");
  cmd->footer(
      "Lines are the unit of the split: each line goes to val with probability --val-fraction, decided by --seed.");
  return {cmd, [opts, cmd] {
            // The reused tokenizer is all there is: a kind or GPT-2 files besides it would be ignored.
            if (!opts->tokenizer_from.empty())
              for (const char* other : {"--tokenizer", "--gpt2-dir"})
                if (cmd->count(other) > 0)
                  throw UserError(cat("--tokenizer-from and ", other, " cannot be combined (the tokenizer comes from ",
                                      opts->tokenizer_from.string(), ")"));
            return run_prepare(*opts);
          }};
}

}  // namespace meshlm
