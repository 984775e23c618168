#include "fuzz/fuzz_support.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace meshlm::fuzz {

namespace fs = std::filesystem;

namespace {

void remove_scratch() {
  std::error_code ec;
  fs::remove_all(scratch_dir(), ec);
}

}  // namespace

const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("meshlm-fuzz." + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    std::atexit(remove_scratch);
    return d;
  }();
  return dir;
}

fs::path put_file(const fs::path& dir, const std::string& name, std::string_view bytes) {
  const fs::path path = dir / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("fuzz harness: cannot write " + path.string());
  return path;
}

fs::path put_file(const std::string& name, std::string_view bytes) { return put_file(scratch_dir(), name, bytes); }

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = scratch_dir() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void report_outcome(const char* what) {
  static const bool verbose = std::getenv("MESHLM_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "  %s\n", what);
}

std::pair<std::string_view, std::string_view> split_pair(std::string_view input) {
  constexpr std::string_view kSeparator = "\n==\n";
  const size_t at = input.find(kSeparator);
  if (at == std::string_view::npos) return {input, {}};
  return {input.substr(0, at), input.substr(at + kSeparator.size())};
}

}  // namespace meshlm::fuzz
