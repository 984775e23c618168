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
  return done.find("non-zero") != std::string::npos ? "" : done;
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
