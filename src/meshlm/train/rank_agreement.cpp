#include "meshlm/train/rank_agreement.hpp"

#include <cstdio>

#include "meshlm/core/error.hpp"

namespace meshlm {

void agree_on_setup(Communicator& comm, const std::string& error) {
  if (comm.size() == 1) {
    if (!error.empty()) throw UserError(error);
    return;
  }
  int32_t first_failed = error.empty() ? comm.size() : comm.rank();
  int32_t neg = -first_failed;  // max of the negation = min
  comm.all_reduce(&neg, 1, DType::i32, ReduceOp::max);
  first_failed = -neg;
  if (first_failed == comm.size()) return;
  if (comm.rank() == first_failed) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s%s\n", first_failed == 0 ? "" : cat("rank ", first_failed, ": ").c_str(),
                 error.c_str());
    std::fflush(stderr);
  }
  throw ReportedError{};
}

}  // namespace meshlm

namespace meshlm {

void fail_together(const Communicator& comm, const std::string& error) {
  if (comm.size() == 1) throw UserError(error);
  if (comm.rank() == 0) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", error.c_str());
    std::fflush(stderr);
  }
  throw ReportedError{};
}

}  // namespace meshlm
