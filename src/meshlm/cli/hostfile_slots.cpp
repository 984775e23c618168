#include "meshlm/cli/hostfile_slots.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "meshlm/core/error.hpp"

namespace meshlm {

std::optional<int64_t> hostfile_slots(const std::filesystem::path& file, std::string* why) {
  std::ifstream in(file);
  if (!in) {
    if (why) *why = cat("cannot read ", file.string(), ": ", std::strerror(errno));
    return std::nullopt;
  }
  int64_t total = 0;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string host, word;
    if (!(words >> host)) continue;
    int64_t slots = 1;
    while (words >> word) {
      if (word.rfind("slots=", 0) != 0) continue;  // max_slots= and others do not add ranks
      const std::string value = word.substr(6);
      size_t used = 0;
      try {
        slots = std::stoll(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != value.size() || slots < 0) {
        if (why) *why = cat(file.string(), " line ", number, ": slots=", value, " is not a number of ranks");
        return std::nullopt;
      }
    }
    total += slots;
  }
  return total;
}

}  // namespace meshlm
