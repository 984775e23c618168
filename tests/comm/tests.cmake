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
