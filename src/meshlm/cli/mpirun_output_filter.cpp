#include "meshlm/cli/mpirun_output_filter.hpp"

#include <algorithm>

namespace meshlm {

namespace {

// Open MPI frames its messages in rules of dashes ("-----...-----"), 55 to 74 of them.
bool is_rule(const std::string& line) {
  std::string_view s = line;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s.size() >= 20 && std::all_of(s.begin(), s.end(), [](char c) { return c == '-'; });
}

}  // namespace

// One whole line (with its '\n'): held while a banner is open, which the closing rule then
// drops or releases.
std::string MpirunOutputFilter::take_line(const std::string& line) {
  if (!in_banner_) {
    // When several ranks abort, Open MPI counts the banners it did not repeat, and says how
    // to see them: "[host:pid] 1 more process has sent help message help-mpi-api.txt /
    // mpi-abort", then "Set MCA parameter "orte_base_help_aggregate" to 0 ...".
    if (line.find("help-mpi-api.txt / mpi-abort") != std::string::npos) {
      after_abort_count_ = true;
      return "";
    }
    if (after_abort_count_ && line.find("orte_base_help_aggregate") != std::string::npos) return "";
    // Open MPI's shared-memory transport, when the peer it copies from has died: "[host:pid]
    // Read -1, expected 43968, errno = 3". The death is reported anyway (meshlm's line, or
    // mpirun's banner about the killed process).
    if (line.rfind("[", 0) == 0 && (line.find("] Read -1, expected ") != std::string::npos ||
                                    line.find("] Write -1, expected ") != std::string::npos))
      return "";
    // mpirun failing to show such a banner while the job ends: "[host:pid] [[job,0],0]
    // ORTE_ERROR_LOG: Out of resource in file .../orte/util/show_help.c at line 501".
    if (line.find("ORTE_ERROR_LOG") != std::string::npos && line.find("show_help.c") != std::string::npos) return "";
    // mpirun continued after Ctrl-Z and `fg` (the launcher stops and continues it with the ranks).
    if (line.rfind("mpirun: Forwarding signal ", 0) == 0) return "";
    after_abort_count_ = false;
    if (!is_rule(line)) return line;
    in_banner_ = true;
    banner_ = line;
    return "";
  }
  banner_ += line;
  if (!is_rule(line)) return "";
  in_banner_ = false;
  std::string done;
  done.swap(banner_);
  const bool repeats_meshlm = done.find("non-zero") != std::string::npos ||
                             done.find("MPI_ABORT was invoked") != std::string::npos;
  return repeats_meshlm ? "" : done;
}

std::string MpirunOutputFilter::feed(std::string_view chunk) {
  std::string out;
  for (char c : chunk) {
    line_ += c;
    if (c == '\n') {
      out += take_line(line_);
      line_.clear();
    }
  }
  return out;
}

std::string MpirunOutputFilter::finish() {
  std::string out = banner_ + line_;  // an unclosed banner is not one of those dropped
  banner_.clear();
  line_.clear();
  in_banner_ = false;
  return out;
}

}  // namespace meshlm
