#include "meshlm/data/token_file_format.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "meshlm/core/error.hpp"
#include "meshlm/data/tokenizer.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

constexpr size_t kSniffBytes = size_t(64) << 10;
constexpr char kMeshlmShardMagic[8] = {'M', 'E', 'S', 'H', 'T', 'O', 'K', '\0'};

// Up to `n` bytes from the start of the file, and whether the file holds more.
std::string read_prefix(const fs::path& path, size_t n, bool& more) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(cat("cannot open ", path.string(), ": ", std::strerror(errno)));
  std::string buf(n + 1, '\0');
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t r = ::read(fd, buf.data() + got, buf.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = errno;
      ::close(fd);
      throw UserError(cat("cannot read ", path.string(), ": ", std::strerror(err)));
    }
    if (r == 0) break;
    got += size_t(r);
  }
  ::close(fd);
  more = got > n;
  buf.resize(std::min(got, n));
  return buf;
}

int32_t int32_at(const std::string& bytes, size_t index) {
  int32_t v;
  std::memcpy(&v, bytes.data() + 4 * index, 4);
  return v;
}

// The directory to name in a hint: the file's own, "." for a bare file name.
std::string parent_of(const fs::path& path) {
  const fs::path p = path.parent_path();
  return p.empty() ? "." : p.string();
}

}  // namespace

std::optional<LlmcHeader> read_llmc_header(const fs::path& path) {
  bool more = false;
  const std::string head = read_prefix(path, size_t(kLlmcHeaderBytes), more);
  if (head.size() < 4 || int32_at(head, 0) != kLlmcTokensMagic) return std::nullopt;
  if (head.size() < size_t(kLlmcHeaderBytes))
    throw UserError(cat(path.string(), " starts with llm.c's token-file magic ", kLlmcTokensMagic, " but holds only ",
                        head.size(), " bytes, less than its ", kLlmcHeaderBytes, "-byte header"));
  LlmcHeader h;
  h.version = int32_at(head, 1);
  h.tokens = int64_t(uint32_t(int32_at(head, 2)));
  h.token_bytes = h.version == 1 ? 2 : h.version == 2 ? 4 : 0;
  return h;
}

std::string describe_llmc_header(const LlmcHeader& h) {
  std::string what = h.version == 1   ? cat(h.tokens, " uint16 GPT-2 tokens")
                     : h.version == 2 ? cat(h.tokens, " uint32 tokens of llama-3's tokenizer")
                                      : std::string("an unknown version");
  return cat("an llm.c token file (magic ", kLlmcTokensMagic, ", version ", h.version, ": ", what, ")");
}

FileSniff sniff_file(const fs::path& path) {
  bool more = false;
  std::string head = read_prefix(path, kSniffBytes, more);
  FileSniff s;
  if (head.size() >= 4 && int32_at(head, 0) == kLlmcTokensMagic) {
    s.content = FileContent::llmc_tokens;
    s.llmc = *read_llmc_header(path);
    return s;
  }
  if (head.size() >= 8 && std::memcmp(head.data(), kMeshlmShardMagic, 8) == 0) {
    s.content = FileContent::meshlm_shard;
    return s;
  }
  if (size_t nul = head.find('\0'); nul != std::string::npos) {
    s.content = FileContent::binary;
    s.detail = cat("a NUL byte at offset ", nul);
    return s;
  }
  // The block may end inside a character: drop a last, incomplete one before checking.
  std::string_view text(head);
  if (more) {
    size_t back = 0;
    while (back < 3 && back < text.size() && (static_cast<unsigned char>(text[text.size() - 1 - back]) & 0xC0) == 0x80)
      ++back;
    if (back < text.size() && (static_cast<unsigned char>(text[text.size() - 1 - back]) & 0xC0) == 0xC0)
      text.remove_suffix(back + 1);
  }
  if (auto bad = utf8_error_offset(text)) {
    s.content = FileContent::binary;
    s.detail = cat("a byte that is not UTF-8 at offset ", *bad);
  }
  return s;
}

namespace {

void refuse_known_token_file(const fs::path& path, const FileSniff& s) {
  if (s.content == FileContent::llmc_tokens)
    throw UserError(cat(path.string(), " is ", describe_llmc_header(s.llmc),
                        ", not text; import it with: meshlm prepare --from-llmc ", parent_of(path), " --out DATA_DIR"));
  if (s.content == FileContent::meshlm_shard)
    throw UserError(cat(path.string(), " is a meshlm token shard, not text; its data directory ", parent_of(path),
                        " is already prepared (pass it to train --data)"));
}

}  // namespace

void refuse_token_file(const fs::path& path) { refuse_known_token_file(path, sniff_file(path)); }

void refuse_non_text_data_file(const fs::path& path) {
  const FileSniff s = sniff_file(path);
  refuse_known_token_file(path, s);
  if (s.content == FileContent::binary)
    throw UserError(cat(path.string(), " is not text (", s.detail,
                        ") and --data FILE trains on a text file's bytes; for nanoGPT's train.bin/val.bin "
                        "(headerless uint16 GPT-2 tokens) run: meshlm prepare --from-nanogpt ",
                        parent_of(path), " --out DATA_DIR; to train on the raw bytes anyway: meshlm prepare --input ",
                        path.string(), " --tokenizer byte --out DATA_DIR"));
}

}  // namespace meshlm
