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

add_test(NAME cli.absurd_sizes COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/absurd_sizes.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.absurd_sizes PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)
