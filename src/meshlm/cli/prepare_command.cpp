#include <cstdio>
#include <memory>

#include "meshlm/cli/commands.hpp"
#include "meshlm/cli/model_loading.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/input_files.hpp"
#include "meshlm/data/prepare.hpp"
#include "meshlm/data/token_import.hpp"

namespace meshlm {

namespace {

std::string quoted_globs(const std::vector<std::string>& globs) {
  std::string s;
  for (const std::string& g : globs) s += cat(s.empty() ? "" : " ", "--glob '", g, "'");
  return s;
}

int run_prepare(PrepareOptions opts) {
  if (!opts.tokenizer_from.empty()) opts.tokenizer_from = tokenizer_dir_of(opts.tokenizer_from, "--tokenizer-from");
  PrepareResult r = prepare_dataset(opts);
  const double mb = double(r.input_bytes) / 1e6;
  std::printf("meshlm prepare: %s tokenizer, vocabulary %lld (%d-byte tokens), fingerprint %s\n", r.tokenizer.c_str(),
              (long long)r.vocab_size, r.token_bytes, r.tokenizer_fingerprint.c_str());
  if (!opts.tokenizer_from.empty()) std::printf("  tokenizer from %s\n", opts.tokenizer_from.c_str());
  std::printf("  read %lld file%s, %.1f MB: %s\n", (long long)r.files, r.files == 1 ? "" : "s", mb,
              abbreviated_list(r.file_names).c_str());
  if (!r.skipped_names.empty())
    std::printf("  skipped %zu file%s not matching %s%s: %s\n", r.skipped_names.size(),
                r.skipped_names.size() == 1 ? "" : "s", quoted_globs(r.filter).c_str(),
                r.default_filter ? " (the default for directories)" : "", abbreviated_list(r.skipped_names).c_str());
  std::printf("  train: %lld tokens (%lld lines)\n", (long long)r.train_tokens, (long long)r.train_lines);
  std::printf("  val:   %lld tokens (%lld lines)\n", (long long)r.val_tokens, (long long)r.val_lines);
  std::printf("  %.2f s (tokenizer %.2f s), %.1f MB/s, peak memory %.0f MB\n", r.seconds, r.tokenizer_seconds,
              r.seconds > 0 ? mb / r.seconds : 0.0, double(r.peak_rss_bytes) / 1e6);
  std::printf("  wrote %s\n", opts.out.c_str());
  std::fflush(stdout);
  for (const std::string& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return 0;
}

int run_import(const TokenImportOptions& opts) {
  TokenImportResult r = import_token_files(opts);
  std::printf("meshlm prepare: imported %s tokens, gpt2 tokenizer, vocabulary %lld (%d-byte tokens), fingerprint %s\n",
              r.format == "llmc" ? "llm.c" : "nanoGPT", (long long)r.vocab_size, r.token_bytes,
              r.tokenizer_fingerprint.c_str());
  std::printf("  train: %lld tokens from %s\n", (long long)r.train_tokens, abbreviated_list(r.train_files).c_str());
  std::printf("  val:   %lld tokens from %s\n", (long long)r.val_tokens, abbreviated_list(r.val_files).c_str());
  std::printf("  %.2f s\n", r.seconds);
  std::printf("  wrote %s\n", opts.out.c_str());
  return 0;
}

}  // namespace

Command register_prepare(CLI::App& app) {
  auto opts = std::make_shared<PrepareOptions>();
  auto import = std::make_shared<TokenImportOptions>();
  auto nanogpt_dir = std::make_shared<std::filesystem::path>();
  CLI::App* cmd = app.add_subcommand("prepare", "tokenize text files into a data directory (train.bin, val.bin)");
  CLI::Option* input =
      cmd->add_option("--input", opts->inputs, "text files or directories (searched recursively, hidden files skipped)")
          ->expected(1, -1);
  cmd->add_option("--out", opts->out, "data directory to create (must not exist or be empty)")->required();
  CLI::Option* tokenizer =
      cmd->add_option("--tokenizer", opts->tokenizer, "byte (any bytes), bpe (trained on the input) or gpt2")
          ->check(CLI::IsMember({"byte", "bpe", "gpt2"}))
          ->capture_default_str();
  CLI::Option* glob =
      cmd->add_option("--glob", opts->globs,
                      "files of an --input directory to read (repeatable; * ? and ** for any depth); default '*.txt'")
          ->expected(1)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  CLI::Option* vocab = cmd->add_option("--vocab-size", opts->vocab_size, "vocabulary size for bpe (default 8192)");
  CLI::Option* val =
      cmd->add_option("--val-fraction", opts->val_fraction, "fraction of lines held out for validation, in (0, 1)")
          ->capture_default_str();
  CLI::Option* seed =
      cmd->add_option("--seed", opts->seed, "seed of the train/val split and of bpe training")->capture_default_str();
  CLI::Option* gpt2_dir = cmd->add_option(
      "--gpt2-dir", opts->gpt2_dir,
      "directory with GPT-2's encoder.json + vocab.bpe, vocab.json + merges.txt or tokenizer.json "
      "(default: scripts/fetch-gpt2-tokenizer.sh's)");
  CLI::Option* tokenizer_from =
      cmd->add_option("--tokenizer-from", opts->tokenizer_from,
                      "encode with the tokenizer of a data directory, run directory, checkpoint or model directory "
                      "(trains none)");
  CLI::Option* nanogpt =
      cmd->add_option("--from-nanogpt", *nanogpt_dir, "import nanoGPT's DIR/train.bin + val.bin (uint16 GPT-2 ids)");
  CLI::Option* llmc = cmd->add_option("--from-llmc", import->inputs,
                                      "import llm.c's *_train_*.bin + *_val_*.bin shards (files or directories)")
                          ->expected(1, -1);
  cmd->footer(
      "Lines are the unit of the split: each line goes to val with probability --val-fraction, decided by --seed.\n"
      "In an --input directory only the files matching --glob are read (default '*.txt': not JSON, code or markup);\n"
      "files named on the command line are always read.");
  return {cmd, [opts, import, nanogpt_dir, nanogpt, llmc, tokenizer, tokenizer_from, gpt2_dir, input, glob, vocab, val,
                seed] {
            // Checked here rather than by CLI11's excludes(), which would clutter --help.
            if (nanogpt->count() && llmc->count()) throw UserError("give either --from-nanogpt or --from-llmc, not both");
            for (CLI::Option* from : {nanogpt, llmc})
              for (CLI::Option* other : {input, glob, vocab, val, seed, tokenizer_from})
                if (from->count() && other->count())
                  throw UserError(cat(other->get_name(), " does not apply to ", from->get_name(),
                                      " (the tokens and their split come from the imported files)"));
            if (nanogpt->count() == 0 && llmc->count() == 0) {
              if (opts->inputs.empty())
                throw UserError("no input given (use --input FILE_OR_DIRECTORY, --from-nanogpt DIR or --from-llmc DIR)");
              // The reused tokenizer is all there is: a kind or GPT-2 files besides it would be ignored.
              if (tokenizer_from->count())
                for (CLI::Option* other : {tokenizer, gpt2_dir, vocab})
                  if (other->count())
                    throw UserError(cat("--tokenizer-from and ", other->get_name(), " cannot be combined (the tokenizer comes from ",
                                        opts->tokenizer_from.string(), ")"));
              return run_prepare(*opts);
            }
            // Imported tokens are GPT-2 ids: their tokenizer is gpt2, whatever else was asked.
            if (tokenizer->count() > 0 && opts->tokenizer != "gpt2")
              throw UserError(cat("--tokenizer ", opts->tokenizer, " does not apply to ",
                                  nanogpt->count() ? "--from-nanogpt" : "--from-llmc",
                                  ": the imported tokens are GPT-2 ids (gpt2 tokenizer)"));
            import->format = nanogpt->count() ? TokenFileFormat::nanogpt : TokenFileFormat::llmc;
            if (nanogpt->count()) import->inputs = {*nanogpt_dir};
            import->out = opts->out;
            import->gpt2_dir = opts->gpt2_dir;
            return run_import(*import);
          }};
}

}  // namespace meshlm
