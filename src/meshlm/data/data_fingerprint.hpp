#pragma once
// A short identity of training data, stored in checkpoints so that `--resume` refuses other data.
// Cheap for a data directory of any size: its meta.json (sources, sizes, tokenizer, split), and
// each shard's size with its first and last 64 KiB. A plain text file: its whole content.
#include <filesystem>
#include <string>

namespace meshlm {

// "dir:<hash>" or "text:<bytes>:<hash>" (64-bit FNV-1a, hex). UserError if unreadable.
std::string data_fingerprint(const std::filesystem::path& data);

}  // namespace meshlm
