#pragma once
// Which checkpoint a resumed multi-process run continues from, picked once: rank 0 verifies the
// run's checkpoints against their manifests (reading every file of each it tries) and the others
// take its choice, instead of every rank reading the same files.
#include <filesystem>
#include <optional>
#include <string>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/train/checkpoint.hpp"

namespace meshlm {

// Collective over `comm` (when resuming). `error` is rank 0's set-up error so far (it then picks
// nothing). Rank 0 picks from `run_dir` (empty: nothing to pick, read_run_setup reports it); the
// other ranks read the trainer state of its choice. Returns the point (nullopt when none was
// picked); a rank's own failure lands in `error`. `skip_setup` is set on the ranks that must not
// read the set-up, because rank 0 failed (agree_on_setup then reports rank 0's error).
std::optional<ResumePoint> share_resume_point(Communicator& comm, const std::filesystem::path& run_dir,
                                              std::string& error, bool& skip_setup);

}  // namespace meshlm
