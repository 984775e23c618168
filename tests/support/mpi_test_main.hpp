#pragma once
// What a test binary run under mpirun gets from the shared main (tests/support/mpi_test_main.cpp):
// MPI started, every test run on every rank in the same order (so tests use EXPECT, never an early
// return, after the first collective), GoogleTest's report printed by rank 0 only (the others print
// their failures, tagged with the rank), and one exit code on every rank: non-zero when a test
// failed on any rank. A binary that needs more set-up around the tests (NCCL, say) registers a
// ::testing::Environment, which runs while the world communicator is alive.
#include "meshlm/comm/communicator.hpp"

namespace meshlm::testing_mpi {

// The world communicator, set before the first test and valid until the last one has ended.
extern Communicator* g_world;
inline Communicator& world() { return *g_world; }

}  // namespace meshlm::testing_mpi
