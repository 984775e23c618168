#pragma once
// Which files `meshlm prepare --input` reads: files named on the command line always; inside a
// directory (searched recursively, hidden files and directories skipped) only the files that
// match the filter, a list of glob patterns:
//   *    any characters except '/'        ?   one character except '/'
//   **   as a whole path segment: any number of directories (also none)
// A pattern without '/' is matched against the file name, so `*.txt` selects text files at
// any depth; a pattern with '/' against the whole path relative to the input directory
// (`data/**/*.md`). Other characters match themselves, case-sensitively.
//
// The default filter is `*.txt`: plain text is the one kind of file that a corpus directory
// (say an npm package with data/*.txt next to package.json and lib/*.js) reliably names so;
// JSON, code, markup and binary files would silently become training text.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace meshlm {

inline const std::vector<std::string> kDefaultInputGlobs = {"*.txt"};

// Whether `relative_path` (with '/' separators) matches `pattern` (rules above).
bool glob_match(std::string_view pattern, std::string_view relative_path);

struct InputSelection {
  std::vector<std::filesystem::path> files;    // to read, in order, each once
  std::vector<std::filesystem::path> skipped;  // found in a directory but left out by the filter
  std::vector<std::string> filter;             // the patterns applied to directories
  bool default_filter = true;                  // no --glob given
};

// The files an input list names, in order: a file as given; a directory's matching files in
// sorted path order. `globs` empty means kDefaultInputGlobs. UserError naming an input that is
// missing or neither a file nor a directory, a malformed pattern, or a directory in which no
// file matches (naming the filter and some of the files it left out).
InputSelection select_input_files(const std::vector<std::filesystem::path>& inputs,
                                  const std::vector<std::string>& globs = {});

// select_input_files(inputs, globs).files.
std::vector<std::filesystem::path> list_input_files(const std::vector<std::filesystem::path>& inputs,
                                                    const std::vector<std::string>& globs = {});

// "a, b, c" when there are at most `max_shown` names, else the first few and "… N more".
std::string abbreviated_list(const std::vector<std::string>& names, size_t max_shown = 5);

}  // namespace meshlm
