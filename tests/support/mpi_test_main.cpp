// The main of every test binary that runs under mpirun (see mpi_test_main.hpp).
#include "tests/support/mpi_test_main.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <memory>

#include "meshlm/core/dtype.hpp"

namespace meshlm::testing_mpi {

Communicator* g_world = nullptr;

namespace {

// What ranks other than 0 print instead of GoogleTest's report: their failures, with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (result.failed())
      std::printf("[rank %d] %s:%d: failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                  result.line_number(), result.summary());
  }

 private:
  int rank_;
};

}  // namespace
}  // namespace meshlm::testing_mpi

int main(int argc, char** argv) {
  using namespace meshlm;
  ::testing::InitGoogleTest(&argc, argv);
  auto world = make_mpi_world_communicator();
  testing_mpi::g_world = world.get();
  if (world->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new testing_mpi::FailurePrinter(world->rank()));
  }
  int32_t failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  const int32_t here = failed;
  world->all_reduce(&failed, 1, DType::i32, ReduceOp::max);
  if (world->rank() == 0) {
    if (failed && !here) std::printf("FAILED on another rank (see its [rank N] lines above)\n");
    std::printf("%d ranks: %s\n", world->size(), failed ? "FAILED" : "all passed");
  }
  std::fflush(stdout);
  testing_mpi::g_world = nullptr;
  world.reset();
  return failed;
}
