#pragma once
// What a run directory (`train --out DIR`) holds of an earlier run: meshlm's own files only
// (metrics.jsonl, checkpoints/, the final model and tokenizer files). A new run into such a
// directory is refused unless it resumes it or overwrites it; overwriting removes exactly
// these, never a file meshlm did not write.
#include <filesystem>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/train/run_lock.hpp"

namespace meshlm {

// The earlier run's entries in `dir`, as names for a message ("metrics.jsonl",
// "checkpoints/ (3 checkpoints)", "model.safetensors", ...); empty when there is none.
std::vector<std::string> previous_run_entries(const std::filesystem::path& dir);

// Removes the earlier run's files from `dir`; returns what it removed (as above). Entries of
// checkpoints/ that are not checkpoints or their pointers stay (and so does the folder then).
std::vector<std::string> remove_previous_run(const std::filesystem::path& dir);

// Creates `dir` (and its parents) if missing and locks it for this run (train/run_lock.hpp);
// UserError naming the directory and the cause (a read-only file system, no space, another
// training holding it).
RunLock open_run_directory(const std::filesystem::path& dir);

// Locks `dir` if it already exists (before the set-up reads it, so that a second training into
// it hears about the first one); holds nothing when `dir` is empty or absent.
RunLock lock_existing_run_directory(const std::filesystem::path& dir);

// Runs `write` (a save into the run directory) and turns a raw std::filesystem error into a
// UserError "cannot write WHAT: cause", so that a full or read-only disk ends the run cleanly.
template <class Write>
auto with_clear_write_errors(const std::string& what, Write&& write) {
  try {
    return write();
  } catch (const std::filesystem::filesystem_error& e) {
    throw UserError(cat("cannot write ", what, ": ", e.path1().empty() ? "" : e.path1().string() + ": ",
                        e.code().message()));
  }
}

// "a, b and c".
std::string join_list(const std::vector<std::string>& items);

}  // namespace meshlm
