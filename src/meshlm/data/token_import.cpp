#include "meshlm/data/token_import.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/staged_directory.hpp"
#include "meshlm/data/token_file_format.hpp"
#include "meshlm/data/token_shard.hpp"
#include "meshlm/data/tokenizer.hpp"

namespace meshlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// One input file's tokens: the uint16 ids at [offset, offset + 2 * tokens).
struct TokenRun {
  fs::path path;
  int64_t offset = 0;
  int64_t tokens = 0;
  int64_t bytes = 0;  // the whole file
};

struct SplitRuns {
  std::vector<TokenRun> train, val;
};

int64_t size_of(const fs::path& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  if (ec) throw UserError(cat("cannot read ", path.string(), ": ", ec.message()));
  return int64_t(n);
}

// A file that must hold nanoGPT's bare uint16 ids, not another known format.
TokenRun nanogpt_run(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw UserError(cat(path.string(), " not found (a nanoGPT dataset directory holds train.bin and val.bin)"));
  const FileSniff s = sniff_file(path);
  if (s.content == FileContent::llmc_tokens)
    throw UserError(cat(path.string(), " is ", describe_llmc_header(s.llmc), "; import it with --from-llmc"));
  if (s.content == FileContent::meshlm_shard)
    throw UserError(cat(path.string(), " is a meshlm token shard: its directory is already a meshlm data directory"));
  const int64_t bytes = size_of(path);
  if (bytes == 0) throw UserError(cat(path.string(), " is empty"));
  if (bytes % 2 != 0)
    throw UserError(cat(path.string(), " has an odd number of bytes (", bytes,
                        "), so it is not nanoGPT's array of uint16 token ids"));
  return {path, 0, bytes / 2, bytes};
}

SplitRuns nanogpt_runs(const std::vector<fs::path>& inputs) {
  if (inputs.size() != 1) throw UserError("--from-nanogpt takes one directory (the one holding train.bin and val.bin)");
  const fs::path& dir = inputs.front();
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw UserError(cat("--from-nanogpt directory not found: ", dir.string()));
  if (!fs::is_directory(dir, ec))
    throw UserError(
        cat("--from-nanogpt ", dir.string(), " is not a directory; give the directory holding train.bin and val.bin"));
  if (fs::exists(dir / "meta.pkl", ec))
    throw UserError(cat(dir.string(),
                        " holds meta.pkl: a nanoGPT character-level dataset, whose vocabulary is a Python pickle "
                        "that meshlm does not read; prepare its text instead (meshlm prepare --input ",
                        (dir / "input.txt").string(), " --out DATA_DIR)"));
  SplitRuns r;
  r.train.push_back(nanogpt_run(dir / "train.bin"));
  r.val.push_back(nanogpt_run(dir / "val.bin"));
  return r;
}

// "train" or "val" when a part of the file's stem (split at '_', '-', '.') is one of them.
std::string llmc_split_of(const fs::path& path) {
  const std::string stem = path.stem().string();
  bool train = false, val = false;
  size_t start = 0;
  while (start <= stem.size()) {
    size_t end = stem.find_first_of("_-.", start);
    if (end == std::string::npos) end = stem.size();
    const std::string part = stem.substr(start, end - start);
    train = train || part == "train";
    val = val || part == "val";
    start = end + 1;
  }
  if (train == val) return "";
  return train ? "train" : "val";
}

TokenRun llmc_run(const fs::path& path) {
  const std::optional<LlmcHeader> h = read_llmc_header(path);
  if (!h)
    throw UserError(
        cat(path.string(), " is not an llm.c token file (it does not start with the magic ", kLlmcTokensMagic, ")"));
  if (h->version != 1)
    throw UserError(
        cat(path.string(), " is ", describe_llmc_header(*h), "; meshlm imports version 1 (uint16 GPT-2 tokens) only"));
  const int64_t bytes = size_of(path);
  const int64_t expected = kLlmcHeaderBytes + 2 * h->tokens;
  if (bytes != expected)
    throw UserError(cat(path.string(), " is ", bytes < expected ? "truncated" : "corrupt", ": its header says ",
                        h->tokens, " tokens (", expected, " bytes with the header) but it has ", bytes, " bytes"));
  if (h->tokens == 0) throw UserError(cat(path.string(), " holds no tokens"));
  return {path, kLlmcHeaderBytes, h->tokens, bytes};
}

