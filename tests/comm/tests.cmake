# The MPI comm tests: their own binary (with a main that starts MPI), run under mpirun at 1-4
# ranks. Ranks are oversubscribed on small machines, hence --oversubscribe and no binding.
add_executable(meshlm_comm_mpi_tests ${CMAKE_CURRENT_LIST_DIR}/mpi_comm_tests.cpp)
target_link_libraries(meshlm_comm_mpi_tests PRIVATE meshlm_comm GTest::gtest GTest::gmock)
set_target_properties(meshlm_comm_mpi_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)

if(NOT MPIEXEC_EXECUTABLE)
  find_program(MPIEXEC_EXECUTABLE NAMES mpiexec mpirun)
endif()
if(MPIEXEC_EXECUTABLE)
  foreach(np 1 2 3 4)
    add_test(NAME comm.mpi.np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --oversubscribe --bind-to none --timeout 120
                     $<TARGET_FILE:meshlm_comm_mpi_tests>)
    set_tests_properties(comm.mpi.np${np} PROPERTIES TIMEOUT 200
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
  endforeach()
else()
  message(WARNING "mpiexec not found: the comm.mpi tests are not registered")
endif()

# The comm layer on GPU buffers (CUDA builds): MPI staging at 1 and 2 ranks (2 ranks share one
# GPU), NCCL wherever there is a GPU per rank. Skipped without a GPU.
if(MESHLM_HAVE_CUDA AND MPIEXEC_EXECUTABLE)
  add_executable(meshlm_comm_gpu_tests ${CMAKE_CURRENT_LIST_DIR}/gpu_comm_tests.cpp)
  target_link_libraries(meshlm_comm_gpu_tests PRIVATE meshlm_comm GTest::gtest)
  set_target_properties(meshlm_comm_gpu_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
  foreach(np 1 2)
    add_test(NAME comm.gpu.np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --oversubscribe --bind-to none --timeout 300
                     $<TARGET_FILE:meshlm_comm_gpu_tests> --gtest_color=no)
    # GoogleTest prints "[  PASSED  ] 0 tests." when every test skipped itself: ctest then
    # reports the run as skipped, never as passed.
    set_tests_properties(comm.gpu.np${np} PROPERTIES TIMEOUT 400
      SKIP_REGULAR_EXPRESSION "\\[  PASSED  \\] 0 tests"
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
  endforeach()
endif()
