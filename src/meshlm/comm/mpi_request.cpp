#include "meshlm/comm/mpi_request.hpp"

#include <iostream>

#include "meshlm/comm/collective_deadline.hpp"

namespace meshlm {

MpiRequest::~MpiRequest() {
  if (done_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  try {
    wait();
  } catch (const std::exception& e) {
    std::cerr << "meshlm: error in an MPI request that was never waited for: " << e.what() << "\n";
  }
}

void MpiRequest::wait() {
  if (done_) return;
  done_ = true;  // a failed request is not waited for twice
  if (collective_timeout() > 0)
    wait_with_deadline(reqs_, {what_.operation, what_.group, what_.group_rank, what_.group_size, what_.peer});
  else
    MESHLM_MPI_CHECK(MPI_Waitall(int(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE));
}

bool MpiRequest::test() {
  if (done_) return true;
  int flag = 0;
  MESHLM_MPI_CHECK(MPI_Testall(int(reqs_.size()), reqs_.data(), &flag, MPI_STATUSES_IGNORE));
  done_ = flag != 0;
  return done_;
}

}  // namespace meshlm
