# The MPI comm tests: their own binary (with the shared MPI test main), run under mpirun at 1-4
# ranks.
add_executable(meshlm_comm_mpi_tests ${CMAKE_CURRENT_LIST_DIR}/mpi_comm_tests.cpp)
target_link_libraries(meshlm_comm_mpi_tests PRIVATE meshlm_comm meshlm_mpi_test_main GTest::gtest GTest::gmock)
set_target_properties(meshlm_comm_mpi_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
foreach(np 1 2 3 4)
  meshlm_mpi_test(comm.mpi.np${np} NP ${np} BINARY meshlm_comm_mpi_tests MPI_TIMEOUT 120 TIMEOUT 200)
endforeach()
# Again with parallel.collective_timeout set: the nonblocking operations and their deadline wait
# (the error test expects the blocking calls' names, so it is left out).
foreach(np 3)
  meshlm_mpi_test(comm.mpi.timed.np${np} NP ${np} BINARY meshlm_comm_mpi_tests MPI_TIMEOUT 120 TIMEOUT 200
                  FILTER "-MpiComm.MpiErrorsThrowWithCallAndLocation")
  if(TEST comm.mpi.timed.np${np})
    set_tests_properties(comm.mpi.timed.np${np} PROPERTIES ENVIRONMENT "${meshlm_mpi_env};MESHLM_TEST_COLLECTIVE_TIMEOUT=60")
  endif()
endforeach()

# The comm layer on GPU buffers (CUDA builds): MPI staging at 1 and 2 ranks (2 ranks share one
# GPU), NCCL wherever there is a GPU per rank. Every test skips without a GPU.
if(MESHLM_HAVE_CUDA)
  add_executable(meshlm_comm_gpu_tests ${CMAKE_CURRENT_LIST_DIR}/gpu_comm_tests.cpp)
  target_link_libraries(meshlm_comm_gpu_tests PRIVATE meshlm_comm meshlm_mpi_test_main GTest::gtest)
  set_target_properties(meshlm_comm_gpu_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
  foreach(np 1 2)
    meshlm_mpi_test(comm.gpu.np${np} NP ${np} BINARY meshlm_comm_gpu_tests MPI_TIMEOUT 300 TIMEOUT 400 GPU)
  endforeach()
endif()
