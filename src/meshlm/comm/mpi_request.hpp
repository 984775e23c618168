#pragma once
// A point-to-point operation in flight on MPI: one MPI_Request per message (a buffer larger
// than an int count travels as several messages).
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/mpi_check.hpp"

namespace meshlm {

class MpiRequest final : public Request {
 public:
  // What the request does, named if it outlives parallel.collective_timeout.
  struct Waits {
    const char* operation;  // "send" or "recv"
    std::string group;
    int group_rank = 0;
    int group_size = 1;
    int peer = -1;
  };
  MpiRequest(std::vector<MPI_Request> reqs, Waits what) : reqs_(std::move(reqs)), what_(std::move(what)) {}
  // Waits: MPI must not write into (or read from) a buffer after its owner has moved on.
  ~MpiRequest() override;
  void wait() override;
  bool test() override;

 private:
  std::vector<MPI_Request> reqs_;
  Waits what_;
  bool done_ = false;
};

}  // namespace meshlm
