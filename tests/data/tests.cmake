# `meshlm prepare` from the command line: a user's mistakes give one "error: ..." line and
# exit code 2 and leave no output behind (the script lives with the other CLI scripts).
add_test(NAME cli.prepare_errors
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../cli/prepare_errors.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.prepare_errors PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)
# --input directory filtering and reporting, the tiny-validation warning, and nanoGPT / llm.c
# token files: refused as text, imported, trained on.
add_test(NAME cli.prepare_inputs
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../cli/prepare_inputs.sh $<TARGET_FILE:meshlm_cli>)
set_tests_properties(cli.prepare_inputs PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS slow)
