# Data-parallel training under mpirun at 1–4 ranks (oversubscribed on small machines; one
# OpenMP thread per rank).
add_executable(meshlm_dp_mpi_tests ${CMAKE_CURRENT_LIST_DIR}/dp_mpi_tests.cpp)
target_link_libraries(meshlm_dp_mpi_tests PRIVATE meshlm GTest::gtest)
target_compile_definitions(meshlm_dp_mpi_tests PRIVATE MESHLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
foreach(np 1 2 3 4)
  add_test(NAME parallel.dp.np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --oversubscribe --bind-to none --timeout 400
                   $<TARGET_FILE:meshlm_dp_mpi_tests>)
  set_tests_properties(parallel.dp.np${np} PROPERTIES TIMEOUT 450
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
endforeach()

add_test(NAME parallel.dp_cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/dp_cli.sh $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(parallel.dp_cli PROPERTIES TIMEOUT 300
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