SplitRuns llmc_runs(const std::vector<fs::path>& inputs) {
  if (inputs.empty()) throw UserError("--from-llmc needs a directory or shard files");
  std::vector<fs::path> files;
  for (const fs::path& in : inputs) {
    std::error_code ec;
    if (!fs::exists(in, ec)) throw UserError(cat("--from-llmc input not found: ", in.string()));
    if (fs::is_directory(in, ec)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(in, ec))
        if (e.is_regular_file() && e.path().extension() == ".bin" && !llmc_split_of(e.path()).empty())
          found.push_back(e.path());
      if (ec) throw UserError(cat("cannot list ", in.string(), ": ", ec.message()));
      if (found.empty())
        throw UserError(
            cat(in.string(), " holds no llm.c shard (a *.bin file named like *_train_*.bin or *_val_*.bin)"));
      files.insert(files.end(), found.begin(), found.end());
    } else {
      if (llmc_split_of(in).empty())
        throw UserError(cat("cannot tell whether ", in.string(),
                            " is training or validation data: llm.c names its shards *_train_*.bin and *_val_*.bin"));
      files.push_back(in);
    }
  }
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename() != b.filename() ? a.filename() < b.filename() : a < b;
  });
  files.erase(std::unique(files.begin(), files.end()), files.end());
  SplitRuns r;
  for (const fs::path& f : files) (llmc_split_of(f) == "train" ? r.train : r.val).push_back(llmc_run(f));
  if (r.train.empty() || r.val.empty())
    throw UserError(cat("--from-llmc found no ", r.train.empty() ? "training" : "validation", " shard (a file named *_",
                        r.train.empty() ? "train" : "val", "_*.bin) among ", files.size(),
                        files.size() == 1 ? " file" : " files", "; give both splits"));
  return r;
}

std::unique_ptr<Tokenizer> gpt2_tokenizer(const fs::path& gpt2_dir) {
  return load_gpt2_tokenizer_dir(gpt2_dir.empty() ? default_gpt2_tokenizer_dir() : gpt2_dir);
}

// Streams a run's uint16 ids into `out`, checking each against the vocabulary.
void copy_run(const TokenRun& run, TokenShardWriter& out) {
  int fd = ::open(run.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(cat("cannot open ", run.path.string(), ": ", std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  constexpr int64_t kChunkTokens = int64_t(1) << 19;
  std::vector<uint16_t> raw(static_cast<size_t>(kChunkTokens));
  std::vector<int32_t> ids;
  for (int64_t done = 0; done < run.tokens;) {
    const int64_t n = std::min(kChunkTokens, run.tokens - done);
    const size_t want = size_t(n) * 2;
    size_t got = 0;
    while (got < want) {
      ssize_t r = ::pread(fd, reinterpret_cast<char*>(raw.data()) + got, want - got,
                          off_t(run.offset + 2 * done + int64_t(got)));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        throw UserError(
            cat("cannot read ", run.path.string(), ": ", r < 0 ? std::strerror(errno) : "it is shorter than it was"));
      got += size_t(r);
    }
    ids.assign(raw.begin(), raw.begin() + n);  // little-endian files on a little-endian host
    for (int64_t i = 0; i < n; ++i)
      if (ids[size_t(i)] >= out.vocab_size())
        throw UserError(cat(run.path.string(), " has token id ", ids[size_t(i)], " at token ", done + i,
                            ", outside the gpt2 tokenizer's vocabulary of ", out.vocab_size(), " (is it GPT-2 data?)"));
    out.append(ids);
    done += n;
  }
}

}  // namespace

TokenImportResult import_token_files(const TokenImportOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.out.empty()) throw UserError("no output directory given (use --out DATA_DIR)");
  check_output_dir_free(normalize_output_dir(o.out));
  const bool nanogpt = o.format == TokenFileFormat::nanogpt;
  const SplitRuns runs = nanogpt ? nanogpt_runs(o.inputs) : llmc_runs(o.inputs);
  std::unique_ptr<Tokenizer> tok = gpt2_tokenizer(o.gpt2_dir);
  const int64_t vocab = tok->vocab_size();

  StagedDirectory staged(o.out);
  TokenImportResult r;
  {
    TokenShardWriter train(staged.path() / "train.bin", vocab);
    TokenShardWriter val(staged.path() / "val.bin", vocab);
    for (const TokenRun& run : runs.train) copy_run(run, train);
    for (const TokenRun& run : runs.val) copy_run(run, val);
    r.train_tokens = train.size();
    r.val_tokens = val.size();
    train.finish();
    val.finish();
  }
  tok->save(staged.path());
  json sources = json::array();
  auto add_sources = [&](const std::vector<TokenRun>& list, const char* split, std::vector<std::string>& names) {
    for (const TokenRun& run : list) {
      sources.push_back({{"path", run.path.string()}, {"bytes", run.bytes}, {"split", split}});
      names.push_back(run.path.string());
    }
  };
  add_sources(runs.train, "train", r.train_files);
  add_sources(runs.val, "val", r.val_files);
  r.format = nanogpt ? "nanogpt" : "llmc";
  json meta = {{"format", "meshlm-tokens"},
               {"version", 1},
               {"tokenizer", std::string(tok->kind())},
               {"tokenizer_fingerprint", tok->fingerprint()},
               {"vocab_size", vocab},
               {"token_bytes", token_bytes_for_vocab(vocab)},
               {"train_tokens", r.train_tokens},
               {"val_tokens", r.val_tokens},
               {"val_fraction", double(r.val_tokens) / double(r.train_tokens + r.val_tokens)},
               {"seed", 0},
               {"split", "imported"},
               {"imported_from", r.format},
               {"sources", sources}};
  write_text_atomic(staged.path() / "meta.json", meta.dump(2) + "\n");
  staged.commit();

  r.vocab_size = vocab;
  r.tokenizer_fingerprint = tok->fingerprint();
  r.token_bytes = token_bytes_for_vocab(vocab);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace meshlm
