#pragma once
// What a run directory (`train --out DIR`) holds of an earlier run: meshlm's own files only
// (metrics.jsonl, checkpoints/, the final model and tokenizer files). A new run into such a
// directory is refused unless it resumes it or overwrites it; overwriting removes exactly
// these, never a file meshlm did not write.
#include <filesystem>
#include <string>
#include <vector>

namespace meshlm {

// The earlier run's entries in `dir`, as names for a message ("metrics.jsonl",
// "checkpoints/ (3 checkpoints)", "model.safetensors", ...); empty when there is none.
std::vector<std::string> previous_run_entries(const std::filesystem::path& dir);

// Removes the earlier run's files from `dir`; returns what it removed (as above). Entries of
// checkpoints/ that are not checkpoints or their pointers stay (and so does the folder then).
std::vector<std::string> remove_previous_run(const std::filesystem::path& dir);

// "a, b and c".
std::string join_list(const std::vector<std::string>& items);

}  // namespace meshlm
