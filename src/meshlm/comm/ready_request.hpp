#pragma once
// A Request that has already completed: what a backend returns for work it did inline.
#include "meshlm/comm/communicator.hpp"

namespace meshlm {

class ReadyRequest final : public Request {
 public:
  void wait() override {}
  bool test() override { return true; }
};

}  // namespace meshlm
