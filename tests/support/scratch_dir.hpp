#pragma once
// A test's scratch directory: unique under the system's temporary directory, empty when made,
// removed with everything in it when the ScratchDir goes out of scope.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "meshlm/comm/communicator.hpp"

namespace meshlm::testing_support {

class ScratchDir {
 public:
  // <temp>/meshlm_<prefix>_XXXXXX, made by mkdtemp (so never a directory another test uses); the
  // prefix defaults to the running test's name.
  explicit ScratchDir(const std::string& prefix = current_test_name())
      : path_(make_unique_dir(prefix)), remover_(true) {}

  // One directory for all ranks of `comm` (collective): rank 0 makes it and sends its name; on
  // destruction every rank waits for the others, then rank 0 removes it.
  ScratchDir(Communicator& comm, const std::string& prefix)
      : path_(share(comm, comm.rank() == 0 ? make_unique_dir(prefix).string() : std::string())),
        comm_(&comm),
        remover_(comm.rank() == 0) {}

  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  ~ScratchDir() {
    try {
      if (comm_ != nullptr) comm_->barrier();
    } catch (...) {
      // A failed barrier means a broken job; leave the directory rather than throw.
      return;
    }
    std::error_code ec;
    if (remover_) std::filesystem::remove_all(path_, ec);
  }

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  // Suite.Test with anything but letters, digits, '.', '-' and '_' replaced ('/' in parameterised
  // names); "test" outside a test.
  static std::string current_test_name() {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    if (test == nullptr) return "test";
    std::string name = std::string(test->test_suite_name()) + "." + test->name();
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
    return name;
  }

  static std::filesystem::path make_unique_dir(const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / ("meshlm_" + prefix + "_XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp(" + pattern + "): " + std::strerror(errno));
    return pattern;
  }

  // Rank 0's string on every rank, sent as 32-bit words (the communicator moves typed elements).
  static std::filesystem::path share(Communicator& comm, std::string s) {
    int32_t n = int32_t(s.size());
    comm.broadcast(&n, 1, DType::i32, 0);
    std::vector<int32_t> words((size_t(n) + 3) / 4, 0);
    if (comm.rank() == 0) std::memcpy(words.data(), s.data(), s.size());
    comm.broadcast(words.data(), int64_t(words.size()), DType::i32, 0);
    s.assign(reinterpret_cast<const char*>(words.data()), size_t(n));
    return s;
  }

  std::filesystem::path path_;
  Communicator* comm_ = nullptr;
  bool remover_;
};

}  // namespace meshlm::testing_support
