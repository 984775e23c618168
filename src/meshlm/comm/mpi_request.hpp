#pragma once
// A point-to-point operation in flight on MPI: one MPI_Request per message (a buffer larger
// than an int count travels as several messages).
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/mpi_check.hpp"

namespace meshlm {

class MpiRequest final : public Request {
 public:
  explicit MpiRequest(std::vector<MPI_Request> reqs) : reqs_(std::move(reqs)) {}
  // Waits: MPI must not write into (or read from) a buffer after its owner has moved on.
  ~MpiRequest() override;
  void wait() override;
  bool test() override;

 private:
  std::vector<MPI_Request> reqs_;
  bool done_ = false;
};

}  // namespace meshlm
