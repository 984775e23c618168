#include "meshlm/data/input_files.hpp"

#include <algorithm>
#include <set>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

// '*' and '?' inside one path segment: a greedy scan that backtracks to the last '*'.
bool match_segment(std::string_view p, std::string_view s) {
  size_t pi = 0, si = 0, star = std::string_view::npos, resume = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      resume = si;
    } else if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++resume;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));  // "a//b" is "a/b"
    start = slash + 1;
  }
  return out;
}

bool match_segments(const std::vector<std::string_view>& p, size_t i, const std::vector<std::string_view>& s,
                    size_t j) {
  if (i == p.size()) return j == s.size();
  if (p[i] == "**") {
    for (size_t k = j; k <= s.size(); ++k)
      if (match_segments(p, i + 1, s, k)) return true;
    return false;
  }
  return j < s.size() && match_segment(p[i], s[j]) && match_segments(p, i + 1, s, j + 1);
}

std::string_view without_dot_slash(std::string_view pattern) {
  while (pattern.starts_with("./")) pattern.remove_prefix(2);
  return pattern;
}

void check_pattern(const std::string& pattern) {
  std::string_view p = without_dot_slash(pattern);
  if (p.empty()) throw UserError(cat("--glob '", pattern, "' is empty; give a pattern such as '*.txt'"));
  if (p.front() == '/')
    throw UserError(cat("--glob '", pattern, "' is absolute; patterns match paths relative to the --input directory"));
  for (std::string_view seg : split_segments(p))
    if (seg == "..") throw UserError(cat("--glob '", pattern, "' leaves the --input directory (..)"));
}

std::string quoted_filter(const std::vector<std::string>& filter) {
  std::string s;
  for (const std::string& g : filter) s += cat(s.empty() ? "" : " ", "--glob '", g, "'");
  return s;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view relative_path) {
  pattern = without_dot_slash(pattern);
  const std::vector<std::string_view> path = split_segments(relative_path);
  if (pattern.find('/') == std::string_view::npos)
    return !path.empty() && match_segment(pattern == "**" ? "*" : pattern, path.back());
  return match_segments(split_segments(pattern), 0, path, 0);
}

std::string abbreviated_list(const std::vector<std::string>& names, size_t max_shown) {
  const size_t shown = names.size() <= max_shown ? names.size() : std::min<size_t>(3, max_shown);
  std::string s;
  for (size_t i = 0; i < shown; ++i) s += cat(i ? ", " : "", names[i]);
  if (shown < names.size()) s += cat(shown ? ", " : "", "\u2026 ", names.size() - shown, " more");
  return s;
}

InputSelection select_input_files(const std::vector<fs::path>& inputs, const std::vector<std::string>& globs) {
  if (inputs.empty()) throw UserError("no input given (use --input FILE_OR_DIRECTORY)");
  InputSelection sel;
  sel.default_filter = globs.empty();
  sel.filter = globs.empty() ? kDefaultInputGlobs : globs;
  for (const std::string& g : sel.filter) check_pattern(g);

  std::set<fs::path> seen;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    fs::path key = fs::weakly_canonical(p, ec);
    if (ec) key = fs::absolute(p);
    if (seen.insert(key).second) sel.files.push_back(p);
  };
  for (const fs::path& in : inputs) {
    std::error_code ec;
    fs::file_status st = fs::status(in, ec);
    if (!fs::exists(st)) throw UserError(cat("input not found: ", in.string()));
    if (fs::is_regular_file(st)) {
      add(in);  // named explicitly: always read, whatever the filter says
    } else if (fs::is_directory(st)) {
      std::vector<fs::path> found, left_out;
      try {
        for (auto it = fs::recursive_directory_iterator(in); it != fs::recursive_directory_iterator(); ++it) {
          std::string name = it->path().filename().string();
          if (!name.empty() && name[0] == '.') {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
          }
          if (!it->is_regular_file()) continue;
          const std::string rel = it->path().lexically_relative(in).generic_string();
          const bool wanted = std::any_of(sel.filter.begin(), sel.filter.end(),
                                          [&](const std::string& g) { return glob_match(g, rel); });
          (wanted ? found : left_out).push_back(it->path());
        }
      } catch (const fs::filesystem_error& e) {
        throw UserError(cat("cannot list input directory ", in.string(), ": ", e.code().message()));
      }
      // Directory order is arbitrary; the split must not be.
      std::sort(found.begin(), found.end());
      std::sort(left_out.begin(), left_out.end());
      if (found.empty() && left_out.empty())
        throw UserError(
            cat("empty input: the --input directory ", in.string(), " holds no files (hidden ones are skipped)"));
      if (found.empty()) {
        std::vector<std::string> names;
        for (const fs::path& p : left_out) names.push_back(p.lexically_relative(in).generic_string());
        throw UserError(cat("no file in ", in.string(), " matches ", quoted_filter(sel.filter),
                            sel.default_filter ? " (the default for directories)" : "", "; it holds ",
                            abbreviated_list(names), " (name files directly or choose others with --glob)"));
      }
      for (const fs::path& p : found) add(p);
      sel.skipped.insert(sel.skipped.end(), left_out.begin(), left_out.end());
    } else {
      throw UserError(cat("input ", in.string(), " is neither a regular file nor a directory"));
    }
  }
  // A file both left out in a directory and named on its own is read, not skipped.
  std::erase_if(sel.skipped, [&](const fs::path& p) {
    std::error_code ec;
    fs::path key = fs::weakly_canonical(p, ec);
    return seen.count(ec ? fs::absolute(p) : key) > 0;
  });
  return sel;
}

std::vector<fs::path> list_input_files(const std::vector<fs::path>& inputs, const std::vector<std::string>& globs) {
  return select_input_files(inputs, globs).files;
}

}  // namespace meshlm
