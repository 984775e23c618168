# Data-, tensor- and pipeline-parallel training under mpirun. Each binary's GPU cases (named
# *OnTheGpu*, skipped without a GPU) are their own ctest entries (label gpu); the CPU entries run
# the rest.
set(meshlm_parallel_gpu_filter "*OnTheGpu*")
foreach(kind dp tp pp)
  add_executable(meshlm_${kind}_mpi_tests ${CMAKE_CURRENT_LIST_DIR}/${kind}_mpi_tests.cpp)
  target_link_libraries(meshlm_${kind}_mpi_tests PRIVATE meshlm meshlm_mpi_test_main GTest::gtest)
  target_compile_definitions(meshlm_${kind}_mpi_tests PRIVATE MESHLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endforeach()

# The rank counts of each binary's CPU and GPU entries (the pipeline's GPU case needs at most one
# stage per block: 4).
set(dp_cpu_nps 1 2 3 4)
set(dp_gpu_nps 1 2 3 4)
set(tp_cpu_nps 2 4)
set(tp_gpu_nps 2 4)
set(pp_cpu_nps 2 4 8)
set(pp_gpu_nps 2 4)
foreach(kind dp tp pp)
  foreach(np ${${kind}_cpu_nps})
    meshlm_mpi_test(parallel.${kind}.np${np} NP ${np} BINARY meshlm_${kind}_mpi_tests MPI_TIMEOUT 400 TIMEOUT 450
                    FILTER "-${meshlm_parallel_gpu_filter}")
  endforeach()
  foreach(np ${${kind}_gpu_nps})
    meshlm_mpi_test(parallel.${kind}.gpu.np${np} NP ${np} BINARY meshlm_${kind}_mpi_tests MPI_TIMEOUT 400
                    TIMEOUT 450 FILTER "${meshlm_parallel_gpu_filter}" GPU)
  endforeach()
endforeach()

# Ranks that merge parameters (local SGD, DiLoCo, gossip): CPU only.
add_executable(meshlm_merge_mpi_tests ${CMAKE_CURRENT_LIST_DIR}/merge_mpi_tests.cpp)
target_link_libraries(meshlm_merge_mpi_tests PRIVATE meshlm meshlm_mpi_test_main GTest::gtest)
target_compile_definitions(meshlm_merge_mpi_tests PRIVATE MESHLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
foreach(np 2 3 4)
  meshlm_mpi_test(parallel.merge.np${np} NP ${np} BINARY meshlm_merge_mpi_tests MPI_TIMEOUT 300 TIMEOUT 350)
endforeach()

# Gradient compression: its collectives at 2 and 4 ranks (CPU only).
add_executable(meshlm_compress_mpi_tests ${CMAKE_CURRENT_LIST_DIR}/compress_mpi_tests.cpp)
target_link_libraries(meshlm_compress_mpi_tests PRIVATE meshlm meshlm_mpi_test_main GTest::gtest)
target_compile_definitions(meshlm_compress_mpi_tests PRIVATE MESHLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
foreach(np 2 4)
  meshlm_mpi_test(parallel.compress.np${np} NP ${np} BINARY meshlm_compress_mpi_tests MPI_TIMEOUT 300 TIMEOUT 350)
endforeach()

add_test(NAME parallel.cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/parallel_cli.sh $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(parallel.cli PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)

add_test(NAME parallel.launch COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/launch.sh $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(parallel.launch PROPERTIES TIMEOUT 600 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
