#include "meshlm/train/resume_point.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace {

enum class Pick : int32_t { chosen = 0, failed = 1, nothing = 2 };

}  // namespace

std::optional<ResumePoint> share_resume_point(Communicator& comm, const std::filesystem::path& run_dir,
                                              std::string& error, bool& skip_setup) {
  skip_setup = false;
  std::optional<ResumePoint> point;
  std::string dir;
  int32_t header[2] = {int32_t(Pick::nothing), 0};  // what rank 0 did; the length of its checkpoint's path
  if (comm.rank() == 0) {
    if (!error.empty()) {
      header[0] = int32_t(Pick::failed);
    } else if (!run_dir.empty()) {
      try {
        point = choose_resume_checkpoint(run_dir);
        dir = point->info->dir.string();
        header[0] = int32_t(Pick::chosen);
        header[1] = int32_t(dir.size());
      } catch (const UserError& e) {
        error = e.what();
        header[0] = int32_t(Pick::failed);
      }
    }
  }
  if (comm.size() == 1) return point;
  comm.broadcast(header, 2, DType::i32, 0);
  if (header[0] != int32_t(Pick::chosen)) {
    if (comm.rank() != 0 && header[0] == int32_t(Pick::failed)) skip_setup = true;
    return point;
  }
  // The path travels as 32-bit words (a communicator moves typed elements, not bytes).
  std::vector<int32_t> words((size_t(header[1]) + 3) / 4, 0);
  if (comm.rank() == 0) std::memcpy(words.data(), dir.data(), dir.size());
  comm.broadcast(words.data(), int64_t(words.size()), DType::i32, 0);
  if (comm.rank() == 0) return point;
  dir.assign(reinterpret_cast<const char*>(words.data()), size_t(header[1]));
  try {
    point = ResumePoint{read_checkpoint_info(dir), {}};  // the notes of the choice are rank 0's to print
  } catch (const UserError& e) {
    error = e.what();
  }
  return point;
}

}  // namespace meshlm
