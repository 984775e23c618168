// Starting and ending MPI: initialised on the first make_mpi_world_communicator, finalised when
// the process exits.
#include <cstdlib>
#include <mutex>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/mpi_communicator.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {
namespace {

// Runs from atexit, after main: communicators still alive then see MPI_Finalized and leave
// their handles alone.
void finalize_mpi() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

}  // namespace

bool launched_by_mpi() {
  // Open MPI's mpirun, PMI (MPICH's hydra, Intel MPI), PMIx, and Slurm's srun.
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"})
    if (std::getenv(var) != nullptr) return true;
  return false;
}

std::unique_ptr<Communicator> make_mpi_world_communicator() {
  static std::mutex mu;
  std::lock_guard lock(mu);
  int initialized = 0, finalized = 0;
  MESHLM_MPI_CHECK(MPI_Initialized(&initialized));
  MESHLM_MPI_CHECK(MPI_Finalized(&finalized));
  MESHLM_ASSERT(!finalized, "MPI communicator requested after MPI was finalised");
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    MESHLM_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided));
    std::atexit(finalize_mpi);  // before any throw below, so the launcher sees a clean exit
  } else {
    MESHLM_MPI_CHECK(MPI_Query_thread(&provided));
  }
  if (provided < MPI_THREAD_MULTIPLE)
    throw UserError("the MPI library does not support MPI_THREAD_MULTIPLE, which meshlm's background "
                    "gradient reductions need (rebuild MPI with thread support)");
  MESHLM_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  // A duplicate, so that meshlm's traffic never matches another library's on MPI_COMM_WORLD.
  MPI_Comm world = MPI_COMM_NULL;
  MESHLM_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &world));
  return std::make_unique<MpiCommunicator>(world);
}

}  // namespace meshlm
