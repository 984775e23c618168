# Data- and tensor-parallel training under mpirun (oversubscribed on small machines; one
# OpenMP thread per rank).
set(meshlm_mpi_env "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
foreach(kind dp tp pp)
  add_executable(meshlm_${kind}_mpi_tests ${CMAKE_CURRENT_LIST_DIR}/${kind}_mpi_tests.cpp)
  target_link_libraries(meshlm_${kind}_mpi_tests PRIVATE meshlm GTest::gtest)
  target_include_directories(meshlm_${kind}_mpi_tests PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(meshlm_${kind}_mpi_tests PRIVATE MESHLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endforeach()
foreach(np 1 2 3 4)
  add_test(NAME parallel.dp.np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --oversubscribe --bind-to none --timeout 400
                   $<TARGET_FILE:meshlm_dp_mpi_tests>)
  set_tests_properties(parallel.dp.np${np} PROPERTIES TIMEOUT 450 ENVIRONMENT "${meshlm_mpi_env}")
endforeach()
foreach(np 2 4)
  add_test(NAME parallel.tp.np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --oversubscribe --bind-to none --timeout 400
                   $<TARGET_FILE:meshlm_tp_mpi_tests>)
  set_tests_properties(parallel.tp.np${np} PROPERTIES TIMEOUT 450 ENVIRONMENT "${meshlm_mpi_env}")
endforeach()

foreach(np 2 4 8)
  add_test(NAME parallel.pp.np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --oversubscribe --bind-to none --timeout 400
                   $<TARGET_FILE:meshlm_pp_mpi_tests>)
  set_tests_properties(parallel.pp.np${np} PROPERTIES TIMEOUT 450 ENVIRONMENT "${meshlm_mpi_env}")
endforeach()

add_test(NAME parallel.cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/parallel_cli.sh $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(parallel.cli PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}")
