#pragma once
// How many ranks an Open MPI hostfile offers: the elastic supervisor's measure of the job's
// capacity (`train --hostfile FILE --min-nproc M`), re-read before every start and while a
// shrunk job runs, so that whoever manages the machines edits one file.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace meshlm {

// The sum of the `slots=N` of the file's host lines; a host line without slots counts 1
// (Open MPI's default for a hostfile). Blank lines and `#` comments count nothing. nullopt, with
// the reason in `why`, when the file cannot be read or a slots value is not a number.
std::optional<int64_t> hostfile_slots(const std::filesystem::path& file, std::string* why = nullptr);

}  // namespace meshlm
