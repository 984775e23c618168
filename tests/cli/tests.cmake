add_test(NAME cli.bad_input COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/bad_input.sh $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(cli.bad_input PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)

# docs/CLI.md must list every config key exactly as `meshlm keys` prints it.
add_test(NAME cli.keys_documented COMMAND bash -c "$<TARGET_FILE:meshlm_cli> keys | while IFS= read -r line; do grep -qxF \"$line\" ${PROJECT_SOURCE_DIR}/docs/CLI.md || { echo \"docs/CLI.md lacks: $line\"; exit 1; }; done")
set_tests_properties(cli.keys_documented PROPERTIES LABELS unit)

add_test(NAME cli.interrupt COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/interrupt.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.interrupt PROPERTIES TIMEOUT 300 LABELS slow)

add_test(NAME cli.help_documented COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/help_documented.sh $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(cli.help_documented PROPERTIES LABELS slow)

add_test(NAME cli.bench COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/bench.sh $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(cli.bench PROPERTIES TIMEOUT 300 LABELS slow)

add_test(NAME cli.run_directory COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_directory.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.run_directory PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)

add_test(NAME cli.tokenizer_identity COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/tokenizer_identity.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.tokenizer_identity PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)

add_test(NAME cli.names_and_paths COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/names_and_paths.sh $<TARGET_FILE:meshlm_cli> ${CMAKE_COMMAND} ${PROJECT_BINARY_DIR})
set_tests_properties(cli.names_and_paths PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)

add_test(NAME cli.dropout COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/dropout.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.dropout PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)

add_test(NAME cli.checkpoint_integrity COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/checkpoint_integrity.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.checkpoint_integrity PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)

# The file-system fault shim (tests/support/fs_fault_shim.c): a test-only LD_PRELOAD library that
# makes calls on paths matching $MESHLM_FAULT_PATH fail with $MESHLM_FAULT_ERRNO (ENOSPC: a full
# disk; EROFS: a read-only file system), since root can neither chmod nor fill a disk for a test.
add_library(meshlm_fs_fault_shim MODULE ${PROJECT_SOURCE_DIR}/tests/support/fs_fault_shim.c)
target_link_libraries(meshlm_fs_fault_shim PRIVATE ${CMAKE_DL_LIBS})

# Run-directory faults: the lock against a second training, metrics after a kill and resume,
# a full disk (/dev/full) and a read-only file system (the file-system fault shim with EROFS).
add_test(NAME cli.run_dir_faults COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_dir_faults.sh $<TARGET_FILE:meshlm_cli>
                                         $<TARGET_FILE:meshlm_fs_fault_shim>)
set_tests_properties(cli.run_dir_faults PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)

add_test(NAME cli.supervisor COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/supervisor.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.supervisor PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS mpi)

# Errors and signals in multi-process jobs (issue 18).

# Asynchronous checkpoints: same bytes as a synchronous save, SIGTERM during a pending write, a
# background write error (the file-system fault shim) with train.checkpoint_errors stop or continue.
add_test(NAME cli.async_checkpoint COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/async_checkpoint.sh $<TARGET_FILE:meshlm_cli>
                                         $<TARGET_FILE:meshlm_fs_fault_shim>)
set_tests_properties(cli.async_checkpoint PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)
if(MPIEXEC_EXECUTABLE)
  add_test(NAME cli.mpi_errors COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/mpi_errors.sh $<TARGET_FILE:meshlm_cli>
                                       $<TARGET_FILE:meshlm_fs_fault_shim>)
  set_tests_properties(cli.mpi_errors PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
  add_test(NAME cli.mpi_signals COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/mpi_signals.sh $<TARGET_FILE:meshlm_cli>)
  set_tests_properties(cli.mpi_signals PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
  # Elastic restart: 4 ranks -> 2 (the hostfile shrinks, a rank is killed) -> 4, with the loss
  # curve and weights of an uninterrupted 4-rank run.
  add_test(NAME cli.elastic COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/elastic.sh $<TARGET_FILE:meshlm_cli>)
  set_tests_properties(cli.elastic PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
  # Parameter-server training: sync PS equals one process, resumes across layouts, refusals, a
  # killed worker or server (issue 19).
  add_test(NAME cli.parameter_server COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/parameter_server.sh $<TARGET_FILE:meshlm_cli>
                                            ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli.parameter_server PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
  # The benchmark aids: a slowed rank and an emulated network make steps slower, results unchanged.
  add_test(NAME cli.emulation COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/emulation.sh $<TARGET_FILE:meshlm_cli>
                                     ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli.emulation PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
  # Async and bounded-staleness (ssp) parameter servers: ssp 0 equals one process, the staleness
  # bound holds, async resumes and stops on SIGTERM, the modes converge within 3% of sync.
  add_test(NAME cli.parameter_server_async COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/parameter_server_async.sh
                                                  $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli.parameter_server_async PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
  # Ranks that merge parameters (local SGD, DiLoCo, gossip): bit-exact resume, byte counts, the
  # EMA model, refusals (issue 20).
  add_test(NAME cli.decentralized COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/decentralized.sh $<TARGET_FILE:meshlm_cli>
                                         ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli.decentralized PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
  # The convergence claims of issue 20 on real text (2 ranks, 150 steps): local_sgd, diloco,
  # powersgd, int8 and top-k (with SGD) within 3% of the all-reduce.
  add_test(NAME cli.decentralized_convergence COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/decentralized_convergence.sh
                                                     $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
  set_tests_properties(cli.decentralized_convergence PROPERTIES TIMEOUT 400 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
  add_test(NAME cli.collective_timeout COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/collective_timeout.sh $<TARGET_FILE:meshlm_cli>)
  set_tests_properties(cli.collective_timeout PROPERTIES TIMEOUT 300 ENVIRONMENT "${meshlm_mpi_env}" LABELS mpi)
endif()

add_test(NAME cli.absurd_sizes COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/absurd_sizes.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.absurd_sizes PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)
